"""The in-container bootstrap, run as a real subprocess under a temporary /opt/ml root with
fake nvidia-smi, neuron-ls and torchrun on PATH that record how they were called."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_python
from runtime_job import JobRoot, fake_tools

SCRIPT = """
import json, os, sys
from aws_train_remote import training_main

def main(args):
    keep = {k: v for k, v in os.environ.items() if k.startswith("SM_") or k in ("TRAINING_JOB_NAME", "CURRENT_HOST", "FOO")}
    out = {"argv": sys.argv[1:], "args": {k: v for k, v in vars(args).items() if not k.startswith("sagemaker_")},
           "env": keep, "cwd": os.getcwd(), "files": sorted(os.listdir(args.train)) if os.path.isdir(args.train) else None}
    with open(os.path.join(args.model_dir, "seen.json"), "w") as fh:
        json.dump(out, fh)

if __name__ == "__main__":
    training_main(main, inputs={"train": "data"}, additional_arguments=[
        {"dest": "--epochs", "type": int, "default": 1}, {"dest": "--fast", "action": "store_true"},
        {"dest": "--names", "nargs": "*", "default": []}, {"dest": "rest", "nargs": "*"}])
"""


@pytest.fixture
def job(tmp_path):
    return JobRoot(tmp_path / "opt" / "ml")


def bootstrap(job, tmp_path, gpus=0, neuron_devices=0, extra_env=None, timeout=120):
    tools = fake_tools(str(tmp_path / "fakebin"))
    python = os.path.join(tools, "python3")  # the runtime takes torchrun from beside its interpreter: the fake one
    if not os.path.exists(python):
        os.symlink(sys.executable, python)
    record = tmp_path / "record.jsonl"
    env = {"SAGEMAKER_BASE_DIR": job.root, "PATH": tools + os.pathsep + os.environ["PATH"],
           "FAKE_GPUS": str(gpus), "FAKE_NEURON_DEVICES": str(neuron_devices), "FAKE_RECORD": str(record),
           "TRAINING_JOB_NAME": "job-1", "FOO": "bar", **(extra_env or {})}
    full_env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    result = subprocess.run([python, "-m", "aws_train_remote.runtime"], cwd=str(tmp_path), env=full_env,
                            capture_output=True, text=True, timeout=timeout)
    calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return result, calls


def seen(job):
    with open(os.path.join(job.layout.model_dir, "seen.json")) as fh:
        return json.load(fh)


def test_single_host_plain_process_with_remapped_argv(job, tmp_path):
    job.code({"train.py": SCRIPT})
    job.channel("train", {"a.csv": "1", "sub/b.csv": "2"})
    argv = ["--epochs", "3", "--fast", "--names", "a b", "ü", "--", "--not-a-flag", "x y"]
    job.configure(argv=argv, inputs={"train": "File"}, hps={"epochs": "3", "lr": "0.5", "name": '"resnet"'})
    result, calls = bootstrap(job, tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == []  # no torchrun on one host with no accelerators
    out = seen(job)
    L = job.layout
    assert out["argv"][-len(argv):] == argv  # the user's tokens, unchanged, after the remapped paths
    assert out["args"]["train"] == L.channel_dir("train")
    assert out["args"]["model_dir"] == L.model_dir and out["args"]["output_dir"] == L.output_data_dir
    assert out["args"]["checkpoint_dir"] == os.path.join(job.root, "checkpoints")
    assert (out["args"]["epochs"], out["args"]["fast"], out["args"]["names"]) == (3, True, ["a b", "ü"])
    assert out["args"]["rest"] == ["--not-a-flag", "x y"]
    assert out["files"] == ["a.csv", "sub"]
    assert out["cwd"] == L.code_dir
    env = out["env"]
    assert env["SM_CHANNEL_TRAIN"] == L.channel_dir("train")
    assert env["SM_MODEL_DIR"] == L.model_dir and env["SM_OUTPUT_DATA_DIR"] == L.output_data_dir
    assert env["SM_HPS"] == '{"epochs":3,"lr":0.5,"name":"resnet"}'
    assert (env["SM_HP_EPOCHS"], env["SM_HP_LR"], env["SM_HP_NAME"]) == ("3", "0.5", "resnet")
    assert env["SM_HOSTS"] == '["algo-1"]' and env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_CHANNELS"] == '["train"]'  # issue 8.4: our driver and code channels are hidden everywhere
    assert not any(k in env for k in ("SM_CHANNEL_ATR_DRIVER", "SM_CHANNEL_CODE", "SM_CHANNEL_ATR_NEURON_CACHE"))
    assert list(json.loads(env["SM_INPUT_DATA_CONFIG"])) == ["train"]
    assert env["SM_NUM_GPUS"] == "0" and env["SM_NUM_NEURONS"] == "0" and int(env["SM_NUM_CPUS"]) >= 1
    assert env["SM_USER_ENTRY_POINT"] == "train.py" and env["SM_MODULE_NAME"] == "train"
    assert env["TRAINING_JOB_NAME"] == "job-1" and env["FOO"] == "bar" and env["CURRENT_HOST"] == "algo-1"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["is_master"] is True and training_env["hyperparameters"]["epochs"] == 3
    assert training_env["channels"] == ["train"] and list(training_env["channel_input_dirs"]) == ["train"]
    assert list(training_env["input_data_config"]) == ["train"]
    assert "sagemaker_atr_paths" not in env["SM_HPS"] and "SM_HP_SAGEMAKER_PROGRAM" not in env
    assert os.path.exists(L.success_file)


def test_four_gpus_and_no_distribution_chosen_run_one_plain_process_as_the_toolkit(job, tmp_path):
    """Issue 8.3: SageMaker's toolkit starts one process per host unless asked, also with 4 GPUs."""
    job.code({"train.py": SCRIPT})
    job.configure(argv=["--epochs", "2"], instance_type="ml.g5.12xlarge")
    result, calls = bootstrap(job, tmp_path, gpus=4)
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert "one process on this host with 4 GPUs" in result.stderr and "--sagemaker-distribution torchrun" \
        in result.stderr


