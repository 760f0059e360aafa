"""Issue 19.7, old botocore: a request member the installed botocore does not know (the user's boto3
is older than the feature) is one line naming the flag and the botocore release that knows it
(`pip install -U boto3`), before anything is created; setup.cfg's floor covers what the default
request needs. "Old" models are the installed ones with the newer members taken out: in-process
through a botocore Loader with an extra search path, and for a whole launch through AWS_DATA_PATH,
which the user's boto3 honours the same way."""
import configparser
import gzip
import json
import os
import re

import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel
from conftest import REPO, run_python, write_script

from aws_train_remote.aws import api_fields
from aws_train_remote.errors import UsageError

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
SCRIPT = """
from aws_train_remote import training_main

def main(args):
    print("trained")

if __name__ == "__main__":
    training_main(main)
"""
BOTOCORE_DATA = os.path.join(os.path.dirname(__import__("botocore").__file__), "data")


def installed_model(service: str) -> tuple:
    """(api version, the service model as JSON) of the installed botocore."""
    version = sorted(os.listdir(os.path.join(BOTOCORE_DATA, service)))[-1]
    folder = os.path.join(BOTOCORE_DATA, service, version)
    name = next(n for n in os.listdir(folder) if n.startswith("service-2.json"))
    opener = gzip.open if name.endswith(".gz") else open
    with opener(os.path.join(folder, name), "rt", encoding="utf-8") as fh:
        return version, json.load(fh)


def remove_member(model: dict, operation: str, path: str) -> None:
    """Take the member at `path` (dotted, from the operation's input) out of the model."""
    shape = model["shapes"][model["operations"][operation]["input"]["shape"]]
    *parents, last = path.split(".")
    for part in parents:
        shape = model["shapes"][shape["members"][part]["shape"]]
        while shape["type"] == "list":
            shape = model["shapes"][shape["member"]["shape"]]
    del shape["members"][last]
    shape["required"] = [r for r in shape.get("required", []) if r != last]


def write_old_models(root, cut: dict) -> str:
    """A data folder of `cut` = {service: [(operation, member path or None for the operation)]}."""
    for service, removals in cut.items():
        version, model = installed_model(service)
        for operation, path in removals:
            if path is None:
                del model["operations"][operation]
            else:
                remove_member(model, operation, path)
        folder = os.path.join(str(root), service, version)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "service-2.json"), "w", encoding="utf-8") as fh:
            json.dump(model, fh)
    return str(root)


def models_from(root):
    loader = Loader(extra_search_paths=[root])
    return lambda service: ServiceModel(loader.load_service_model(service, "service-2"), service)


def floor() -> str:
    """The botocore floor setup.cfg's install_requires gives: boto3>=X pins botocore>=X (same
    numbering since 1.33), or an explicit botocore>=X."""
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    found = re.findall(r"^\s*(boto3|botocore)>=([\d.]+)", config["options"]["install_requires"], re.M)
    return max(tuple(int(p) for p in v.split(".")) for _, v in found)


def version(text: str) -> tuple:
    return tuple(int(p) for p in text.split("."))


@pytest.fixture
def project(tmp_path):
    write_script(tmp_path, SCRIPT)
    return tmp_path


def dry_requests(project, *args):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", *args], cwd=project)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    if "submit_service_job" in doc:
        return [("batch", "SubmitServiceJob", doc["submit_service_job"])]
    return [("sagemaker", "CreateTrainingJob", doc["request"])]


