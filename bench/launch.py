"""Launch benchmark against a loopback moto server (aws_train_remote.sandbox) on 127.0.0.1.

Input: 200 x 1 KiB files + 1 x 50 MiB file. Three launches of the same script with
--sagemaker-wait no, each a fresh process: first launch, unchanged relaunch, one 1 KiB file
changed. Prints per launch: process wall time, AWS API calls by operation, bytes uploaded.
Targets: first < 2.5 s; unchanged relaunch < 1.0 s with 0 data bytes and <= 12 API calls.

The server is warmed up first (moto loads each service backend lazily on its first request,
0.4-1.2 s that AWS does not have). Real AWS is not 127.0.0.1: --latency-ms 20 delays every request
by that much in the loopback server (its fault injector), about a real S3 round trip.
Run: python bench/launch.py [--latency-ms 20]
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
DATA_OPS = ("s3.PutObject", "s3.UploadPart")


def make_project(root):
    with open(os.path.join(root, "train.py"), "w") as fh:
        fh.write(SCRIPT)
    data = os.path.join(root, "data")
    os.makedirs(data)
    for i in range(200):
        with open(os.path.join(data, f"small-{i:03d}.bin"), "wb") as fh:
            fh.write(os.urandom(1024))
    with open(os.path.join(data, "large.bin"), "wb") as fh:
        fh.write(os.urandom(50 * 1024 * 1024))


def warm_up(env):
    kw = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
              aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    boto3.client("sts", **kw).get_caller_identity()
    boto3.client("s3", **kw).list_buckets()
    boto3.client("sagemaker", **kw).list_training_jobs()
    boto3.client("iam", **kw).list_roles()


def launch(root, env, server, latency_ms=0):
    server.clear_faults()  # also clears the call log
    if latency_ms:
        server.inject(r".*", kind="slow", delay=latency_ms / 1000, times=10 ** 6)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-wait", "no",
                             "--sagemaker-role", "arn:aws:iam::123456789012:role/Bench"],
                            cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(result.stderr)
    calls = server.calls()
    ops = collections.Counter(c["op"] for c in calls)
    data = sum(c["bytes"] for c in calls if c["op"] in DATA_OPS)
    return wall, ops, data


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0, help="added to every request (default: 0)")
    latency = parser.parse_args().latency_ms
    server = LoopbackAws(run_jobs=False)  # measure the launcher, not the job
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "proj")
        os.makedirs(root)
        make_project(root)
        env = dict(os.environ, PYTHONPATH=REPO, XDG_CACHE_HOME=os.path.join(tmp, "cache"),
                   HOME=tmp, **server.env())
        warm_up(env)
        rows = [("first launch", launch(root, env, server, latency))]
        rows.append(("unchanged relaunch", launch(root, env, server, latency)))
        with open(os.path.join(root, "data", "small-007.bin"), "wb") as fh:
            fh.write(os.urandom(1024))
        rows.append(("one 1 KiB file changed", launch(root, env, server, latency)))
    server.stop()
    if latency:
        print(f"every request delayed {latency:g} ms")
    for name, (wall, ops, data) in rows:
        print(f"{name:<24} wall {wall:5.2f} s   api calls {sum(ops.values()):4d}   bytes uploaded {data:>10,d}")
        print("    " + ", ".join(f"{op} {n}" for op, n in sorted(ops.items())))


if __name__ == "__main__":
    main()
