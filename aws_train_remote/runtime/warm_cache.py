"""The warm pool's persistent cache: a folder SageMaker keeps on the instances of a warm pool
(--sagemaker-keep-alive) from one job to the next that reuses them, so that what a job downloads
once is there for the next. Standard library only.

SageMaker names it in SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY; it is
/opt/ml/sagemaker/warmpoolcache (train-warm-pools.html, "Persistent cache"). The job's caches
that are safe to share between jobs go there, unless the job sets them itself:

- pip's (PIP_CACHE_DIR): downloads and the wheels it built, keyed by URL and content, made to be
  shared -- the requirements of the next job install without downloading or building again;
- uv's (UV_CACHE_DIR), for the same reason, when the script installs with uv;
- Hugging Face's hub files (HF_HUB_CACHE): models and datasets stored by repository and commit,
  with the revision resolved afresh each time (not when the job sets HF_HOME: its hub is its own).

Not torch.hub (TORCH_HOME): it keeps the *code* of a hub repository by branch and reuses it
without looking again, so a job could run the code an earlier job fetched. Not the datasets
library's processed files (HF_DATASETS_CACHE): large, and keyed partly on local paths; a job
that wants them kept sets `--sagemaker-env HF_DATASETS_CACHE=/opt/ml/sagemaker/warmpoolcache/datasets`.
"""
from __future__ import annotations

import contextlib
import os

from .. import contract

CACHE_ENV = "SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY"
CACHE_PATH = "/opt/ml/sagemaker/warmpoolcache"
KEPT = (("PIP_CACHE_DIR", "pip"), ("UV_CACHE_DIR", "uv"), ("HF_HUB_CACHE", os.path.join("huggingface", "hub")))


def cache_dir(environ, root: str):
    """The warm pool's cache folder when SageMaker (or local mode, for a job with a keep-alive)
    provides one, else None."""
    named = environ.get(CACHE_ENV)
    if named and os.path.isdir(named):
        return named
    path = contract.rebase(CACHE_PATH, root)
    return path if os.path.isdir(path) else None


def cache_env(environ, root: str) -> dict:
    """The variables that point the job's shareable caches into the warm pool's cache; {} without one."""
    folder = cache_dir(environ, root)
    if folder is None:
        return {}
    out = {}
    for name, sub in KEPT:
        if environ.get(name) or (name == "HF_HUB_CACHE" and environ.get("HF_HOME")):
            continue  # the job's own choice
        out[name] = os.path.join(folder, sub)
    return out


def note(environ, root: str, extra: dict) -> str:
    """The runtime's line about the cache: where, whether an earlier job of the pool left anything."""
    folder = cache_dir(environ, root)
    try:
        state = "kept from an earlier job of the pool" if os.listdir(folder) else "empty: a new pool"
    except OSError:
        state = "unreadable"
    return f"warm pool cache {folder} ({state}): " + ", ".join(sorted(extra)) + " point into it"


@contextlib.contextmanager
def applied(extra: dict):
    """`extra` in this process's environment while the block runs (pip is started from it), then
    as it was."""
    before = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
