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


class Written:
    """A plain YAML scalar that YAML would type (number, boolean, date, null), kept with the text
    the user wrote: `VERSION: 1.10` must reach the job as 1.10, not 1.1, and `yes` not as true.
    Parsers take `text` where the option's value is a string and `value` where it is typed."""

    __slots__ = ("text", "value")

    def __init__(self, text: str, value):
        self.text, self.value = text, value

    def __repr__(self):
        return self.text


TYPED_TAGS = ("bool", "int", "float", "timestamp", "null")


def _written_loader(yaml):
    class Loader(yaml.SafeLoader):
        pass

    for tag in TYPED_TAGS:
        typed = yaml.SafeLoader.yaml_constructors[f"tag:yaml.org,2002:{tag}"]
        Loader.add_constructor(f"tag:yaml.org,2002:{tag}",
                               lambda loader, node, typed=typed: Written(node.value, typed(loader, node)))
    return Loader


def unwrap(raw, as_text: bool, where: str = None):
    """A read YAML value with every Written scalar replaced by its text (as_text) or its YAML
    value. A null where a string is expected is refused: it has no text to keep."""
    if isinstance(raw, Written):
        if not as_text:
            return raw.value
        if raw.value is None:
            raise ConfigError(where or "config", None, "has no value (YAML reads it as null)",
                              "write the value, or quote it ('') for an empty string")
        return raw.text
    if isinstance(raw, dict):
        return {unwrap(k, as_text, where): unwrap(v, as_text, f"{where}: {unwrap(k, True, where)}" if where
                                                     else None) for k, v in raw.items()}
    if isinstance(raw, list):
        return [unwrap(item, as_text, where) for item in raw]
    return raw


STRING_KINDS = ("str", "pairs", "list", "s3", "choice")


def read_yaml(path, written: bool = False) -> object:
    """The file's YAML; with `written`, typed plain scalars come back as Written (see unwrap)."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is an install requirement
        raise ConfigError("--sagemaker-config", str(path), "PyYAML is not installed",
                          "pip install PyYAML") from None
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_written_loader(yaml)) if written else yaml.safe_load(handle)
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
        raw_key = unwrap(raw_key, True, source)
        key = str(raw_key).replace("-", "_")
        if key.startswith("sagemaker_"):
            key = key[len("sagemaker_"):]
        option = BY_KEY.get(key)
        if option is None or not option.configurable:
            known = [o.key for o in OPTIONS if o.configurable]
            raise ConfigError(f"{source}: {raw_key}", None, "unknown key", did_you_mean(key, known))
        # a string-valued key takes what was written; a top-level null still means "not set"
        as_text = option.kind in STRING_KINDS and not (isinstance(raw, Written) and raw.value is None)
        raw = unwrap(raw, as_text, f"{source}: {raw_key}")
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
    job_raw = (((mapping.get("SageMaker") or {}) if isinstance(mapping.get("SageMaker"), dict) else {})
               .get("TrainingJob") or {})
    texts = {}  # Environment and Tags values are strings: as written (see Written)
    if isinstance(job_raw, dict):
        for name in ("Environment", "Tags"):
            if job_raw.get(name) is not None:
                texts[name] = unwrap(job_raw[name], True, f"{source}: SageMaker.TrainingJob.{name}")
    mapping = unwrap(mapping, False)
    sagemaker = mapping.get("SageMaker") or {}
    job = (sagemaker.get("TrainingJob") or {}) if isinstance(sagemaker, dict) else {}
    job = {**job, **texts} if isinstance(job, dict) else job
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
