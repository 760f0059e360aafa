"""Values in config files arrive as written (issue 18.5): YAML types plain scalars (1.10 is the float
1.1, yes is true, 2024-01-01 a date); a string-valued key keeps the user's text, a null is refused."""
import os

import pytest

from aws_train_remote.errors import ConfigError
from aws_train_remote.spec.flags import ScriptDefinition
from aws_train_remote.training import parse


def definition(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    return ScriptDefinition(script=str(script), inputs=(("train", "data"),))


def values_of(tmp_path, text, sdk=None, isolated_env=None):
    (tmp_path / "aws-train-remote.yaml").write_text(text)
    return parse(definition(tmp_path), [], dict(os.environ), {}, sdk_config=sdk is not None)[1]


@pytest.mark.parametrize("written", ["1.10", "1.0", "0x1F", "1_000", "010", "1e3", ".inf", "yes", "off", "No", "True",
                                     "2024-01-01", "2001-12-14t21:59:43.10-05:00", "12:30:00"])
def test_env_and_tag_values_keep_the_text_as_written(tmp_path, written):
    values = values_of(tmp_path, f"env: {{VERSION: {written}}}\ntag:\n  release: {written}\n")
    assert dict(values["env"]) == {"VERSION": written}
    assert dict(values["tag"]) == {"release": written}


def test_env_as_a_list_and_string_keys_keep_their_text(tmp_path):
    values = values_of(tmp_path, "env: [A=1.10]\nframework-version: 2.10\nprefix: 2024-01-01\nsubnets: [0123, 1.50]\n")
    assert dict(values["env"]) == {"A": "1.10"}
    assert values["framework_version"] == "2.10"
    assert values["prefix"] == "2024-01-01"
    assert values["subnets"] == ("0123", "1.50")


def test_typed_keys_still_take_yaml_values(tmp_path):
    values = values_of(tmp_path, "spot: yes\ninstance-count: 2\nvolume-size: 0x20\nmax-run: 3600\nbucket:\n")
    assert values["spot"] is True and values["instance_count"] == 2 and values["volume_size"] == 32
    assert values["max_run"] == 3600 and values["bucket"] is None  # a top-level null: not set


@pytest.mark.parametrize("null", ["", "~", "null"])
def test_a_null_value_is_refused_with_how_to_quote_it(tmp_path, null):
    with pytest.raises(ConfigError, match=r"aws-train-remote.yaml: env: VERSION.*has no value.*quote it"):
        values_of(tmp_path, f"env:\n  VERSION: {null}\n")


def test_sdk_config_environment_and_tags_keep_their_text(tmp_path, isolated_env):
    sdk = isolated_env / ".config" / "sagemaker"
    sdk.mkdir(parents=True)
    (sdk / "config.yaml").write_text("SageMaker:\n  TrainingJob:\n    EnableNetworkIsolation: false\n"
                                     "    Environment: {VERSION: 1.10, FLAG: off}\n"
                                     "    Tags: [{Key: release, Value: 2.0}]\n")
    values = values_of(tmp_path, "instance: ml.m5.large\n", sdk=True)
    assert dict(values["env"]) == {"VERSION": "1.10", "FLAG": "off"}
    assert dict(values["tag"]) == {"release": "2.0"}
    assert values["network_isolation"] is False


def test_the_job_receives_the_value_as_written(tmp_path):
    """End to end through the dry run: the request's Environment holds 1.10, not 1.1."""
    import json

    from conftest import run_python, write_script

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    write_script(tmp_path, """
        from aws_train_remote import training_main
        training_main(lambda args: None, inputs={"train": "data"})
    """)
    (tmp_path / "aws-train-remote.yaml").write_text("env: {VERSION: 1.10, DEBUG: off}\n")
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role",
                         "arn:aws:iam::123456789012:role/r", "--sagemaker-region", "us-east-1"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)["request"]["Environment"]  # the dry run prints JSON
    assert env["VERSION"] == "1.10" and env["DEBUG"] == "off"
