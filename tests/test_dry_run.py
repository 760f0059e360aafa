"""--sagemaker-dry-run: the exact request, valid for botocore, with no network and no credentials."""
import hashlib
import json
import os
import tarfile

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator
from conftest import REPO, run_python, write_script

from aws_train_remote import contract

ROLE = "arn:aws:iam::111122223333:role/TrainRole"
SCRIPT = """
from aws_train_remote import training_main
def main(args):
    raise SystemExit("main must not run in a dry run")
if __name__ == "__main__":
    training_main(main, inputs={"train": "data", "extra": "s3://other-bucket/extra/"},
                  dependencies={"mylib": "libs/mylib"},
                  additional_arguments=[{"dest": "--epochs", "type": int, "default": 2},
                                        {"dest": "--fast", "action": "store_true"},
                                        {"dest": "--names", "nargs": "*", "default": []}])
"""


def validate_create_training_job(request):
    model = get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(request, model.operation_model("CreateTrainingJob").input_shape)
    assert not report.has_errors(), report.generate_report()


@pytest.fixture
def project(tmp_path):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "a.csv").write_text("1,2\n")
    (tmp_path / "data" / "sub" / "b.csv").write_text("3,4\n")
    (tmp_path / "libs" / "mylib").mkdir(parents=True)
    (tmp_path / "libs" / "mylib" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "helper.py").write_text("Y = 2\n")
    (tmp_path / ".env").write_text("SECRET=1\n")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    return tmp_path


