"""Which job was launched last from a folder, so that `aws-train-remote logs` (no JOB, or `last`)
finds it. Kept in the local cache, keyed by the folder and the AWS endpoint: a sandbox job is
never mistaken for one on AWS."""
from __future__ import annotations

import os
import time

from .paths import cache_root, read_json_dict, write_json_atomic

MAX_FOLDERS = 200  # oldest folders are forgotten beyond this


def _path(environ) -> str:
    return os.path.join(cache_root(environ), "launches.json")


def _key(folder: str, environ) -> str:
    return f"{os.path.realpath(folder)}|{environ.get('AWS_ENDPOINT_URL', '')}"


def record_launch(job: str, region: str, environ, folder: str = None, now=time.time) -> None:
    """Remember `job` as the newest launched from `folder` (default: the working folder)."""
    path = _path(environ)
    data = read_json_dict(path)
    data[_key(folder or os.getcwd(), environ)] = {"job": job, "region": region, "time": now()}
    if len(data) > MAX_FOLDERS:
        oldest_first = sorted(data, key=lambda k: data[k].get("time", 0) if isinstance(data[k], dict) else 0)
        for stale in oldest_first[:len(data) - MAX_FOLDERS]:
            del data[stale]
    write_json_atomic(path, data)


def last_launch(environ, folder: str = None):
    """(job, region) of the newest launch from `folder`, or None."""
    entry = read_json_dict(_path(environ)).get(_key(folder or os.getcwd(), environ))
    if isinstance(entry, dict) and isinstance(entry.get("job"), str):
        return entry["job"], entry.get("region")
    return None
