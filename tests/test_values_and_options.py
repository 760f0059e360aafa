import pytest

from aws_train_remote.contract import split_s3
from aws_train_remote.spec import values
from aws_train_remote.spec.options import BY_FLAG, OPTIONS


@pytest.mark.parametrize("raw", ["yes", "YES", "true", "True", "1", "on", "On", True])
def test_bool_true_spellings(raw):
    assert values.parse_bool(raw) is True


@pytest.mark.parametrize("raw", ["no", "No", "false", "FALSE", "0", "off", False])
def test_bool_false_spellings(raw):
    assert values.parse_bool(raw) is False


@pytest.mark.parametrize("raw", ["maybe", "", "2", "yess"])
def test_bool_rejects(raw):
    with pytest.raises(ValueError, match="yes/no"):
        values.parse_bool(raw)


@pytest.mark.parametrize("raw,expected", [("3600", 3600), ("90m", 5400), ("2h", 7200), ("1d", 86400), (60, 60)])
def test_duration(raw, expected):
    assert values.parse_duration(raw) == expected


def test_pairs_from_every_form():
    assert values.parse_pairs(["A=1", "B=x=y", "A=2"]) == (("A", "2"), ("B", "x=y"))
    assert values.parse_pairs({"A": 1, "B": True}) == (("A", "1"), ("B", "true"))
    assert values.parse_pairs([("loss", "l=(.*)")]) == (("loss", "l=(.*)"),)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        values.parse_pairs(["novalue"])


def test_run_accepts_old_boolean_spellings():
    assert values.parse_run("True") == "yes"
    assert values.parse_run("0") == "no"
    assert values.parse_run("LOCAL") == "local"


def test_s3_uri_split():
    assert split_s3("s3://my-bucket/a/b") == ("my-bucket", "a/b")
    assert split_s3("s3://my-bucket") == ("my-bucket", "")
    for bad in ["s3://B/x", "s3:/x", "s3://a/x", "s3://bad..name/x"]:
        with pytest.raises(ValueError):
            split_s3(bad)


def test_option_table_is_consistent():
    keys = [o.key for o in OPTIONS]
    assert len(keys) == len(set(keys)), "config keys must be unique"
    flags = [f for o in OPTIONS for f in o.flags]
    assert len(flags) == len(set(flags)), "flags and aliases must be unique"
    for option in OPTIONS:
        assert option.help and option.group
        assert option.parse(option.default) == option.default or option.default is None


def test_aws_sagemaker_remote_aliases_exist():
    for old, new in [("--sagemaker-training-instance", "instance"), ("--sagemaker-training-image", "image"),
                     ("--sagemaker-training-role", "role"), ("--sagemaker-spot-instances", "spot")]:
        assert BY_FLAG[old].key == new


def test_docs_flags_md_is_generated_from_the_table():
    import os

    from aws_train_remote.spec.docs import render_flags_markdown

    path = os.path.join(os.path.dirname(__file__), "..", "docs", "flags.md")
    with open(path, encoding="utf-8") as fh:
        assert fh.read() == render_flags_markdown(), "run: python -m aws_train_remote.spec.docs > docs/flags.md"


def test_generated_job_names_fit_and_are_valid():
    import datetime

    from aws_train_remote.spec import naming

    now = datetime.datetime(2026, 11, 22, 21, 0, 5, tzinfo=datetime.timezone.utc)
    long_base = naming.sanitize_base("my_very_long_training_script_name_for_the_big_experiment_v2")
    name = naming.unique_job_name(long_base, now, "a1b2c3")
    assert len(name) <= 63 and naming.is_valid_job_name(name) and name.endswith("-20261122-210005-a1b2c3")
    assert naming.sanitize_base("__train__.v2") == "train-v2"
    assert naming.unique_job_name("x", now, "a1b2c3") != naming.unique_job_name("x", now, "d4e5f6")


def test_default_images_by_instance_type():
    from aws_train_remote.spec.images import default_image

    assert default_image("pytorch", "2.6.0", "ml.m5.large", "us-west-2") == (
        "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.6.0-cpu-py312-ubuntu22.04-sagemaker")
    assert "2.6.0-gpu-py312-cu126" in default_image("pytorch", "2.6.0", "ml.g5.xlarge", "us-east-1")
    assert "2.6.0-gpu" in default_image("pytorch", "2.6.0", "ml.p4d.24xlarge", "us-east-1")
    trn = default_image("pytorch", "2.6.0", "ml.trn2.48xlarge", "eu-south-1")
    assert trn.startswith("692866216735.dkr.ecr.eu-south-1.amazonaws.com/pytorch-training-neuronx:")
    with pytest.raises(ValueError, match="known: 2.3.0"):
        default_image("pytorch", "1.0", "ml.m5.large", "us-east-1")


def test_current_pytorch_images_and_registries():
    """Issue 8.12: the table stopped at 2.6.0; 2.11+ live in the "pytorch" repository on Amazon Linux."""
    from aws_train_remote.spec.images import NEURONX_TAG, default_image
    from aws_train_remote.spec.options import BY_KEY

    assert default_image("pytorch", BY_KEY["framework_version"].default, "ml.g6e.xlarge", "us-east-1") == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023-sagemaker")
    assert default_image("pytorch", "2.13", "ml.c7i.large", "us-east-1").endswith("/pytorch:2.13.0-cpu-amzn2023-sagemaker")
    assert default_image("pytorch", "2.12", "ml.p5.48xlarge", "us-east-1").endswith(":2.12.1-cu130-amzn2023-sagemaker")
    assert default_image("pytorch", "2.10", "ml.g5.xlarge", "us-east-1").endswith(
        "/pytorch-training:2.10.0-gpu-py313-cu130-ubuntu22.04-sagemaker")
    assert default_image("pytorch", "2.8.0", "ml.m5.large", "ca-west-1").startswith(
        "204538143572.dkr.ecr.ca-west-1.amazonaws.com/pytorch-training:2.8.0-cpu")
    assert "sdk2.30.0" in NEURONX_TAG


def test_instance_families_by_kind_and_unknown_ones_refused():
    """Issue 8.12: an unknown family used to get the CPU image silently; ml.trn3 got the CPU image."""
    from aws_train_remote.spec.images import UnknownFamily, default_image, device_kind

    assert [device_kind(t) for t in ("ml.g6e.xlarge", "ml.p5en.48xlarge", "ml.p6-b200.48xlarge", "ml.c7i.large",
                                     "ml.r7i.xlarge", "ml.trn1n.32xlarge", "ml.trn3.48xlarge")] == \
        ["gpu", "gpu", "gpu", "cpu", "cpu", "trainium", "trainium"]
    for unknown in ("ml.inf2.xlarge", "ml.q9.large", "ml.trn9.48xlarge"):
        with pytest.raises(UnknownFamily):
            default_image("pytorch", "2.6.0", unknown, "us-east-1")
    assert "/pytorch-training-neuronx:" in default_image("pytorch", "2.13.0", "ml.trn3.48xlarge", "us-east-1")
    assert default_image("pytorch", "2.6.0", "ml.m5.large", "ap-northeast-3").startswith(
        "364406365360.dkr.ecr.ap-northeast-3.amazonaws.com/")
