"""A training script whose requirements name the project's own libraries by path: one editable
(`-e ./libs/mylib`, a pyproject.toml project in a src/ layout), one a plain folder (`./libs/other`,
a setup.py project). Each run reports the versions it imported, and where from."""
import os

from aws_train_remote import training_main


def main(args):
    import mylib
    import other

    print(f"mylib {mylib.__version__} other {other.__version__} total={other.total(mylib.scale([1, 2, 3]))} "
          f"mylib from {os.path.dirname(mylib.__file__)}", flush=True)
    os.makedirs(args.model_dir, exist_ok=True)
    with open(os.path.join(args.model_dir, "versions.txt"), "w") as fh:
        fh.write(f"mylib={mylib.__version__} other={other.__version__}\n")


if __name__ == "__main__":
    training_main(main)
