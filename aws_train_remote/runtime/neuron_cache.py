"""The Neuron compile cache kept in S3 across jobs (reference/neuron.md).

Restored at start from the atr_neuron_cache input channel (and from the checkpoint folder,
where the fallback path leaves it); new entries saved at the end to the S3 prefix with boto3
when the image has it, else copied into the checkpoint folder, which SageMaker syncs to S3.
"""
from __future__ import annotations

import os
import re
import shutil

from .. import contract

MARKER = ".atr-cache-marker"
CHECKPOINT_SUBDIR = "_atr_neuron_cache"
DEFAULT_CACHE = "/var/tmp/neuron-compile-cache"


def cache_dir(environ: dict, layout) -> str:
    """Where the compiler will look: --cache_dir in NEURON_CC_FLAGS wins, then NEURON_COMPILE_CACHE_URL."""
    flags = environ.get("NEURON_CC_FLAGS", "")
    match = re.search(r"--cache_dir[= ](\S+)", flags)
    if match:
        return match.group(1)
    url = environ.get("NEURON_COMPILE_CACHE_URL")
    if url and not url.startswith("s3://"):
        return url
    return os.path.join(layout.root, "neuron-compile-cache") if layout.root != "/opt/ml" else DEFAULT_CACHE


def snapshot(folder: str) -> dict:
    found = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            full = os.path.join(dirpath, name)
            st = os.stat(full)
            found[os.path.relpath(full, folder)] = (st.st_size, int(st.st_mtime))
    return found


def _copy_tree(src: str, dst: str) -> int:
    count = 0
    for dirpath, _, files in os.walk(src):
        for name in files:
            if name == MARKER:
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            target = os.path.join(dst, rel)
            if not os.path.exists(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(os.path.join(dirpath, name), target)
                count += 1
    return count


def restore(layout, checkpoint_path: str, local_cache: str) -> int:
    os.makedirs(local_cache, exist_ok=True)
    count = 0
    channel = layout.channel_dir(contract.NEURON_CACHE_CHANNEL)
    if os.path.isdir(channel):
        count += _copy_tree(channel, local_cache)
    fallback = os.path.join(checkpoint_path, CHECKPOINT_SUBDIR)
    if os.path.isdir(fallback):
        count += _copy_tree(fallback, local_cache)
    return count


def save(local_cache: str, before: dict, s3_uri: str, checkpoint_path: str) -> tuple:
    """(files saved, 'boto3' or 'checkpoint') for entries new or changed since `before`."""
    after = snapshot(local_cache)
    new = sorted(rel for rel, stamp in after.items() if before.get(rel) != stamp)
    if not new:
        return 0, None
    try:
        import boto3  # present in AWS framework images; optional here
    except ImportError:
        boto3 = None
    if boto3 is not None and s3_uri:
        bucket, prefix = contract.split_s3(s3_uri)
        s3 = boto3.client("s3")
        for rel in new:
            s3.upload_file(os.path.join(local_cache, rel), bucket, prefix + rel.replace(os.sep, "/"))
        return len(new), "boto3"
    target = os.path.join(checkpoint_path, CHECKPOINT_SUBDIR)
    for rel in new:
        os.makedirs(os.path.dirname(os.path.join(target, rel)), exist_ok=True)
        shutil.copy2(os.path.join(local_cache, rel), os.path.join(target, rel))
    return len(new), "checkpoint"
