"""Parser generation and the configuration layers, in process (pure layer: literal in, value out)."""
import os

import pytest

from aws_train_remote.errors import ConfigError, DefinitionError
from aws_train_remote.spec.flags import ScriptDefinition, build_parser
from aws_train_remote.spec.options import builtin_defaults
from aws_train_remote.training import parse


def definition(tmp_path, **kw):
    script = tmp_path / "train.py"
    script.write_text("")
    kw.setdefault("inputs", (("train", "data"),))
    return ScriptDefinition(script=str(script), **kw)


def test_every_group_is_in_help_all_with_defaults(tmp_path):
    parser = build_parser(definition(tmp_path), builtin_defaults(), prog="train.py", show_all=True)
    text = parser.format_help()
    for group in ("run control", "job", "storage", "security", "source", "data"):
        assert f"aws-train-remote: {group}" in text
    assert "(default: ml.m5.large)" in text
    assert "--train-mode" in text and "--sagemaker-training-instance" in text and "--sagemaker-kms-key" in text


def test_help_is_short_and_never_contradicts_itself(tmp_path):
    """Issue 9.2: --help was 135 lines with "(default: ...) (default: none)" twelve times."""
    import re

    parser = build_parser(definition(tmp_path), builtin_defaults(), prog="train.py")
    text = parser.format_help()
    assert len(text.splitlines()) < 80, len(text.splitlines())
    assert text.startswith("usage: train.py [your script's flags] [--sagemaker-run {no,yes,local}]")
    assert "--sagemaker-instance" in text and "--sagemaker-kms-key" not in text and "--help-all" in text
    full = build_parser(definition(tmp_path), builtin_defaults(), prog="train.py", show_all=True).format_help()
    for help_text in (text, full):
        flat = " ".join(help_text.split())
        assert "(default: none)" not in flat
        assert not re.search(r"\(default:[^)]*\)[^(]*\(default:[^)]*\)", flat.split("--")[0])
        for entry in re.split(r" (?=--\w)", flat):
            assert entry.count("(default") <= 1, entry


def test_misspelled_flag_suggests_the_closest(tmp_path):
    from conftest import run_python

    script = tmp_path / "train.py"
    script.write_text("from aws_train_remote import training_main\n"
                      "training_main(lambda args: print('ran'), inputs={'train': 'data'})\n")
    (tmp_path / "data").mkdir()
    result = run_python([str(script), "--sagemaker-insatnce", "ml.g5.xlarge"], cwd=tmp_path)
    assert result.returncode == 2 and "ran" not in result.stdout
    assert result.stderr.strip() == ("train.py: error: unrecognized argument --sagemaker-insatnce: did you mean "
                                     "--sagemaker-instance? (see --help)")
    result = run_python([str(script), "--train-mdoe", "Pipe"], cwd=tmp_path)
    assert "did you mean --train-mode?" in result.stderr
    env = run_python([str(script)], cwd=tmp_path, env={"AWS_TRAIN_REMOTE_INSATNCE": "ml.g5.xlarge"})
    assert env.returncode == 2 and "ran" not in env.stdout and "Traceback" not in env.stderr
    assert "AWS_TRAIN_REMOTE_INSATNCE: not a variable aws-train-remote knows; did you mean " \
           "'AWS_TRAIN_REMOTE_INSTANCE'?" in env.stderr
    assert run_python([str(script)], cwd=tmp_path, env={"AWS_TRAIN_REMOTE_INSTANCE": "ml.g5.xlarge"}).returncode == 0


@pytest.mark.parametrize("argv,expected", [
    ([], False), (["--sagemaker-spot"], True), (["--sagemaker-spot", "no"], False),
    (["--sagemaker-spot=ON"], True), (["--sagemaker-spot-instances", "True"], True),
    (["--sagemaker-spot", "0"], False),
])
def test_boolean_flag_forms(tmp_path, argv, expected):
    _, values, _ = parse(definition(tmp_path), argv, {}, {})
    assert values["spot"] is expected


def test_bare_run_flag_means_yes(tmp_path):
    _, values, _ = parse(definition(tmp_path), ["--sagemaker-run"], {}, {})
    assert values["run"] == "yes"


def test_precedence_builtin_keyword_config_env_cmdline(tmp_path, isolated_env):
    d = definition(tmp_path)
    assert parse(d, [], {}, {})[1]["instance"] == "ml.m5.large"
    assert parse(d, [], {}, {"instance": "ml.c5.xlarge"})[1]["instance"] == "ml.c5.xlarge"
    (tmp_path / "aws-train-remote.yaml").write_text("instance: ml.g5.xlarge\nspot: yes\n")
    assert parse(d, [], {}, {"instance": "ml.c5.xlarge"})[1]["instance"] == "ml.g5.xlarge"
    env = {"AWS_TRAIN_REMOTE_INSTANCE": "ml.p3.2xlarge"}
    assert parse(d, [], env, {"instance": "ml.c5.xlarge"})[1]["instance"] == "ml.p3.2xlarge"
    _, values, _ = parse(d, ["--sagemaker-instance", "ml.m5.xlarge"], env, {"instance": "ml.c5.xlarge"})
    assert values["instance"] == "ml.m5.xlarge"
    assert values["spot"] is True  # from the config file, untouched by the other layers