def test_four_gpus_one_node_with_torchrun(job, tmp_path):
    job.code({"train.py": SCRIPT})
    job.configure(argv=["--epochs", "2"], instance_type="ml.g5.12xlarge", distribution="torchrun")
    result, calls = bootstrap(job, tmp_path, gpus=4)
    assert result.returncode == 0, result.stderr
    [call] = calls
    argv = call["argv"]
    assert argv[:6] == ["torchrun", "--nnodes", "1", "--nproc_per_node", "4", "train.py"]
    assert argv[-2:] == ["--epochs", "2"] and "--master_addr" not in argv
    assert call["env"]["NCCL_PROTO"] == "simple" and "FI_PROVIDER" not in call["env"]
    assert call["cwd"] == job.layout.code_dir


@pytest.mark.parametrize("host,rank", [("algo-1", "0"), ("algo-2", "1")])
def test_two_trn1_hosts_exact_torchrun(job, tmp_path, host, rank):
    job.code({"train.py": SCRIPT})
    job.configure(argv=["--epochs", "2"], hosts=("algo-1", "algo-2"), current=host,
                  instance_type="ml.trn1.32xlarge")
    result, calls = bootstrap(job, tmp_path, neuron_devices=16)
    assert result.returncode == 0, result.stderr
    [call] = calls
    front = ["torchrun", "--nnodes", "2", "--nproc_per_node", "32", "--master_addr", "algo-1", "--master_port",
             "7777", "--node_rank", rank, "train.py"]
    assert call["argv"][:len(front)] == front
    assert call["env"] == {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "RDMAV_FORK_SAFE": "1",
                           "NCCL_PROTO": "simple", "NCCL_SOCKET_IFNAME": "eth0", "NCCL_IB_DISABLE": "1",
                           "NCCL_DEBUG": "WARN", "MASTER_ADDR": "algo-1", "MASTER_PORT": "7777",
                           "NEURON_COMPILE_CACHE_URL": os.path.join(job.root, "neuron-compile-cache"),
                           "SM_NUM_NEURONS": "32", "SM_NUM_GPUS": "0",
                           "SM_DISTRIBUTION_INSTANCE_GROUPS": '["homogeneousCluster"]'}


def test_trn2_parallel_compile_and_nproc_override(job, tmp_path):
    job.code({"train.py": SCRIPT})
    job.configure(hosts=("algo-1", "algo-2", "algo-3"), current="algo-1", instance_type="ml.trn2.48xlarge",
                  hps={"sagemaker_mpi_num_of_processes_per_host": "8"})
    result, calls = bootstrap(job, tmp_path, extra_env={"RUN_NEURON_PARALLEL_COMPILE": "1"})
    assert result.returncode == 0, result.stderr
    assert calls[0]["argv"][:13] == ["neuron_parallel_compile", "torchrun", "--nnodes", "3", "--nproc_per_node", "8",
                                     "--master_addr", "algo-1", "--master_port", "7777", "--node_rank", "0",
                                     "train.py"]
    assert calls[0]["env"]["SM_NUM_NEURONS"] == "64"


