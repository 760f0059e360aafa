"""The warm pool's persistent cache on this machine: SageMaker keeps a folder on the instances of a
warm pool from one job to the next that reuses them (runtime/warm_cache.py says what goes in it);
local mode and the sandbox give each pool a folder of its own, one sub-folder per host, passed to
the runtime as SageMaker passes it (SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY).

The sandbox keeps its pools itself (LoopbackAws: which job reuses whose) and names the folder in
POOL_DIR_ENV. Local mode keeps them here, under <cache>/warm-pools/: a job with
--sagemaker-keep-alive that matches a pool kept by an earlier one (same role, instances, volume,
network: SageMaker's matching rules) within its keep-alive takes the pool's folder; otherwise it
starts a new pool, and an expired pool's folder goes, as SageMaker's does when the pool ends. A
pool is kept when its job completes.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time

from ..paths import cache_root, read_json_dict, write_json_atomic
from ..runtime.warm_cache import CACHE_ENV

POOL_DIR_ENV = "ATR_WARM_POOL_DIR"  # the sandbox: the folder of the pool this job runs on


def keep_alive(request: dict) -> int:
    return int(request["ResourceConfig"].get("KeepAlivePeriodInSeconds") or 0)


def pool_key(request: dict) -> str:
    """What a job must share with the one that kept a pool to reuse it (train-warm-pools.html)."""
    resources = request["ResourceConfig"]
    match = [request.get("RoleArn"), resources.get("InstanceType"), resources.get("InstanceCount"),
             resources.get("InstanceGroups"), resources.get("VolumeSizeInGB"), resources.get("VolumeKmsKeyId"),
             request.get("VpcConfig"), bool(request.get("EnableNetworkIsolation")),
             bool(request.get("EnableInterContainerTrafficEncryption"))]
    return hashlib.sha256(json.dumps(match, sort_keys=True).encode()).hexdigest()[:16]


def host_cache(pool: str, host: str) -> str:
    """The cache folder of one host of the pool (each instance has its own), made if missing."""
    folder = os.path.join(pool, host)
    os.makedirs(folder, exist_ok=True)
    return folder


def host_env(pool, host: str) -> dict:
    return {CACHE_ENV: host_cache(pool, host)} if pool else {}


def _root(environ) -> str:
    return os.path.join(cache_root(environ), "warm-pools")


@contextlib.contextmanager
def _locked(root: str):
    import fcntl

    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def take(environ, request: dict, now=time.time) -> tuple:
    """(pool folder, job that kept it or None) for a local-mode job with a keep-alive; (None, None)
    without one. Expired pools are dropped on the way, with their folders."""
    if not keep_alive(request):
        return None, None
    root = _root(environ)
    with _locked(root):
        kept = None
        for name in sorted(os.listdir(root)):
            if not name.endswith(".json"):
                continue
            record = read_json_dict(os.path.join(root, name))
            if name == pool_key(request) + ".json" and record.get("until", 0) > now() \
                    and os.path.isdir(str(record.get("folder"))):
                kept = record
            elif record.get("until", 0) > now():
                continue
            elif record.get("folder"):
                shutil.rmtree(record["folder"], ignore_errors=True)
            os.remove(os.path.join(root, name))  # taken, or expired
        if kept is not None:
            return kept["folder"], kept.get("job")
        folder = os.path.join(root, request["TrainingJobName"])
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        return folder, None


def settle(environ, request: dict, pool: str, completed: bool, now=time.time) -> None:
    """When the job ends: a completed job keeps its pool (and the folder) for its keep-alive; any
    other's pool ends here."""
    if not pool:
        return
    root = _root(environ)
    with _locked(root):
        if completed:
            earlier = read_json_dict(os.path.join(root, pool_key(request) + ".json")).get("folder")
            if earlier and earlier != pool:  # a pool kept by another matching job: one pool per match here
                shutil.rmtree(earlier, ignore_errors=True)
            write_json_atomic(os.path.join(root, pool_key(request) + ".json"),
                              {"folder": pool, "until": now() + keep_alive(request), "job": request["TrainingJobName"]})
        else:
            shutil.rmtree(pool, ignore_errors=True)
