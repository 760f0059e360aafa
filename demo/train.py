"""A small real training script: logistic regression by SGD on demo/data/train.csv.

Runs unchanged on a laptop (`python demo/train.py`) and as a SageMaker training job
(`python demo/train.py --sagemaker-run yes ...`). It reads its data through args.train,
writes the model to args.model_dir, saves a checkpoint every epoch to args.checkpoint_dir
and resumes from the newest one when restarted (for example after a spot interruption).
With --sagemaker-model-from JOB (incremental training) it starts from that job's model, which it
finds unpacked at args.model_init.
Standard library only, so no install is needed in any container image.
"""
import csv
import glob
import json
import math
import os
import random
import signal
import time

from aws_train_remote import training_main

HERE = os.path.dirname(os.path.abspath(__file__))


def load_rows(folder):
    paths = sorted(glob.glob(os.path.join(folder, "*.csv"))) if os.path.isdir(folder) else [folder]
    features, labels = [], []
    for path in paths:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                features.append([float(row["x1"]), float(row["x2"]), float(row["x3"])])
                labels.append(int(row["label"]))
    if not features:
        raise SystemExit(f"no training rows found in {folder}")
    return features, labels


def newest_checkpoint(folder):
    found = sorted(glob.glob(os.path.join(folder, "epoch-*.json")))
    if not found:
        return None
    with open(found[-1]) as fh:
        return json.load(fh)


def save_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh)
    os.replace(tmp, path)  # a checkpoint is either whole or absent


def predict(weights, bias, x):
    z = bias + sum(w * v for w, v in zip(weights, x))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def evaluate(weights, bias, features, labels):
    loss, correct = 0.0, 0
    for x, y in zip(features, labels):
        p = min(max(predict(weights, bias, x), 1e-9), 1 - 1e-9)
        loss -= y * math.log(p) + (1 - y) * math.log(1 - p)
        correct += int((p >= 0.5) == bool(y))
    return loss / len(labels), correct / len(labels)


def mlflow_run():
    """MLflow, when the job was launched with --sagemaker-mlflow (MLFLOW_TRACKING_URI is set) and
    the package is there: the launch's run (MLFLOW_RUN_ID) continues here. Otherwise None."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    try:
        import mlflow
    except ImportError:
        print("MLFLOW_TRACKING_URI is set but mlflow is not installed; metrics are not logged", flush=True)
        return None
    mlflow.start_run()
    return mlflow


def main(args):
    features, labels = load_rows(args.train)
    state = newest_checkpoint(args.checkpoint_dir)
    rng = random.Random(args.seed)
    if state:
        weights, bias, start = state["weights"], state["bias"], state["epoch"]
        if state.get("rng"):  # the shuffles continue where they were: a resumed run equals an unbroken one
            version, internal, gauss = state["rng"]
            rng.setstate((version, tuple(internal), gauss))
        print(f"resumed from checkpoint epoch {start}", flush=True)
    elif args.model_init:  # --sagemaker-model-from: continue from an earlier job's model
        with open(os.path.join(args.model_init, "model.json"), encoding="utf-8") as fh:
            earlier = json.load(fh)
        weights, bias, start = earlier["weights"], earlier["bias"], 0
        print(f"starting from the model in {args.model_init}", flush=True)
    else:
        weights, bias, start = [0.0, 0.0, 0.0], 0.0, 0
    tracking = mlflow_run()
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))  # spot interruption: finish the epoch, save

    for epoch in range(start + 1, args.epochs + 1):
        order = list(range(len(labels)))  # each epoch's order depends on the rng alone, which the checkpoint keeps
        rng.shuffle(order)
        for i in order:
            err = predict(weights, bias, features[i]) - labels[i]
            weights = [w - args.lr * err * v for w, v in zip(weights, features[i])]
            bias -= args.lr * err
        loss, accuracy = evaluate(weights, bias, features, labels)
        print(f"epoch={epoch} loss={loss:.4f} accuracy={accuracy:.4f}", flush=True)
        if tracking:
            tracking.log_metrics({"loss": loss, "accuracy": accuracy}, step=epoch)
        save_json(os.path.join(args.checkpoint_dir, f"epoch-{epoch:04d}.json"),
                  {"epoch": epoch, "weights": weights, "bias": bias, "rng": rng.getstate()})
        if args.sleep:
            time.sleep(args.sleep)
        if stop["now"]:
            print(f"stopping after epoch {epoch}; checkpoint saved", flush=True)
            raise SystemExit(143)

    loss, accuracy = evaluate(weights, bias, features, labels)
    save_json(os.path.join(args.model_dir, "model.json"), {"weights": weights, "bias": bias})
    save_json(os.path.join(args.output_dir, "metrics.json"), {"loss": loss, "accuracy": accuracy})
    print(f"done: accuracy={accuracy:.4f} model={os.path.join(args.model_dir, 'model.json')}", flush=True)
    if tracking:
        tracking.end_run()


if __name__ == "__main__":
    training_main(
        main,
        inputs={"train": os.path.join(HERE, "data")},
        additional_arguments=[
            {"dest": "--epochs", "type": int, "default": 5, "help": "epochs to train in total"},
            {"dest": "--lr", "type": float, "default": 0.05, "help": "learning rate"},
            {"dest": "--seed", "type": int, "default": 0, "help": "shuffle seed"},
            {"dest": "--sleep", "type": float, "default": 0.0, "help": "pause after each epoch (seconds)"},
        ],
        metric={"loss": r"loss=([0-9.]+)", "accuracy": r"accuracy=([0-9.]+)"},
    )
