"""A training script at the root of a `src/`-layout project (pyproject.toml, setuptools): it
imports the project's own package, which a job has only because the project is installed in it."""
import os

from aws_train_remote import training_main


def main(args):
    from importlib import metadata

    import mypkg
    from mypkg.model import labels, threshold

    try:
        installed = metadata.version("mypkg")
    except metadata.PackageNotFoundError:
        installed = "not installed"
    with open(os.path.join(args.train, "values.csv")) as fh:
        values = [float(v) for v in fh.read().split(",")]
    cut = threshold(values)
    print(f"mypkg {mypkg.__version__} (installed: {installed}) labels={labels()} threshold={cut} "
          f"from {os.path.dirname(mypkg.__file__)}", flush=True)
    os.makedirs(args.model_dir, exist_ok=True)
    with open(os.path.join(args.model_dir, "model.txt"), "w") as fh:
        fh.write(f"mypkg={mypkg.__version__} threshold={cut}\n")


if __name__ == "__main__":
    training_main(main, inputs={"train": "data"})