def test_master_and_rank_follow_instance_group_order(job, tmp_path):
    job.code({"train.py": SCRIPT})
    groups = [{"instance_group_name": "homogeneousCluster", "instance_type": "ml.g5.xlarge",
               "hosts": ["algo-3", "algo-1", "algo-2"]}]
    job.configure(hosts=("algo-1", "algo-2", "algo-3"), current="algo-1", groups=groups, distribution="torchrun")
    result, calls = bootstrap(job, tmp_path, gpus=1)
    assert result.returncode == 0, result.stderr
    argv = calls[0]["argv"]
    assert argv[argv.index("--master_addr") + 1] == "algo-3" and argv[argv.index("--node_rank") + 1] == "1"


def test_heterogeneous_cluster_only_distribution_group_runs_torchrun(job, tmp_path):
    job.code({"train.py": SCRIPT})
    groups = [{"instance_group_name": "data", "instance_type": "ml.c5.xlarge", "hosts": ["algo-2"]},
              {"instance_group_name": "gpu", "instance_type": "ml.p4d.24xlarge", "hosts": ["algo-3", "algo-1"]}]
    hps = {"sagemaker_distribution_instance_groups": '["gpu"]'}
    job.configure(hosts=("algo-1", "algo-2", "algo-3"), current="algo-1", groups=groups, hps=hps,
                  distribution="torchrun")
    result, calls = bootstrap(job, tmp_path, gpus=8)
    assert result.returncode == 0, result.stderr
    assert calls[0]["argv"][:11] == ["torchrun", "--nnodes", "2", "--nproc_per_node", "8", "--master_addr", "algo-3",
                                     "--master_port", "7777", "--node_rank", "1"]
    assert calls[0]["env"]["FI_EFA_USE_DEVICE_RDMA"] == "1"

    other = JobRoot(tmp_path / "host2" / "opt" / "ml")
    other.code({"train.py": SCRIPT})
    other.configure(hosts=("algo-1", "algo-2", "algo-3"), current="algo-2", groups=groups, hps=hps,
                    distribution="torchrun")
    (tmp_path / "record.jsonl").unlink()
    result, calls = bootstrap(other, tmp_path, gpus=0)
    assert result.returncode == 0, result.stderr
    assert calls == []  # a plain process on the data host
    env = seen(other)["env"]
    assert env["SM_IS_HETERO"] == "true" and env["SM_CURRENT_INSTANCE_GROUP"] == "data"
    assert json.loads(env["SM_TRAINING_ENV"])["master_hostname"] == "algo-3"


def test_distribution_none_runs_plain_processes(job, tmp_path):
    job.code({"train.py": SCRIPT})
    job.configure(hosts=("algo-1", "algo-2"), current="algo-2", distribution="none")
    result, calls = bootstrap(job, tmp_path, gpus=4)
    assert result.returncode == 0 and calls == []


def test_pipe_mode_points_at_the_fifo(job, tmp_path):
    job.code({"train.py": SCRIPT})
    job.configure(inputs={"train": "Pipe"})
    result, _ = bootstrap(job, tmp_path)
    assert result.returncode == 0, result.stderr
    assert seen(job)["args"]["train"] == job.layout.pipe_path("train", 0)
    assert seen(job)["args"]["train_mode"] == "Pipe"


FAILING = """
import sys
from aws_train_remote import training_main
def main(args):
    print("about to fail", flush=True)
    def inner():
        raise ValueError("bad shape (3, 4)")
    inner()
if __name__ == "__main__":
    training_main(main)
"""


def test_failure_file_names_the_exception(job, tmp_path):
    job.code({"train.py": FAILING})
    job.configure()
    result, _ = bootstrap(job, tmp_path)
    assert result.returncode == 1
    text = open(job.layout.failure_file).read()
    assert text.startswith("ValueError: bad shape (3, 4)\nExitCode 1\n")  # SageMaker adds "AlgorithmError: "
    assert 'in inner' in text and "Traceback (most recent call last)" in text
    assert "about to fail" in result.stdout


def test_script_written_failure_file_is_kept(job, tmp_path):
    body = FAILING.replace('print("about to fail", flush=True)',
                           'open(__import__("os").environ["SM_OUTPUT_DIR"] + "/failure", "w").write("user reason")')
    job.code({"train.py": body})
    job.configure()
    result, _ = bootstrap(job, tmp_path)
    assert result.returncode == 1
    assert open(job.layout.failure_file).read() == "user reason"


