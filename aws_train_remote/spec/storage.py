"""Storage: the bucket and prefix, where the model, checkpoints and the Trainium compile cache
live in S3, the checkpoint folder in the container and what seeds it. Pure."""
from __future__ import annotations

import re

from .. import contract
from ..errors import UsageError
from .checks import location_or_s3, need

KEYS = ("bucket", "prefix", "output_s3", "checkpoint_s3", "checkpoint_container", "checkpoint_initial",
        "fresh_start", "neuron_cache", "download", "spot_force", "output_compression", "tensorboard")

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def storage_fields(v, *, spot: bool, cwd: str, tune: bool = False) -> dict:
    """The JobSpec fields of storage, or UsageError for the first flag that is wrong. tune: whether
    the tuning area has a tuning job (its trials take no TensorBoardOutputConfig)."""
    checkpoint_s3 = auto_s3("--sagemaker-checkpoint-s3", v["checkpoint_s3"])
    if spot and checkpoint_s3 == "none" and not v["spot_force"]:
        raise UsageError("--sagemaker-checkpoint-s3", "none", "a spot job without a checkpoint location "
                         "restarts from scratch after every interruption",
                         "keep the default (auto) or pass --sagemaker-spot-force to accept that")
    neuron_cache = auto_s3("--sagemaker-neuron-cache", v["neuron_cache"])
    checkpoint_container = v["checkpoint_container"]
    need(checkpoint_container.startswith("/"), "--sagemaker-checkpoint-container", checkpoint_container,
         "must be an absolute path in the container", "use e.g. /opt/ml/checkpoints")
    checkpoint_initial = v.get("checkpoint_initial")
    if checkpoint_initial:
        checkpoint_initial = location_or_s3("--checkpoint-initial", checkpoint_initial, cwd)
        need(checkpoint_s3 != "none", "--checkpoint-initial", v.get("checkpoint_initial"),
             "needs a checkpoint location to seed", "drop --sagemaker-checkpoint-s3 none")
    need(not (v["fresh_start"] and checkpoint_s3 == "none"), "--sagemaker-fresh-start", "yes",
         "there is no checkpoint location to start fresh from", "drop --sagemaker-checkpoint-s3 none or this flag")
    bucket = v.get("bucket")
    if bucket:
        need(bool(BUCKET.match(bucket)) and ".." not in bucket, "--sagemaker-bucket", bucket,
             "not a valid bucket name", "use 3-63 lower-case letters, digits, dots and hyphens")
    prefix = (v.get("prefix") or "").strip("/")
    parts = prefix.split("/") if prefix else []
    # keys under the prefix become paths in the container and in local mode's mirror: a `..` or
    # `.` part (or an empty one) would leave the prefix there, and the job would fail at staging
    need(not any(p in ("", ".", "..") for p in parts) and not any(ord(c) < 32 for c in prefix),
         "--sagemaker-prefix", v.get("prefix"), "has an empty, '.' or '..' part or a control character",
         "use folder names separated by single slashes, e.g. team-a/project")
    return dict(bucket=bucket, prefix=prefix, output_s3=v.get("output_s3"),
                checkpoint_s3=checkpoint_s3, checkpoint_container=checkpoint_container,
                checkpoint_initial=checkpoint_initial, fresh_start=v["fresh_start"], neuron_cache=neuron_cache,
                download=v["download"], output_compression=v.get("output_compression") or "gzip",
                tensorboard=tensorboard(v.get("tensorboard"), tune))


def tensorboard(raw, tune: bool):
    """--sagemaker-tensorboard: None (off), "auto" (under the job's output prefix) or an s3:// URI."""
    if raw in (None, False):
        return None
    need(not tune, "--sagemaker-tensorboard", "yes" if raw is True else raw,
         "a tuning job's trials take no TensorBoardOutputConfig", "drop it, or --sagemaker-tune")
    return "auto" if raw is True else raw.rstrip("/") + "/"


def auto_s3(flag, raw) -> str:
    """auto, none or an s3:// URI (aws-sagemaker-remote's 'default' means auto)."""
    text = str(raw)
    if text.lower() == "default":
        return "auto"
    if text.lower() in ("auto", "none"):
        return text.lower()
    try:
        contract.split_s3(text)
    except ValueError as err:
        raise UsageError(flag, raw, "expected auto, none or an s3:// URI", str(err)) from None
    return text
