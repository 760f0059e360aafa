"""An app of a monorepo: its script lives two levels below the root and imports a sibling
package through `dependencies` (the folder of the package itself, relative to this script, as
every path written in the script is)."""
import os

from aws_train_remote import training_main


def main(args):
    import common
    from common.metrics import accuracy

    with open(os.path.join(args.train, "values.csv")) as fh:
        values = [float(v) for v in fh.read().split(",")]
    print(f"common={common.VERSION} mean={common.mean(values)} accuracy={accuracy(3, 4)} "
          f"from={os.path.basename(os.path.dirname(os.path.dirname(common.__file__)))}", flush=True)
    os.makedirs(args.model_dir, exist_ok=True)
    with open(os.path.join(args.model_dir, "result.txt"), "w") as fh:
        fh.write(common.VERSION)


if __name__ == "__main__":
    # relative to this script's folder, wherever it is started from
    training_main(main, inputs={"train": "data"}, dependencies={"common": "../../packages/common/common"})
