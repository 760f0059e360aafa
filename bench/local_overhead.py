"""Local-run overhead of training_main against a bare argparse script doing the same work.

Both scripts parse the same flags and write the same small file; they run alternately as
fresh processes, N times each, in one invocation. Prints the medians, the overhead in
milliseconds and the ratio. Target: median overhead under 30 ms.

    python bench/local_overhead.py [--runs 25]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORK = '''
def main(args):
    import os
    os.makedirs(args.model_dir, exist_ok=True)
    with open(os.path.join(args.model_dir, "model.txt"), "w") as fh:
        fh.write(f"{args.epochs} {args.lr} {args.train}")
'''

BARE = WORK + '''
if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", default="data")
    parser.add_argument("--model-dir", default="output/model")
    parser.add_argument("--output-dir", default="output/data")
    parser.add_argument("--checkpoint-dir", default="output/checkpoints")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.1)
    main(parser.parse_args())
'''

WRAPPED = WORK + '''
if __name__ == "__main__":
    from aws_train_remote import training_main
    training_main(main, inputs={"train": "data"},
                  additional_arguments=[{"dest": "--epochs", "type": int, "default": 3},
                                        {"dest": "--lr", "type": float, "default": 0.1}])
'''


def timed(argv, cwd, env):
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=25)
    opts = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "data"))  # the input folder a real script has (checked before main)
        for name, body in (("bare.py", BARE), ("wrapped.py", WRAPPED)):
            with open(os.path.join(tmp, name), "w") as fh:
                fh.write(body)
        bare, wrapped = [], []
        for i in range(opts.runs + 2):
            b = timed([sys.executable, "bare.py", "--epochs", "5"], tmp, env)
            w = timed([sys.executable, "wrapped.py", "--epochs", "5"], tmp, env)
            if i >= 2:  # the first runs warm the page cache
                bare.append(b)
                wrapped.append(w)
    mb, mw = statistics.median(bare), statistics.median(wrapped)
    print(f"runs per script:           {opts.runs}")
    print(f"bare argparse, median:     {mb:.1f} ms")
    print(f"training_main, median:     {mw:.1f} ms")
    print(f"overhead, median:          {mw - mb:.1f} ms (target < 30 ms)")
    print(f"ratio training_main/bare:  {mw / mb:.2f}")


if __name__ == "__main__":
    main()
