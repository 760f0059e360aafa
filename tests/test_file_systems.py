"""Issue 10.3: efs:// and fsx:// inputs become FileSystemDataSource channels (File mode, read
only, in the job's VPC); local mode and a local run read a local copy given with --<input>-local."""
import json
import os

from conftest import REPO, run_python
from test_dry_run import validate_create_training_job

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")
VPC = ["--sagemaker-subnets", "subnet-0abc1234", "--sagemaker-security-groups", "sg-0abc1234"]


def dry_run(tmp_path, *args):
    return run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                       "--sagemaker-region", "us-east-1", *args], cwd=tmp_path)


def test_efs_and_fsx_channels_in_the_request(tmp_path):
    for uri, expected in (
            ("efs://fs-0123abcd/datasets/train", {"FileSystemId": "fs-0123abcd", "FileSystemAccessMode": "ro",
                                                  "FileSystemType": "EFS", "DirectoryPath": "/datasets/train"}),
            ("fsx://fs-0123456789abcdef0/fsx1/train/", {"FileSystemId": "fs-0123456789abcdef0",
                                                        "FileSystemAccessMode": "ro", "FileSystemType": "FSxLustre",
                                                        "DirectoryPath": "/fsx1/train"})):
        result = dry_run(tmp_path, "--train", uri, *VPC)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        validate_create_training_job(doc["request"])
        [channel] = [c for c in doc["request"]["InputDataConfig"] if c["ChannelName"] == "train"]
        assert channel == {"ChannelName": "train", "InputMode": "File",
                           "DataSource": {"FileSystemDataSource": expected}}
        assert doc["request"]["VpcConfig"]["Subnets"] == ["subnet-0abc1234"]
        assert doc["inputs"] == []  # nothing of it is uploaded


def test_file_system_mistakes_are_one_line_before_anything(tmp_path):
    for args, expected in (
            (["--train", "efs://fs-0123abcd/data"], "pass --sagemaker-subnets and --sagemaker-security-groups"),
            (["--train", "efs://nope/data", *VPC], "not a file system id"),
            (["--train", "fsx://fs-0123abcd", *VPC], "mount name"),
            (["--train", "efs://fs-0123abcd/data", "--train-mode", "Pipe", *VPC], "in File mode"),
    ):
        result = dry_run(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr
    local_mode = run_python([DEMO, "--sagemaker-run", "local", "--train", "efs://fs-0123abcd/data", *VPC], cwd=tmp_path)
    assert local_mode.returncode == 2 and "pass --train-local FOLDER" in local_mode.stderr
    plain = run_python([DEMO, "--train", "efs://fs-0123abcd/data"], cwd=tmp_path)
    assert plain.returncode == 2 and plain.stderr.count("\n") == 1 and "pass --train-local FOLDER" in plain.stderr


def test_local_mode_and_a_local_run_read_the_local_copy(tmp_path):
    data = os.path.join(REPO, "demo", "data")
    mode = run_python([DEMO, "--epochs", "1", "--sagemaker-run", "local", "--train", "efs://fs-0123abcd/demo",
                       "--train-local", data, *VPC, "--model-dir", "lm"], cwd=tmp_path, timeout=240)
    assert mode.returncode == 0, mode.stderr
    assert "[algo-1] epoch=1 " in mode.stdout and (tmp_path / "lm" / "model.json").is_file()
    plain = run_python([DEMO, "--epochs", "1", "--train", "fsx://fs-0123abcd/fsx1/demo", "--train-local", data,
                        "--model-dir", "m"], cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert json.loads((tmp_path / "m" / "model.json").read_text()) == json.loads(
        (tmp_path / "lm" / "model.json").read_text())


def test_the_sandbox_says_it_cannot_mount_a_file_system(tmp_path, sandbox):
    result = run_python([DEMO, "--epochs", "1", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                         "--train", "efs://fs-0123abcd/demo", *VPC], cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "efs://fs-0123abcd/demo is a file system, which only a SageMaker job can mount" in result.stderr
