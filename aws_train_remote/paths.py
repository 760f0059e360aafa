"""Where aws-train-remote keeps its local state: bundles, the hash cache, downloaded S3 inputs."""
from __future__ import annotations

import os


def cache_root(environ=None) -> str:
    environ = os.environ if environ is None else environ
    explicit = environ.get("AWS_TRAIN_REMOTE_CACHE_DIR")
    if explicit:
        return os.path.abspath(explicit)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "aws-train-remote")


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