def test_user_config_is_below_project_config(tmp_path, isolated_env):
    user = isolated_env / ".config" / "aws-train-remote"
    user.mkdir(parents=True)
    (user / "config.yaml").write_text("role: UserRole\ninstance: ml.c5.large\n")
    (tmp_path / "aws-train-remote.yaml").write_text("instance: ml.g5.xlarge\n")
    _, values, _ = parse(definition(tmp_path), [], dict(os.environ), {})
    assert (values["role"], values["instance"]) == ("UserRole", "ml.g5.xlarge")


def test_explicit_config_file_replaces_project_file(tmp_path):
    (tmp_path / "aws-train-remote.yaml").write_text("instance: ml.g5.xlarge\n")
    other = tmp_path / "other.yaml"
    other.write_text("volume-size: 99\n")
    _, values, _ = parse(definition(tmp_path), ["--sagemaker-config", str(other)], {}, {})
    assert values["volume_size"] == 99 and values["instance"] == "ml.m5.large"


def test_unknown_config_key_suggests(tmp_path):
    (tmp_path / "aws-train-remote.yaml").write_text("instanse: ml.g5.xlarge\n")
    with pytest.raises(ConfigError, match="did you mean 'instance'"):
        parse(definition(tmp_path), [], {}, {})


def test_bad_config_value_names_file_and_key(tmp_path):
    (tmp_path / "aws-train-remote.yaml").write_text("spot: perhaps\n")
    with pytest.raises(ConfigError, match="aws-train-remote.yaml: spot=perhaps: expected yes/no"):
        parse(definition(tmp_path), [], {}, {})


def test_unknown_keyword_is_a_definition_error(tmp_path):
    with pytest.raises(DefinitionError, match="did you mean 'instance'"):
        parse(definition(tmp_path), [], {}, {"instanc": "x"})


def test_old_keyword_names_are_accepted(tmp_path):
    _, values, _ = parse(definition(tmp_path), [], {}, {"training_instance": "ml.c5.xlarge", "spot_instances": True})
    assert values["instance"] == "ml.c5.xlarge" and values["spot"] is True


def test_repeatable_pairs_merge_across_layers(tmp_path):
    (tmp_path / "aws-train-remote.yaml").write_text("env: {A: '1', B: '2'}\n")
    _, values, _ = parse(definition(tmp_path), ["--sagemaker-env", "B=3", "--sagemaker-env", "C=4"], {}, {})
    assert dict(values["env"]) == {"A": "1", "B": "3", "C": "4"}


def test_sdk_config_is_lowest_and_only_for_remote_runs(tmp_path, isolated_env):
    sdk = isolated_env / ".config" / "sagemaker"
    sdk.mkdir(parents=True)
    (sdk / "config.yaml").write_text(
        "SageMaker:\n  PythonSDK:\n    Modules:\n      Session:\n        DefaultS3Bucket: sdk-bucket\n"
        "  TrainingJob:\n    RoleArn: arn:aws:iam::111122223333:role/SdkRole\n"
        "    VpcConfig: {Subnets: [subnet-0123abcd], SecurityGroupIds: [sg-0123abcd]}\n"
        "    OutputDataConfig: {KmsKeyId: alias/out}\n    Environment: {FROM_SDK: '1'}\n"
        "    Tags: [{Key: team, Value: ml}]\n")
    env = dict(os.environ)
    _, local_values, _ = parse(definition(tmp_path), [], env, {})
    assert local_values["role"] is None
    _, values, _ = parse(definition(tmp_path), [], env, {"role": "KeywordRole"}, sdk_config=True)
    assert values["role"] == "KeywordRole"  # keyword beats the SDK file
    assert values["bucket"] == "sdk-bucket" and values["subnets"] == ("subnet-0123abcd",)
    assert values["kms_key"] == "alias/out" and dict(values["env"]) == {"FROM_SDK": "1"}
    assert dict(values["tag"]) == {"team": "ml"}


def test_script_flag_clash_names_both(tmp_path):
    d = definition(tmp_path, additional_arguments=({"dest": "--sagemaker-instance"},))
    with pytest.raises(DefinitionError, match="script's flag --sagemaker-instance clashes with the generated option"):
        parse(d, [], {}, {})


def test_callback_dest_clash_names_both(tmp_path):
    def callback(parser):
        parser.add_argument("--out", dest="model_dir")

    with pytest.raises(DefinitionError, match=r"--out \(args.model_dir\) clashes with the generated option --model-dir"):
        parse(definition(tmp_path, argparse_callback=callback), [], {}, {})


def test_input_clashing_with_generated_flag(tmp_path):
    with pytest.raises(DefinitionError, match="clashes"):
        parse(definition(tmp_path, inputs=(("model_dir", "x"),)), [], {}, {})


def test_reserved_channel_name(tmp_path):
    with pytest.raises(DefinitionError, match="reserved"):
        parse(definition(tmp_path, inputs=(("code", "x"),)), [], {}, {})


def test_additional_arguments_and_callback_both_work(tmp_path):
    def callback(parser):
        parser.add_argument("--layers", type=int, default=2)

    d = definition(tmp_path, additional_arguments=({"dest": "--epochs", "type": int, "default": 3},),
                   argparse_callback=callback)
    ns, _, _ = parse(d, ["--epochs", "7", "--train", "s3://bucket/x", "--train-mode", "fastfile"], {}, {})
    assert (ns.epochs, ns.layers, ns.train, ns.train_mode) == (7, 2, "s3://bucket/x", "FastFile")


def test_abbreviations_are_not_accepted(tmp_path):
    with pytest.raises(SystemExit) as exc:
        parse(definition(tmp_path), ["--sagemaker-ru", "yes"], {}, {})
    assert exc.value.code == 2