def test_requirements_failure_reports_pip_error(job, tmp_path):
    job.code({"train.py": SCRIPT, "requirements.txt": "this-package-does-not-exist-atr==0.0.1\n"})
    job.configure(hps={"sagemaker_atr_requirements": '"requirements.txt"'})
    result, _ = bootstrap(job, tmp_path, extra_env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path)})
    assert result.returncode == 1
    text = open(job.layout.failure_file).read()
    assert text.startswith("ClientError: pip install -r requirements.txt failed")
    assert "this-package-does-not-exist-atr" in text


def test_malicious_bundle_is_refused(job, tmp_path):
    job.code({"train.py": SCRIPT, "../../escape.py": "x = 1"})
    job.configure()
    result, _ = bootstrap(job, tmp_path)
    assert result.returncode == 1
    assert "code bundle refused" in open(job.layout.failure_file).read()
    assert not (tmp_path / "opt" / "escape.py").exists()


def test_bad_entry_point_is_refused(job, tmp_path):
    job.code({"train.py": SCRIPT})
    job.configure(program="../evil.py")
    result, _ = bootstrap(job, tmp_path)
    assert result.returncode == 1
    assert "invalid entry point '../evil.py'" in open(job.layout.failure_file).read()


PROGRESS = """
import sys, time
for i in range(200):
    sys.stdout.write(f"\\rprogress {i}%")
    sys.stdout.flush()
sys.stdout.write("\\rprogress done\\n")
print("after")
"""