@pytest.mark.parametrize("args,operation,path,line", [
    (["--sagemaker-infra-check"], "CreateTrainingJob", "InfraCheckConfig",
     "--sagemaker-infra-check: needs botocore 1.33.3 or later (CreateTrainingJob's InfraCheckConfig); this is "
     "botocore 1.30.0; pip install -U boto3"),
    (["--sagemaker-output-compression", "none"], "CreateTrainingJob", "OutputDataConfig.CompressionType",
     "--sagemaker-output-compression: needs botocore 1.29.158 or later"),
    (["--sagemaker-experiment-name", "e", "--sagemaker-experiment-run", "r"], "CreateTrainingJob",
     "ExperimentConfig.RunName", "--sagemaker-experiment-run: needs botocore 1.29.20 or later"),
    (["--sagemaker-session-chaining"], "CreateTrainingJob", "SessionChainingConfig",
     "--sagemaker-session-chaining: needs botocore 1.34.95 or later"),
    (["--sagemaker-tensorboard"], "CreateTrainingJob", "TensorBoardOutputConfig",
     "--sagemaker-tensorboard: needs botocore 1.13.32 or later"),
    (["--sagemaker-queue", "q", "--sagemaker-queue-quota-share", "qs"], "SubmitServiceJob", "quotaShareName",
     "--sagemaker-queue-quota-share: needs botocore 1.42.72 or later (SubmitServiceJob's quotaShareName)"),
    (["--sagemaker-queue", "q"], "SubmitServiceJob", None,
     "--sagemaker-queue: needs botocore 1.39.16 or later (batch SubmitServiceJob)"),
])
def test_a_member_the_model_lacks_names_its_flag_and_release(project, tmp_path, args, operation, path, line):
    service = "batch" if operation == "SubmitServiceJob" else "sagemaker"
    old = models_from(write_old_models(tmp_path / "models", {service: [(operation, path)]}))
    requests = dry_requests(project, *args)
    with pytest.raises(UsageError) as caught:
        api_fields.check_known(requests, old, "1.30.0")
    assert line in str(caught.value) and str(caught.value).count("\n") == 0
    api_fields.check_known(requests, models_from(str(tmp_path / "nothing-cut")), "1.44.8")  # the installed: fine


def test_the_default_request_needs_no_more_than_the_floor_in_setup_cfg(project, tmp_path):
    """The floor model: every member the table dates after setup.cfg's floor taken out. The default
    request, and the flags whose members are older than the floor, pass against it; the table's date
    for the default request's newest member (ContainerEntrypoint, 1.28.3) is within the floor."""
    lowest = floor()
    newer = {}
    for (service, operation, path), (_flag, since) in api_fields.FIELDS.items():
        if version(since) > lowest:
            newer.setdefault(service, []).append((operation, path))
    for (service, operation), (_flag, since) in api_fields.OPERATIONS.items():
        if version(since) > lowest:
            newer.setdefault(service, []).append((operation, None))
    assert ("CreateTrainingJob", "SessionChainingConfig") in newer["sagemaker"]  # 1.34.95: after the floor
    at_floor = models_from(write_old_models(tmp_path / "floor", newer))
    for args in ([], ["--sagemaker-keep-alive", "600", "--sagemaker-max-retries", "2", "--sagemaker-tensorboard",
                      "--sagemaker-output-compression", "none", "--sagemaker-infra-check"]):
        api_fields.check_known(dry_requests(project, *args), at_floor, ".".join(map(str, lowest)))
    default_needs = [since for (_s, _o, _p), (flag, since) in api_fields.FIELDS.items() if flag is None]
    assert default_needs and all(version(v) <= lowest for v in default_needs), (default_needs, lowest)
    with pytest.raises(UsageError, match="--sagemaker-session-chaining: needs botocore 1.34.95"):
        api_fields.check_known(dry_requests(project, "--sagemaker-session-chaining"), at_floor, "1.34.0")


def test_an_old_boto3_stops_a_launch_before_anything_is_created(project, sandbox, tmp_path):
    """The whole launch, with the user's botocore seeing an old model through AWS_DATA_PATH."""
    data = write_old_models(tmp_path / "models", {"sagemaker": [("CreateTrainingJob", "InfraCheckConfig")],
                                                  "batch": [("SubmitServiceJob", None)]})
    env = {"AWS_DATA_PATH": data}
    for args, line in ((["--sagemaker-infra-check"], "--sagemaker-infra-check: needs botocore 1.33.3 or later"),
                       (["--sagemaker-queue", "q"], "--sagemaker-queue: needs botocore 1.39.16 or later")):
        result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, *args], cwd=project,
                            env=env)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert line in result.stderr and "pip install -U boto3" in result.stderr, result.stderr
    assert [c["op"] for c in sandbox.calls()] == []  # not even a read: the check needs no AWS call