def dry_run(project, *extra, env=None):
    # No credentials and an endpoint nothing listens on: any AWS call would fail loudly.
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", **(env or {})}
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-region",
                         "eu-west-1", *extra], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_dry_run_request_is_valid_and_complete(project):
    doc = dry_run(project, "--sagemaker-role", ROLE, "--epochs", "5", "--fast", "--names", "a b", "ü",
                  "--sagemaker-spot", "--sagemaker-env", "MODE=test", "--sagemaker-tag", "team=ml",
                  "--sagemaker-metric", "loss=loss=([0-9.]+)", "--sagemaker-instance-count", "2",
                  "--sagemaker-max-retries", "2", "--sagemaker-kms-key", "alias/k",
                  "--sagemaker-subnets", "subnet-0123abcd,subnet-0123abce", "--sagemaker-security-groups",
                  "sg-0123abcd", "--extra-mode", "FastFile")
    request = doc["request"]
    validate_create_training_job(request)
    bucket = "sagemaker-eu-west-1-111122223333"
    assert request["RoleArn"] == ROLE
    assert request["TrainingJobName"].startswith("train-") and len(request["TrainingJobName"]) <= 63
    assert request["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "python3", "/opt/ml/input/data/atr_driver/atr.pyz"]
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [{"Name": "loss", "Regex": "loss=([0-9.]+)"}]
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert list(channels) == ["atr_driver", "code", "train", "extra"]
    assert channels["extra"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://other-bucket/extra/"
    assert channels["extra"]["InputMode"] == "FastFile"
    train = channels["train"]["DataSource"]["S3DataSource"]
    assert train["S3DataType"] == "ManifestFile"
    assert train["S3Uri"].startswith(f"s3://{bucket}/aws-train-remote/store/manifests/")
    hps = request["HyperParameters"]
    assert contract.decode_argv(hps) == ["--epochs", "5", "--fast", "--names", "a b", "ü"]
    assert (hps["epochs"], hps["fast"], hps["names"]) == ("5", "true", json.dumps(["a b", "ü"], ensure_ascii=False))
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 90000}
    assert request["EnableManagedSpotTraining"] is True
    assert request["CheckpointConfig"]["S3Uri"] == f"s3://{bucket}/aws-train-remote/checkpoints/train/"
    assert request["Environment"] == {"MODE": "test"}
    assert {"Key": "team", "Value": "ml"} in request["Tags"]
    assert request["RetryStrategy"] == {"MaximumRetryAttempts": 2}
    assert request["OutputDataConfig"] == {"S3OutputPath": f"s3://{bucket}/aws-train-remote/output", "KmsKeyId": "alias/k"}
    assert request["VpcConfig"]["SecurityGroupIds"] == ["sg-0123abcd"]
    assert request["ResourceConfig"]["InstanceCount"] == 2
    paths = json.loads(hps[contract.HP_PATHS])
    assert paths["dependencies"] == {"--mylib": "_atr_deps/mylib/mylib"}
    assert json.loads(hps[contract.HP_REQUIREMENTS]) == "requirements.txt"


def test_upload_plan_shows_the_manifest_the_packs_and_what_would_be_sent(project):
    big = os.urandom(2 * 1024 * 1024)
    (project / "data" / "big.bin").write_bytes(big)
    doc = dry_run(project, "--sagemaker-role", ROLE)
    train_uri = [c for c in doc["request"]["InputDataConfig"] if c["ChannelName"] == "train"][0]
    [train] = doc["inputs"]
    assert train["layout"] == "manifest" and train["input"] == "train"
    assert train["manifest"] == train_uri["DataSource"]["S3DataSource"]["S3Uri"].split("/", 3)[3]
    assert (train["files"], train["bytes"], train["packs"]) == (3, len(big) + 8, 1)
    kinds = {o["kind"]: o for o in train["objects"]}
    assert kinds["pack"]["files"] == 2 and kinds["pack"]["size"] == 8  # a.csv and sub/b.csv, 4 bytes each
    assert kinds["file"]["key"].endswith("/store/objects/" + hashlib.sha256(big).hexdigest())
    assert kinds["file"]["local"] == str(project / "data" / "big.bin")
    assert kinds["tree"]["key"] == train["tree"]
    sent = {row["key"] for row in doc["uploads"]}  # every object a launch needs, the tree included
    assert {o["key"] for o in train["objects"]} <= sent
    hps = doc["request"]["HyperParameters"]
    assert json.loads(hps[contract.HP_TREES]) == {"train": train["tree"].rsplit("/", 1)[1]}
    bundle = doc["uploads"][0]
    with tarfile.open(bundle["local"]) as tar:
        names = tar.getnames()
    assert "train.py" in names and "helper.py" in names and "_atr_deps/mylib/mylib/__init__.py" in names
    assert ".env" not in names and not any(n.startswith("data/") for n in names)
    assert {"path": ".env", "reason": "secret (credentials or keys)"} in doc["kept_out"]
    assert any("kept out" in note for note in doc["notes"])
    driver = [r for r in doc["uploads"] if r["key"].endswith("/atr.pyz")]
    assert len(driver) == 1 and driver[0]["key"].split("/")[-2] == driver[0]["sha256"]


def test_same_tree_same_bundle_and_names_are_unique(project):
    first = dry_run(project, "--sagemaker-role", ROLE)
    second = dry_run(project, "--sagemaker-role", ROLE)
    assert first["uploads"][0]["sha256"] == second["uploads"][0]["sha256"]
    assert first["request"]["TrainingJobName"] != second["request"]["TrainingJobName"]


def test_role_name_without_network_shows_account_placeholder(project):
    doc = dry_run(project, "--sagemaker-role", "TrainRole")
    validate_create_training_job(doc["request"])
    assert doc["request"]["RoleArn"] == "arn:aws:iam::<account>:role/TrainRole"
    assert any("<account>" in note for note in doc["notes"])


def test_dry_run_imports_no_aws_library(project):
    code = ("import runpy, sys\nsys.argv = ['train.py', '--sagemaker-run', 'yes', '--sagemaker-dry-run', "
            "'--sagemaker-region', 'us-east-1', '--sagemaker-role', 'R']\n"
            "try:\n    runpy.run_path('train.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('boto3', 'botocore', 's3transfer') if m in sys.modules), file=sys.stderr)")
    result = run_python(["-c", code], cwd=project)
    assert "HEAVY []" in result.stderr


def test_trainium_dry_run_uses_neuron_image_and_cache_channel(project):
    doc = dry_run(project, "--sagemaker-role", ROLE, "--sagemaker-instance", "ml.trn1.32xlarge")
    request = doc["request"]
    validate_create_training_job(request)
    assert "pytorch-training-neuronx" in request["AlgorithmSpecification"]["TrainingImage"]
    names = [c["ChannelName"] for c in request["InputDataConfig"]]
    assert names[-1] == "atr_neuron_cache"


def test_demo_dry_run_passes_botocore_validation(tmp_path):
    result = run_python([os.path.join(REPO, "demo", "train.py"), "--sagemaker-run", "yes", "--sagemaker-dry-run",
                         "--sagemaker-region", "us-east-1", "--sagemaker-role", "DemoRole"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    validate_create_training_job(doc["request"])
    assert [m["Name"] for m in doc["request"]["AlgorithmSpecification"]["MetricDefinitions"]] == ["loss", "accuracy"]


@pytest.mark.parametrize("args,note", [
    (["--sagemaker-instance", "ml.g5.12xlarge"], "4 GPUs per instance: one plain process per instance"),
    (["--sagemaker-instance-count", "3"], "3 instances: one plain process per instance"),
    (["--sagemaker-instance", "ml.g5.12xlarge", "--sagemaker-distribution", "torchrun"], None),
    (["--sagemaker-instance", "ml.trn1.32xlarge", "--sagemaker-instance-count", "2"], None),  # torchrun by default
    (["--sagemaker-instance", "ml.g5.xlarge"], None),
])
def test_dry_run_says_when_several_hosts_or_gpus_run_one_process_each(project, args, note):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", *args], cwd=project)
    assert result.returncode == 0, result.stderr
    notes = [n for n in json.loads(result.stdout)["notes"] if "one plain process" in n]
    if note is None:
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].startswith(note) and "--sagemaker-distribution torchrun" in notes[0]


def test_dry_run_says_which_image_and_why(project):
    def notes(*args):
        result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                             "--sagemaker-region", "us-east-1", *args], cwd=project)
        return [n for n in json.loads(result.stdout)["notes"] if n.startswith("image: ")]

    [gpu] = notes("--sagemaker-instance", "ml.g5.xlarge")
    assert "/pytorch:2.13.0-cu133" in gpu and "the PyTorch GPU training image, chosen for ml.g5.xlarge" in gpu
    [given] = notes("--sagemaker-image", "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1")
    assert given.endswith("(from --sagemaker-image)")
