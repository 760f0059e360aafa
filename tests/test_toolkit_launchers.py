"""Jobs built by other tools keep their launcher (issue 18.10): the SageMaker SDK's
distribution={"torch_distributed": {"enabled": True}} becomes the hyperparameter
sagemaker_torch_distributed_enabled, and SageMaker's PyTorch toolkit then starts torchrun across
the hosts (reference/container_contract.md 6.1, 6.4). Our runtime does the same in local mode and
the sandbox; a launcher it cannot honour fails the job before the script, in one line naming it."""
import io
import json
import os
import sys
import tarfile

import boto3
import pytest
from runtime_job import JobRoot
from test_runtime import bootstrap

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311"
PLAIN = """
import json, os, sys
with open(os.path.join(os.environ["SM_MODEL_DIR"], "ran.json"), "w") as fh:
    json.dump({"argv": sys.argv[1:], "rank": os.environ.get("RANK")}, fh)
"""
REFUSED = ["sagemaker_mpi_enabled", "sagemaker_pytorch_ddp_enabled", "sagemaker_distributed_dataparallel_enabled",
           "sagemaker_pytorch_xla_multi_worker_enabled", "sagemaker_parameter_server_enabled",
           "sagemaker_multi_worker_mirrored_strategy_enabled"]


@pytest.fixture
def job(tmp_path):
    return JobRoot(tmp_path / "opt" / "ml")


def sdk_job(job, hps, hosts=("algo-1",), current="algo-1"):
    """A job as the SageMaker SDK writes it: sagemaker_program and the user's hyperparameters, no
    aws-train-remote keys (the code arrives in the code channel, as the harness lays it out)."""
    job.code({"train.py": PLAIN})
    job.configure(hosts=hosts, current=current, instance_type="ml.m5.xlarge")
    raw = {"sagemaker_program": '"train.py"', "epochs": "3", **hps}
    with open(job.layout.config_file("hyperparameters.json"), "w") as fh:
        json.dump(raw, fh)


@pytest.mark.parametrize("host,rank", [("algo-1", "0"), ("algo-2", "1")])
def test_torch_distributed_runs_torchrun_across_the_hosts_as_the_toolkit(job, tmp_path, host, rank):
    """Before: one plain process per host, each believing it was alone."""
    sdk_job(job, {"sagemaker_torch_distributed_enabled": "true", "sagemaker_mpi_enabled": "false"},
            hosts=("algo-1", "algo-2"), current=host)
    result, calls = bootstrap(job, tmp_path)
    assert result.returncode == 0, result.stderr
    [call] = calls
    assert call["argv"] == ["torchrun", "--nnodes", "2", "--nproc_per_node", "1", "--master_addr", "algo-1",
                            "--master_port", "7777", "--node_rank", rank, "train.py", "--epochs", "3"]
    assert call["env"]["MASTER_ADDR"] == "algo-1" and call["env"]["NCCL_PROTO"] == "simple"
    assert call["env"]["SM_DISTRIBUTION_INSTANCE_GROUPS"] == '["homogeneousCluster"]'
    assert "sagemaker_torch_distributed_enabled: torchrun across the hosts" in result.stderr


