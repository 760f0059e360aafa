"""How long `aws-train-remote --help` (and one subcommand's --help) takes as a fresh process,
against `python -c pass` measured alternately in the same run. Target: under 150 ms.

    python bench/cli_help.py [--runs 15]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": REPO})
    return (time.perf_counter() - start) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    entry = shutil.which("aws-train-remote", path=os.path.dirname(sys.executable))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "aws-train-remote --help": [entry, "--help"] if entry else
        [sys.executable, "-m", "aws_train_remote.cli.main", "--help"],
        "aws-train-remote logs --help": [entry or sys.executable, *([] if entry else
                                         ["-m", "aws_train_remote.cli.main"]), "logs", "--help"],
    }
    times = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
    base = statistics.median(times["python -c pass"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<30} median {median:6.1f} ms   ({median / base:.2f}x python -c pass)")
    worst = max(statistics.median(v) for k, v in times.items() if k != "python -c pass")
    print(f"target: under 150 ms -> {'met' if worst < 150 else 'NOT met'} ({worst:.1f} ms)")


if __name__ == "__main__":
    main()
