"""Where aws-train-remote keeps its local state: bundles, the hash cache, downloaded S3 inputs."""
from __future__ import annotations

import json
import os


def cache_root(environ=None) -> str:
    environ = os.environ if environ is None else environ
    explicit = environ.get("AWS_TRAIN_REMOTE_CACHE_DIR")
    if explicit:
        return os.path.abspath(explicit)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "aws-train-remote")


def read_json_dict(path: str) -> dict:
    """A local state file (hash cache, object index): {} when missing, unreadable or not a mapping,
    because a cache that cannot be read only costs work, never correctness."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomic(path: str, data) -> None:
    """Write through a temporary file and rename: a reader, or a launch killed half-way, never sees
    half a file. The temporary name is unique per process and thread."""
    import threading

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_aws_config(environ=None):
    """The text of the AWS CLI config file (AWS_CONFIG_FILE or ~/.aws/config), or None.
    Read without boto3 so a dry run can find the profile's region offline."""
    environ = os.environ if environ is None else environ
    path = environ.get("AWS_CONFIG_FILE") or os.path.join(environ.get("HOME") or os.path.expanduser("~"),
                                                           ".aws", "config")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None