def test_carriage_return_progress_becomes_few_whole_lines(job, tmp_path):
    job.code({"train.py": PROGRESS})
    job.configure()
    result, _ = bootstrap(job, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "\r" not in result.stdout
    assert lines[-2:] == ["progress done", "after"]
    assert sum(1 for line in lines if line.startswith("progress")) <= 3


SLOW = """
import os, signal, sys, time
def on_term(signum, frame):
    open(os.environ["SM_MODEL_DIR"] + "/saved-on-sigterm", "w").write("checkpoint")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(60)
"""


def test_sigterm_reaches_the_script(job, tmp_path):
    job.code({"train.py": SLOW})
    job.configure()
    env = dict(os.environ, PYTHONPATH=REPO, SAGEMAKER_BASE_DIR=job.root)
    proc = subprocess.Popen([sys.executable, "-m", "aws_train_remote.runtime"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    line = ""
    while time.time() < deadline and "ready" not in line:
        line = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert os.path.exists(os.path.join(job.layout.model_dir, "saved-on-sigterm"))


DRIVER = r"""
import json, os, signal, sys, threading, time
from aws_train_remote.runtime.process import run_child
if float(sys.argv[2]) >= 0:  # the platform's SIGTERM to the runtime, this many seconds in
    threading.Timer(float(sys.argv[2]), os.kill, (os.getpid(), signal.SIGTERM)).start()
started = time.monotonic()
code, child = run_child([sys.executable, "-c", sys.argv[1]], ".", dict(os.environ), grace=1.5)
print(json.dumps({"code": code, "signalled": child.signalled, "seconds": time.monotonic() - started}))
"""
HELPER = """
import os, signal, subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(os.environ["HELPER_PID"], "w").write(str(helper.pid))
"""


def run_driver(tmp_path, script, sigterm_after):
    env = dict(os.environ, PYTHONPATH=REPO, HELPER_PID=str(tmp_path / "helper.pid"))
    result = subprocess.run([sys.executable, "-c", DRIVER, script, str(sigterm_after)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run_driver.stdout = result.stdout
    return json.loads(result.stdout.splitlines()[-1]), int((tmp_path / "helper.pid").read_text())


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1].startswith("Z")  # a zombie waiting for init to reap it
    except FileNotFoundError:
        return True


def test_sigterm_goes_to_the_main_process_only_its_helpers_live_on(tmp_path):
    """Issue 18.1: the script's own helper processes (DataLoader workers, pools) must outlive the
    SIGTERM until the script has saved; before, the whole group got it and they died at once."""
    script = HELPER + """
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while not stop:
    time.sleep(0.05)
time.sleep(0.3)
print("helper alive after SIGTERM:", helper.poll() is None, flush=True)
helper.kill()
"""
    outcome, _ = run_driver(tmp_path, script, 1.0)
    assert outcome["code"] == 0 and outcome["signalled"] == signal.SIGTERM
    assert "helper alive after SIGTERM: True" in run_driver.stdout


def test_the_group_is_killed_when_the_grace_period_ends(tmp_path):
    script = HELPER + "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"
    outcome, helper = run_driver(tmp_path, script, 1.0)
    assert outcome["code"] == -signal.SIGKILL and 2.5 <= outcome["seconds"] < 20, outcome
    assert gone(helper)


def test_what_the_script_leaves_running_ends_with_it(tmp_path):
    outcome, helper = run_driver(tmp_path, HELPER + "print('main done')\n", -1)
    assert outcome["code"] == 0 and outcome["signalled"] is None and outcome["seconds"] < 20, outcome
    assert gone(helper)


def test_neuron_cache_restored_and_new_entries_saved_to_checkpoint(job, tmp_path):
    compile_script = """
import os
cache = os.environ["NEURON_COMPILE_CACHE_URL"]
assert open(os.path.join(cache, "neuronxcc-2.0/MODULE_old/model.neff")).read() == "old"
os.makedirs(os.path.join(cache, "neuronxcc-2.0/MODULE_new"), exist_ok=True)
open(os.path.join(cache, "neuronxcc-2.0/MODULE_new/model.neff"), "w").write("new")
"""
    job.code({"train.py": compile_script})
    job.channel("atr_neuron_cache", {".atr-cache-marker": "x", "neuronxcc-2.0/MODULE_old/model.neff": "old"})
    job.configure(instance_type="ml.trn1.2xlarge", channels=["atr_neuron_cache"], distribution="none")
    result, _ = bootstrap(job, tmp_path, neuron_devices=1)
    assert result.returncode == 0, result.stderr
    saved = os.path.join(job.root, "checkpoints", "_atr_neuron_cache", "neuronxcc-2.0")
    assert os.listdir(saved) == ["MODULE_new"]  # only the new entry; boto3 absent => checkpoint path
    assert "1 new entries saved (checkpoint)" in result.stderr


TORCH_SCRIPT = """
import os
import torch
import torch.distributed as dist
from aws_train_remote import training_main

def main(args):
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    total = torch.tensor([rank + 1.0])
    dist.all_reduce(total)
    with open(os.path.join(args.model_dir, f"rank-{rank}.txt"), "w") as fh:
        fh.write(f"{world} {total.item()} {os.environ['LOCAL_RANK']}")
    dist.destroy_process_group()

if __name__ == "__main__":
    training_main(main)
"""


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_torchrun_two_processes_on_cpu(job, tmp_path):
    pytest.importorskip("torch", reason="torch==2.13.0 could not be installed (scripts/test.sh installs it)")
    bindir = os.path.dirname(sys.executable)
    if not os.path.exists(os.path.join(bindir, "torchrun")):
        pytest.skip("torchrun is not next to this Python")
    job.code({"train.py": TORCH_SCRIPT})
    job.configure(hps={"sagemaker_mpi_num_of_processes_per_host": "2"}, distribution="torchrun")
    env = {"SAGEMAKER_BASE_DIR": job.root, "PET_MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin"}  # not on PATH: found beside the interpreter (issue 8.2)
    result = run_python(["-m", "aws_train_remote.runtime"], cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"running: {bindir}/torchrun --nnodes 1 --nproc_per_node 2 train.py" in result.stderr
    for rank in (0, 1):
        text = open(os.path.join(job.layout.model_dir, f"rank-{rank}.txt")).read()
        assert text == f"2 3.0 {rank}"


PLAIN_SAGEMAKER = """
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--flag")
parser.add_argument("--name")
parser.add_argument("--nested")
parser.add_argument("-x")
args = parser.parse_args()
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as fh:
    json.dump({"argv": sys.argv[1:], "user_args": json.loads(os.environ["SM_USER_ARGS"]),
               "hp_flag": os.environ["SM_HP_FLAG"], "train": os.environ["SM_CHANNEL_TRAIN"]}, fh)
"""


def test_plain_sagemaker_script_gets_the_toolkit_argv(job, tmp_path):
    job.code({"train.py": PLAIN_SAGEMAKER})
    raw = {"epochs": "3", "flag": "true", "name": '"resnet"', "nested": '{"a": 1, "b": [1, 2]}', "x": "1",
           "sagemaker_program": '"train.py"'}
    job.configure(inputs={"train": "File"})
    with open(job.layout.config_file("hyperparameters.json"), "w") as fh:
        json.dump(raw, fh)  # a job as the SageMaker SDK writes it: no aws-train-remote keys
    result, _ = bootstrap(job, tmp_path)
    assert result.returncode == 0, result.stderr
    got = seen(job)
    expected = ["--epochs", "3", "--flag", "True", "--name", "resnet", "--nested", "a=1,b=[1, 2]", "-x", "1"]
    assert got["argv"] == expected == got["user_args"]
    assert got["hp_flag"] == "true" and got["train"] == job.layout.channel_dir("train")


def test_neuron_cache_saved_to_s3_with_boto3_when_the_image_has_it(job, tmp_path, aws):
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="cache-bucket")
    job.code({"train.py": """
import os
cache = os.environ["NEURON_COMPILE_CACHE_URL"]
os.makedirs(os.path.join(cache, "neuronxcc-2.0/MODULE_a"), exist_ok=True)
open(os.path.join(cache, "neuronxcc-2.0/MODULE_a/model.neff"), "w").write("neff")
"""})
    job.configure(instance_type="ml.trn1.2xlarge", distribution="none")
    result, _ = bootstrap(job, tmp_path, neuron_devices=1,
                          extra_env={"ATR_NEURON_CACHE_S3": "s3://cache-bucket/neuron-cache/base/"})
    assert result.returncode == 0, result.stderr
    assert "1 new entries saved (boto3)" in result.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="cache-bucket")["Contents"]]
    assert keys == ["neuron-cache/base/neuronxcc-2.0/MODULE_a/model.neff"]


def test_line_relay_units():
    import io

    from aws_train_remote.runtime.process import MAX_LINE, LineRelay

    clock = iter([0.0, 1.0, 6.0, 7.0, 20.0]).__next__
    out = io.StringIO()
    relay = LineRelay(out, clock=clock)
    relay.feed(b"a\r\nb\n10%\r20%\r")
    relay.feed(b"30%\r40%\rdone\nx" + b"y" * (MAX_LINE + 5))
    relay.close()
    lines = out.getvalue().split("\n")
    assert lines[:5] == ["a", "b", "10%", "30%", "done"]  # 20% and 40% fell inside the 5 s window
    assert len(lines[5]) == MAX_LINE and lines[6] == "y" * 6


def test_only_our_own_jobs_hide_the_code_channel():
    from aws_train_remote.runtime.environment import script_channels

    ours = {"atr_driver": {}, "code": {}, "atr_neuron_cache": {}, "train": {}}
    assert list(script_channels(ours)) == ["train"]
    theirs = {"code": {}, "train": {}}  # e.g. the SageMaker SDK's own code channel: the toolkit shows it
    assert list(script_channels(theirs)) == ["code", "train"]


FAILING_RANK = """
import os
from aws_train_remote import training_main

def main(args):
    if os.environ.get("RANK") == "1":
        raise ValueError("bad batch on rank 1")

if __name__ == "__main__":
    training_main(main)
"""


def test_failing_torchrun_rank_comes_first_and_our_frames_are_gone(job, tmp_path):
    """Issue 8.5: the failing rank's exception leads the failure reason, not torchrun's
    ChildFailedError; the traceback starts in the user's code (no training.py / local_run.py)."""
    pytest.importorskip("torch", reason="torch==2.13.0 could not be installed (scripts/test.sh installs it)")
    job.code({"train.py": FAILING_RANK})
    job.configure(hps={"sagemaker_mpi_num_of_processes_per_host": "2"}, distribution="torchrun")
    env = {"SAGEMAKER_BASE_DIR": job.root, "PET_MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    result = run_python(["-m", "aws_train_remote.runtime"], cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 1
    text = open(job.layout.failure_file).read()
    assert text.startswith("ValueError: bad batch on rank 1\nExitCode 1\n"), text
    tracebacks = [block for block in result.stderr.split("Traceback (most recent call last)")[1:]
                  if "bad batch on rank 1" in block]
    assert tracebacks and not any(name in block for block in tracebacks
                                  for name in ("training.py", "local_run.py", "atr.pyz"))


def test_plain_failure_traceback_has_only_the_users_frames(job, tmp_path):
    job.code({"train.py": FAILING_RANK.replace('os.environ.get("RANK") == "1"', "True")})
    job.configure()
    result, _ = bootstrap(job, tmp_path)
    assert result.returncode == 1
    block = result.stderr.split("Traceback (most recent call last)")[1]
    assert 'train.py", line 7, in main' in block and "aws_train_remote" not in block