def test_torch_distributed_with_processes_per_host_on_one_host(job, tmp_path):
    sdk_job(job, {"sagemaker_torch_distributed_enabled": "true", "sagemaker_mpi_num_of_processes_per_host": "2"})
    result, calls = bootstrap(job, tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls[0]["argv"] == ["torchrun", "--nnodes", "1", "--nproc_per_node", "2", "train.py", "--epochs", "3"]


@pytest.mark.parametrize("flag", REFUSED)
def test_a_launcher_the_runtime_cannot_honour_fails_before_the_script_in_one_line(job, tmp_path, flag):
    sdk_job(job, {flag: "true"}, hosts=("algo-1", "algo-2"))
    result, calls = bootstrap(job, tmp_path)
    assert result.returncode == 1
    assert calls == [] and not os.path.exists(os.path.join(job.layout.model_dir, "ran.json"))
    text = open(job.layout.failure_file).read()
    assert text.startswith(f"ClientError: hyperparameter {flag}=true: the job asks for ")
    assert text.count("\n") == 1, text
    assert f"hyperparameter {flag}=true" in result.stderr and "running:" not in result.stderr


@pytest.mark.parametrize("other,refused", [("sagemaker_mpi_enabled", True),
                                           ("sagemaker_pytorch_ddp_enabled", True),
                                           ("sagemaker_distributed_dataparallel_enabled", False)])
def test_the_first_launcher_in_the_toolkits_order_decides(job, tmp_path, other, refused):
    """mpi, then pytorch_ddp, then torch_distributed, then smdistributed (training.py's elif chain)."""
    sdk_job(job, {other: "true", "sagemaker_torch_distributed_enabled": "true"})
    result, calls = bootstrap(job, tmp_path)
    assert (result.returncode, bool(calls)) == ((1, False) if refused else (0, True)), result.stderr


def test_a_host_outside_the_distribution_groups_runs_plainly_as_the_toolkit(job, tmp_path):
    groups = [{"instance_group_name": "data", "instance_type": "ml.c5.xlarge", "hosts": ["algo-2"]},
              {"instance_group_name": "train", "instance_type": "ml.m5.xlarge", "hosts": ["algo-1"]}]
    job.code({"train.py": PLAIN})
    job.configure(hosts=("algo-1", "algo-2"), current="algo-2", groups=groups)
    with open(job.layout.config_file("hyperparameters.json"), "w") as fh:
        json.dump({"sagemaker_program": '"train.py"', "sagemaker_mpi_enabled": "true",
                   "sagemaker_distribution_instance_groups": '["train"]'}, fh)
    result, calls = bootstrap(job, tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == [] and os.path.exists(os.path.join(job.layout.model_dir, "ran.json"))


TORCH_DDP = """
import argparse, os
import torch
import torch.distributed as dist
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int)
a = p.parse_args()
dist.init_process_group("gloo")
total = torch.tensor([dist.get_rank() + 1.0])
dist.all_reduce(total)
with open(os.path.join(os.environ["SM_MODEL_DIR"], f"rank-{dist.get_rank()}.txt"), "w") as fh:
    fh.write(f"{dist.get_world_size()} {total.item()} {os.environ['CURRENT_HOST']} {a.epochs}")
dist.destroy_process_group()
"""


def create_sdk_job(tmp_path, name, hps, script, count=2):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="sdk-bucket")
    archive = tmp_path / "sourcedir.tar.gz"
    (tmp_path / "train.py").write_text(script)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "train.py", arcname="train.py")
    s3.upload_file(str(archive), "sdk-bucket", f"{name}/source/sourcedir.tar.gz")
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_training_job(
        TrainingJobName=name, RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters={"epochs": "2", "sagemaker_program": '"train.py"',
                         "sagemaker_submit_directory": f'"s3://sdk-bucket/{name}/source/sourcedir.tar.gz"', **hps},
        OutputDataConfig={"S3OutputPath": "s3://sdk-bucket/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": count, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    return sm, s3


def test_sdk_torch_distributed_job_runs_torchrun_on_two_hosts_in_the_sandbox(tmp_path, sandbox, monkeypatch):
    pytest.importorskip("torch", reason="torch==2.13.0 is in the test extra")
    if not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")):
        pytest.skip("torchrun is not next to this Python")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sm, s3 = create_sdk_job(tmp_path, "sdk-torchrun", {"sagemaker_torch_distributed_enabled": "true"}, TORCH_DDP)
    sandbox.wait_for_jobs()
    desc = sm.describe_training_job(TrainingJobName="sdk-torchrun")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    body = s3.get_object(Bucket="sdk-bucket", Key="output/sdk-torchrun/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        ranks = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    # one world of 2 across the two hosts (1 + 2 = 3), rank 0 on algo-1, the toolkit's argv
    assert ranks == {"rank-0.txt": "2 3.0 algo-1 2", "rank-1.txt": "2 3.0 algo-2 2"}


def test_sdk_mpi_job_fails_in_the_sandbox_naming_the_setting(tmp_path, sandbox):
    sm, _ = create_sdk_job(tmp_path, "sdk-mpi", {"sagemaker_mpi_enabled": "true"}, PLAIN, count=1)
    sandbox.wait_for_jobs()
    desc = sm.describe_training_job(TrainingJobName="sdk-mpi")
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("AlgorithmError: ClientError: hyperparameter sagemaker_mpi_enabled=true: "
                                            "the job asks for the MPI launcher")
