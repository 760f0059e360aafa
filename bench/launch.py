"""Launch benchmark against a loopback moto server (aws_train_remote.sandbox) on 127.0.0.1.

Input (issue 11): 10,000 x 1 KiB files + 1 x 50 MiB file. Four launches of the same script with
--sagemaker-wait no, each a fresh process: first launch, unchanged relaunch, one 1 KiB file
changed, the 50 MiB file changed. Prints per launch: process wall time, AWS API calls by
operation, bytes uploaded, and the target. Targets: first <= 5 s and <= 50 calls; unchanged
relaunch <= 0.5 s and <= 8 calls; one small file changed <= 2 s and <= 20 calls; the 50 MiB file
changed: its bytes plus <= 20 calls. --small N --mode FastFile measure the prefix layout instead.

The server is warmed up first (moto loads each service backend lazily on its first request,
0.4-1.2 s that AWS does not have). Real AWS is not 127.0.0.1: --latency-ms 20 delays every request
by that much in the loopback server (its fault injector), about a real S3 round trip.
Run: python bench/launch.py [--latency-ms 20] [--small 10000] [--mode File]
"""
import collections
import os
import subprocess
import sys
import tempfile
import time

import boto3

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from aws_train_remote.sandbox import LoopbackAws  # noqa: E402

SCRIPT = """
from aws_train_remote import training_main
def main(args):
    pass
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"})
"""
DATA_OPS = ("s3.PutObject", "s3.UploadPart", "s3.CopyObject")
LARGE = 50 * 1024 * 1024


def make_project(root, small=10000):
    with open(os.path.join(root, "train.py"), "w") as fh:
        fh.write(SCRIPT)
    data = os.path.join(root, "data")
    for i in range(small):
        folder = os.path.join(data, f"part-{i // 1000:02d}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"small-{i:05d}.bin"), "wb") as fh:
            fh.write(os.urandom(1024))
    with open(os.path.join(data, "large.bin"), "wb") as fh:
        fh.write(os.urandom(LARGE))


def warm_up(env):
    kw = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
              aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    boto3.client("sts", **kw).get_caller_identity()
    boto3.client("s3", **kw).list_buckets()
    boto3.client("sagemaker", **kw).list_training_jobs()
    boto3.client("iam", **kw).list_roles()


def launch(root, env, server, latency_ms=0, mode="File"):
    server.clear_faults()  # also clears the call log
    if latency_ms:
        server.inject(r".*", kind="slow", delay=latency_ms / 1000, times=10 ** 6)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-wait", "no",
                             "--sagemaker-role", "arn:aws:iam::123456789012:role/Bench", "--train-mode", mode],
                            cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(result.stderr)
    calls = server.calls()
    ops = collections.Counter(c["op"] for c in calls)
    data = sum(c["bytes"] for c in calls if c["op"] in DATA_OPS)
    return wall, ops, data


TARGETS = {  # (seconds, calls, data bytes beyond the change) per launch, from issue 11
    "first launch": (5.0, 50, None),
    "unchanged relaunch": (0.5, 8, 0),
    "one 1 KiB file changed": (2.0, 20, None),
    "the 50 MiB file changed": (None, 20, None),
}


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0, help="added to every request (default: 0)")
    parser.add_argument("--small", type=int, default=10000, help="how many 1 KiB files (default: 10000)")
    parser.add_argument("--mode", default="File", choices=("File", "FastFile", "Pipe"), help="the input's mode")
    options = parser.parse_args()
    latency, mode = options.latency_ms, options.mode
    server = LoopbackAws(run_jobs=False)  # measure the launcher, not the job
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "proj")
        os.makedirs(root)
        make_project(root, options.small)
        time.sleep(2.1)  # files touched in the last 2 s are hashed again on every launch (hashcache.RACY_NS)
        env = dict(os.environ, PYTHONPATH=REPO, XDG_CACHE_HOME=os.path.join(tmp, "cache"),
                   HOME=tmp, **server.env())
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user's machine: modules compiled once, not every launch
        warm_up(env)
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "aws_train_remote")],
                       env=env, check=True)
        rows = [("first launch", launch(root, env, server, latency, mode))]
        rows.append(("unchanged relaunch", launch(root, env, server, latency, mode)))
        with open(os.path.join(root, "data", "part-00", "small-00007.bin"), "wb") as fh:
            fh.write(os.urandom(1024))
        rows.append(("one 1 KiB file changed", launch(root, env, server, latency, mode)))
        with open(os.path.join(root, "data", "large.bin"), "r+b") as fh:
            fh.write(os.urandom(1024))
        rows.append(("the 50 MiB file changed", launch(root, env, server, latency, mode)))
    server.stop()
    print(f"input: {options.small:,} x 1 KiB + 1 x 50 MiB, --train-mode {mode}"
          + (f"; every request delayed {latency:g} ms" if latency else ""))
    for name, (wall, ops, data) in rows:
        seconds, calls, _ = TARGETS[name]
        total = sum(ops.values())
        goal = " and ".join(x for x in (f"<= {seconds:g} s" if seconds else "", f"<= {calls} calls") if x)
        met = (seconds is None or wall <= seconds) and total <= calls
        print(f"{name:<24} wall {wall:5.2f} s   api calls {total:4d}   bytes uploaded {data:>11,d}   "
              f"target {goal}: {'met' if met else 'MISSED'}")
        print("    " + ", ".join(f"{op} {n}" for op, n in sorted(ops.items())))


if __name__ == "__main__":
    main()
