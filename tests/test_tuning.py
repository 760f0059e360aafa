"""Issue 10.1, hyperparameter tuning: --sagemaker-tune turns the same script into a
CreateHyperParameterTuningJob (the dry run shows it, botocore-valid); local mode runs the trials
here, each receiving its values through the exact argv, with the median stopping rule, and finds
the known better region of the demo."""
import json
import os

import botocore.session
from botocore.validate import ParamValidator
from conftest import REPO, run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")

GRID = """
objective: {metric: loss, type: Minimize}
strategy: Grid
parallel_jobs: 2
parameters:
  lr: {type: categorical, values: ["0.002", "0.3"]}
  epochs: {type: categorical, values: ["1", "4"]}
"""
RANDOM = """
objective: {metric: loss, type: Minimize}
strategy: Random
max_jobs: 6
parallel_jobs: 2
early_stopping: Auto
seed: 3
parameters:
  lr: {type: continuous, min: 0.0005, max: 0.5, scaling: Logarithmic}
  epochs: {type: integer, min: 2, max: 5}
"""


def validate(operation, params):
    model = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def test_dry_run_shows_the_tuning_request(tmp_path):
    (tmp_path / "tune.yaml").write_text(RANDOM)
    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", "--sagemaker-tune", "tune.yaml"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    tuning = doc["tuning_request"]
    validate("CreateHyperParameterTuningJob", tuning)
    config = tuning["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "loss"}
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 6}
    assert config["ParameterRanges"]["ContinuousParameterRanges"] == [
        {"Name": "lr", "MinValue": "0.0005", "MaxValue": "0.5", "ScalingType": "Logarithmic"}]
    assert config["TrainingJobEarlyStoppingType"] == "Auto" and len(tuning["HyperParameterTuningJobName"]) <= 32
    definition = tuning["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert "lr" not in static and "epochs" not in static and "seed" in static  # tuned ones leave the static set
    assert json.loads(static["sagemaker_atr_tuned"]) == {"epochs": "--epochs", "lr": "--lr"}
    assert json.loads(static["sagemaker_program"]) == "atr_entry.py"
    assert json.loads(static["sagemaker_submit_directory"]).endswith("/atr-entry.tar.gz")
    assert "ContainerEntrypoint" not in definition["AlgorithmSpecification"] and "CheckpointConfig" not in definition
    assert any(row["key"].endswith("/atr-entry.tar.gz") for row in doc["uploads"])


def test_tuning_spec_mistakes_are_one_line(tmp_path):
    cases = {
        "objective: {metric: f1}\nparameters: {lr: {type: continuous, min: 0.1, max: 1}}": "objective metric 'f1'",
        "objective: {metric: loss}\nparameters: {depth: {type: integer, min: 1, max: 3}}": "parameter 'depth' is not",
        "objective: {metric: loss}\nparameters: {lr: {type: continuous, min: 1, max: 0.1}}": "min must be below max",
        "objective: {metric: loss}\nstrategy: Grid\nparameters: {lr: {type: continuous, min: 0.1, max: 1}}":
            "Grid strategy takes categorical",
        "objective: {metric: loss}\nstrategy: Hyperband\nearly_stopping: Auto\n"
        "parameters: {lr: {type: continuous, min: 0.1, max: 1}}": "Hyperband stops trials itself",
        "objective: {metric: loss}\nmax_job: 3\nparameters: {lr: {type: continuous, min: 0.1, max: 1}}":
            "unknown key 'max_job'",
    }
    for text, expected in cases.items():
        (tmp_path / "tune.yaml").write_text(text)
        result = run_python([DEMO, "--sagemaker-run", "local", "--sagemaker-tune", "tune.yaml"], cwd=tmp_path)
        assert result.returncode == 2, (text, result.stderr)
        assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr
    plain = run_python([DEMO, "--sagemaker-tune", "tune.yaml"], cwd=tmp_path)
    assert plain.returncode == 2 and "add --sagemaker-run local" in plain.stderr


def test_local_mode_grid_finds_the_known_better_region(tmp_path):
    """More epochs at the larger learning rate is the demo's better region: loss falls with both."""
    (tmp_path / "tune.yaml").write_text(GRID)
    result = run_python([DEMO, "--sagemaker-run", "local", "--sagemaker-tune", "tune.yaml"], cwd=tmp_path,
                        timeout=300)
    assert result.returncode == 0, result.stderr
    assert "trials: 4 completed, 0 stopped (0 early), 0 failed" in result.stdout
    best = next(line for line in result.stdout.splitlines() if line.startswith("best: "))
    assert best.endswith("(lr=0.3, epochs=4)"), result.stdout
    assert (tmp_path / "output" / "model" / "model.json").is_file()  # the best trial's model


def test_each_trial_gets_typed_values_and_early_stopping_stops_some(tmp_path):
    write_script(tmp_path, """
        import time
        from aws_train_remote import training_main

        def main(args):
            assert isinstance(args.lr, float) and isinstance(args.epochs, int), (args.lr, args.epochs)
            for epoch in range(1, args.epochs + 1):
                print(f"epoch={epoch} loss={1.0 / (epoch * args.lr * 10 + 1):.6f}", flush=True)
                time.sleep(0.3)

        if __name__ == "__main__":
            training_main(main, additional_arguments=[{"dest": "--lr", "type": float, "default": 0.1},
                                                      {"dest": "--epochs", "type": int, "default": 2}],
                          metric={"loss": r"loss=([0-9.]+)"})
        """)
    (tmp_path / "data").mkdir()
    (tmp_path / "tune.yaml").write_text(RANDOM)
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-tune", "tune.yaml"], cwd=tmp_path,
                        timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("train-")]
    ended = [r for r in rows if " Completed " in r or " Stopped " in r]
    assert len(ended) == 6, result.stdout
    assert "Failed" not in result.stdout
    summary = next(line for line in result.stdout.splitlines() if line.startswith("trials: "))
    assert "(0 early)" not in summary, result.stdout  # the median rule stopped at least one weak trial


def test_through_the_sandbox_trials_run_as_jobs_and_the_best_is_downloaded(tmp_path, sandbox):
    (tmp_path / "tune.yaml").write_text(GRID)
    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-tune", "tune.yaml"],
                        cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    name = next(line.split()[2] for line in out.splitlines() if line.startswith("tuning job: "))
    assert f"Completed: {name}, 4 trials Completed" in out
    best = next(line for line in out.splitlines() if line.startswith("best: "))
    assert best.endswith("(lr=0.3, epochs=4)") and best.startswith(f"best: {name}-004-"), out
    rows = [line for line in out.splitlines() if line.startswith(f"{name}-") and " Completed " in line]
    assert len(rows) == 4
    calls = [c["body"] for c in sandbox.calls() if c["op"] == "SageMaker.CreateHyperParameterTuningJob"]
    assert len(calls) == 1
    validate("CreateHyperParameterTuningJob", calls[0])
    # by name: the sandbox's own client may retry a CreateTrainingJob on a busy machine
    trials = {c["body"]["TrainingJobName"]: c["body"] for c in sandbox.calls()
              if c["op"] == "SageMaker.CreateTrainingJob"}.values()
    assert sorted((t["HyperParameters"]["lr"], t["HyperParameters"]["epochs"]) for t in trials) == [
        ("0.002", "1"), ("0.002", "4"), ("0.3", "1"), ("0.3", "4")]
    download = run_python(["-m", "aws_train_remote.cli.main", "download", name, "--dest", "best"], cwd=tmp_path)
    assert download.returncode == 0, download.stderr
    assert "its best trial is" in download.stderr and (tmp_path / "best" / "model.json").is_file()
