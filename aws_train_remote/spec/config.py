"""Configuration layers below the command line: training_main keywords, config files,
environment variables, and the SageMaker SDK's own config file.

Reading (files, environment) is kept apart from parsing (mapping in, typed values out), and
yaml is imported only when a config file actually exists.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, DefinitionError
from .options import BY_KEY, KEYWORDS, OPTIONS

PROJECT_CONFIG_NAME = "aws-train-remote.yaml"


def user_config_path(environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or str(Path.home()), ".config")
    return Path(base) / "aws-train-remote" / "config.yaml"


def sdk_config_path(environ) -> Path:
    override = environ.get("SAGEMAKER_USER_CONFIG_OVERRIDE")
    if override:
        path = Path(override)
        return path / "config.yaml" if path.is_dir() else path
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or str(Path.home()), ".config")
    return Path(base) / "sagemaker" / "config.yaml"


def discover_config_files(explicit, script_dir, environ) -> list:
    """Files to merge, lowest precedence first: the user's file, then the project's.

    An explicit --sagemaker-config FILE replaces the project file (the user file still applies).
    """
    files = []
    user = user_config_path(environ)
    if user.is_file():
        files.append(user)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError("--sagemaker-config", explicit, "no such file",
                              "give the path of an existing YAML file")
        files.append(path)
    else:
        project = Path(script_dir) / PROJECT_CONFIG_NAME
        if project.is_file():
            files.append(project)
    return files


def read_yaml(path) -> object:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is an install requirement
        raise ConfigError("--sagemaker-config", str(path), "PyYAML is not installed",
                          "pip install PyYAML") from None
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(str(path), None, f"not valid YAML{where}", "fix the file's syntax") from None
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), None, f"not UTF-8 text (byte {err.start})", "save the file as UTF-8") from None
    except OSError as err:
        raise ConfigError(str(path), None, f"cannot read ({err.strerror})", "check the path and permissions") from None


def did_you_mean(word: str, candidates) -> str:
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "see docs/flags.md for the keys"


def parse_config(mapping, source: str) -> dict:
    """A config mapping (key -> raw value) to typed values; unknown keys are errors."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ConfigError(source, None, "expected a mapping of option keys to values", "write key: value lines")
    parsed = {}
    for raw_key, raw in mapping.items():
        key = str(raw_key).replace("-", "_")
        if key.startswith("sagemaker_"):
            key = key[len("sagemaker_"):]
        option = BY_KEY.get(key)
        if option is None or not option.configurable:
            known = [o.key for o in OPTIONS if o.configurable]
            raise ConfigError(f"{source}: {raw_key}", None, "unknown key", did_you_mean(key, known))
        try:
            parsed[key] = option.parse(raw)
        except ValueError as err:
            raise ConfigError(f"{source}: {raw_key}", raw, str(err), f"fix {raw_key} in {source}") from None
    return parsed


def parse_keywords(keywords) -> dict:
    """training_main(**defaults): same keys as the config file, plus aws-sagemaker-remote's names."""
    parsed = {}
    for name, raw in keywords.items():
        option = KEYWORDS.get(name)
        if option is None:
            raise DefinitionError(f"training_main({name}=...): unknown keyword; "
                                  + did_you_mean(name, KEYWORDS))
        try:
            parsed[option.key] = option.parse(raw)
        except ValueError as err:
            raise DefinitionError(f"training_main({name}={raw!r}): {err}") from None
    return parsed


def parse_environment(environ) -> dict:
    """AWS_TRAIN_REMOTE_<KEY> variables; one of our prefix that names no option is an error with
    the closest name, as an unknown config key is."""
    from .options import ENV_PREFIX, OTHER_ENV_VARS

    known = {o.env_var for o in OPTIONS if o.configurable} | set(OTHER_ENV_VARS)
    for name in environ:
        if name.startswith(ENV_PREFIX) and name not in known:
            raise ConfigError(name, None, "not a variable aws-train-remote knows",
                              did_you_mean(name, known).replace("see docs/flags.md for the keys",
                                                                "see docs/flags.md") + f" (or unset {name})")
    parsed = {}
    for option in OPTIONS:
        if not option.configurable or option.env_var not in environ:
            continue
        raw = environ[option.env_var]
        try:
            parsed[option.key] = option.parse(raw)
        except ValueError as err:
            raise ConfigError(option.env_var, raw, str(err), f"fix or unset {option.env_var}") from None
    return parsed


def parse_sdk_config(mapping, source: str) -> dict:
    """The SageMaker SDK's config.yaml keys that mean the same thing for us (lowest precedence)."""
    if not isinstance(mapping, dict):
        return {}
    sagemaker = mapping.get("SageMaker") or {}
    job = (sagemaker.get("TrainingJob") or {}) if isinstance(sagemaker, dict) else {}
    session = (((sagemaker.get("PythonSDK") or {}).get("Modules") or {}).get("Session") or {}) \
        if isinstance(sagemaker, dict) else {}
    out = {}
    if job.get("RoleArn"):
        out["role"] = str(job["RoleArn"])
    vpc = job.get("VpcConfig") or {}
    if vpc.get("Subnets"):
        out["subnets"] = tuple(str(s) for s in vpc["Subnets"])
    if vpc.get("SecurityGroupIds"):
        out["security_groups"] = tuple(str(s) for s in vpc["SecurityGroupIds"])
    kms = (job.get("OutputDataConfig") or {}).get("KmsKeyId")
    if kms:
        out["kms_key"] = str(kms)
    volume_kms = (job.get("ResourceConfig") or {}).get("VolumeKmsKeyId")
    if volume_kms:
        out["volume_kms_key"] = str(volume_kms)
    if job.get("Environment"):
        out["env"] = BY_KEY["env"].parse(job["Environment"])
    tags = job.get("Tags")
    if tags:
        try:
            out["tag"] = tuple((str(t["Key"]), str(t["Value"])) for t in tags)
        except (TypeError, KeyError):
            raise ConfigError(f"{source}: SageMaker.TrainingJob.Tags", None,
                              "expected a list of {Key, Value}", "fix the SageMaker SDK config") from None
    if job.get("EnableNetworkIsolation") is not None:
        out["network_isolation"] = bool(job["EnableNetworkIsolation"])
    if job.get("EnableInterContainerTrafficEncryption") is not None:
        out["encrypt_inter_container"] = bool(job["EnableInterContainerTrafficEncryption"])
    if session.get("DefaultS3Bucket"):
        out["bucket"] = str(session["DefaultS3Bucket"])
    if session.get("DefaultS3ObjectKeyPrefix"):
        out["prefix"] = str(session["DefaultS3ObjectKeyPrefix"])
    return out


def merge_layers(*layers) -> dict:
    """Later layers win; repeatable KEY=VALUE options merge by key instead of replacing."""
    merged = {}
    for layer in layers:
        for key, value in layer.items():
            option = BY_KEY[key]
            if option.kind == "pairs" and key in merged and merged[key]:
                merged[key] = tuple({**dict(merged[key]), **dict(value or ())}.items())
            else:
                merged[key] = value
    return merged
