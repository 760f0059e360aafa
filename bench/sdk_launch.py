"""aws-train-remote against the SageMaker SDK's ModelTrainer, side by side on one loopback moto
server (aws_train_remote.sandbox on 127.0.0.1): the same input, a first launch and an unchanged
relaunch with each tool, alternating, each a fresh process that returns once the job is created.

The SDK (about 1 GB) is never a dependency of this project: it is installed into its own virtual
environment (--sdk-venv, default .bench-sdk-venv, created on first use with
`pip install "sagemaker==3.27.*"`). Two adaptations, both about the loopback server and not the
comparison: the sandbox answers iam:SimulatePrincipalPolicy (which ModelTrainer calls to check
the role, and moto lacks) by allowing everything, and the driver points the SDK's STS client at
the loopback server (the SDK passes STS's public endpoint explicitly, so AWS_ENDPOINT_URL alone
does not reach it). The SDK's source_dir holds only the script, so it does not tar the data.
Run: python bench/sdk_launch.py [--small 10000] [--sdk-venv PATH]
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)
sys.path.insert(0, BENCH)

import launch as ours  # noqa: E402  (bench/launch.py: the same project and warm-up)

from aws_train_remote.sandbox import LoopbackAws  # noqa: E402

SDK_DRIVER = '''
import os, sys
import sagemaker.core.common_utils as common
import sagemaker.core.helper.session_helper as helper
from sagemaker.train.configs import Compute, InputData, SourceCode
from sagemaker.train.model_trainer import ModelTrainer

helper.sts_regional_endpoint = common.sts_regional_endpoint = lambda region: os.environ["AWS_ENDPOINT_URL"]
root, role = sys.argv[1], sys.argv[2]
trainer = ModelTrainer(
    training_image="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-cpu-py312-ubuntu22.04-sagemaker",
    role=role, source_code=SourceCode(source_dir=os.path.join(root, "sdk_src"), entry_script="train.py"),
    compute=Compute(instance_type="ml.m5.large", instance_count=1))
trainer.train(input_data_config=[InputData(channel_name="train", data_source=os.path.join(root, "data"))],
              wait=False, logs=False)
'''


def sdk_python(venv: str) -> str:
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        print(f"installing the SageMaker SDK into {venv} (once; about 1 GB)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "sagemaker==3.27.*"], check=True)
    return python


def sdk_launch(python, driver, root, role, env, server):
    server.clear_faults()  # also clears the call log
    start = time.perf_counter()
    result = subprocess.run([python, driver, root, role], cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    ops = collections.Counter(c["op"] for c in server.calls())
    data = sum(c["bytes"] for c in server.calls() if c["op"] in ours.DATA_OPS)
    return wall, ops, data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10000, help="how many 1 KiB files (default: 10000)")
    parser.add_argument("--sdk-venv", default=os.path.join(REPO, ".bench-sdk-venv"),
                        help="virtual environment with the SageMaker SDK (created if missing)")
    options = parser.parse_args()
    python = sdk_python(options.sdk_venv)
    server = LoopbackAws(run_jobs=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "proj")
        os.makedirs(os.path.join(root, "sdk_src"))
        ours.make_project(root, options.small)
        shutil.copy(os.path.join(root, "train.py"), os.path.join(root, "sdk_src", "train.py"))
        driver = os.path.join(tmp, "sdk_driver.py")
        with open(driver, "w") as fh:
            fh.write(SDK_DRIVER)
        time.sleep(2.1)  # as bench/launch.py: no file touched in the last 2 s
        env = dict(os.environ, PYTHONPATH=REPO, XDG_CACHE_HOME=os.path.join(tmp, "cache"), HOME=tmp, **server.env())
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        ours.warm_up(env)
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "aws_train_remote")],
                       env=env, check=True)
        role = server.create_role("Bench")
        for attempt in ("first launch", "unchanged relaunch"):
            rows.append((f"ModelTrainer, {attempt}", sdk_launch(python, driver, root, role, env, server)))
            rows.append((f"aws-train-remote, {attempt}", ours.launch(root, env, server)))
    server.stop()
    print(f"input: {options.small:,} x 1 KiB + 1 x 50 MiB; each launch a fresh process, ending once the job exists")
    for name, (wall, ops, data) in rows:
        print(f"{name:<38} wall {wall:6.2f} s   api calls {sum(ops.values()):6d}   bytes uploaded {data:>11,d}")


if __name__ == "__main__":
    main()
