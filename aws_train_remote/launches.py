"""What was launched from a folder: the newest job, so that `aws-train-remote logs` (no JOB, or
`last`) finds it, and the creates still pending, so that a launch interrupted while creating a job
is resumed by the next launch from the folder instead of repeated (executors/create.py). Kept in
the local cache, keyed by the folder and the AWS endpoint: a sandbox job is never mistaken for one
on AWS."""
from __future__ import annotations

import contextlib
import os
import time

from .paths import cache_root, read_json_dict, write_json_atomic

MAX_FOLDERS = 200  # oldest folders are forgotten beyond this
MAX_PENDING = 20  # per folder; oldest forgotten beyond this (each stands for a Ctrl-C at a create call)


def _path(environ) -> str:
    return os.path.join(cache_root(environ), "launches.json")


def _key(folder: str, environ) -> str:
    return f"{os.path.realpath(folder)}|{environ.get('AWS_ENDPOINT_URL', '')}"


@contextlib.contextmanager
def _locked(path: str):
    """One launch at a time changes the file: two launches from one folder would otherwise bring
    back a pending create the other had just settled. POSIX advisory lock; elsewhere none."""
    try:
        import fcntl
    except ImportError:  # Windows: the rename in write_json_atomic still keeps the file whole
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _update(environ, folder, change, now=time.time) -> None:
    """Read, change this folder's entry, write: the file stays bounded (MAX_FOLDERS)."""
    path = _path(environ)
    with _locked(path):
        _change(path, _key(folder or os.getcwd(), environ), change, now)


def _change(path: str, key: str, change, now) -> None:
    data = read_json_dict(path)
    entry = data.get(key) if isinstance(data.get(key), dict) else {}
    change(entry)
    entry["time"] = now()
    data[key] = entry
    if len(data) > MAX_FOLDERS:
        oldest_first = sorted(data, key=lambda k: data[k].get("time", 0) if isinstance(data[k], dict) else 0)
        for stale in oldest_first[:len(data) - MAX_FOLDERS]:
            del data[stale]
    write_json_atomic(path, data)


def _entry(environ, folder: str = None):
    """This folder's record as stored (a dict, or whatever else the file holds there, or None)."""
    return read_json_dict(_path(environ)).get(_key(folder or os.getcwd(), environ))


def record_launch(job: str, region: str, environ, folder: str = None, now=time.time) -> None:
    """Remember `job` as the newest launched from `folder` (default: the working folder)."""
    _update(environ, folder, lambda entry: entry.update(job=job, region=region), now)


def last_launch(environ, folder: str = None):
    """(job, region) of the newest launch from `folder`, or None."""
    entry = _entry(environ, folder)
    if isinstance(entry, dict) and isinstance(entry.get("job"), str):
        return entry["job"], entry.get("region")
    return None


def record_pending(record: dict, environ, folder: str = None, now=time.time) -> None:
    """Before a create call: what it is about to create (`record` holds at least kind, name, token,
    identity, region). Written first, so that a launch killed at any point leaves it behind."""
    def add(entry):
        pending = entry.get("pending") if isinstance(entry.get("pending"), dict) else {}
        pending[record["name"]] = dict(record, time=now())
        for stale in sorted(pending, key=lambda n: pending[n].get("time", 0))[:-MAX_PENDING]:
            del pending[stale]
        entry["pending"] = pending

    _update(environ, folder, add, now)


def forget_pending(name: str, environ, folder: str = None) -> None:
    """The create of `name` is settled: created and confirmed, refused, or taken over by a launch."""
    def drop(entry):
        pending = entry.get("pending")
        if isinstance(pending, dict):
            pending.pop(name, None)

    if any(r["name"] == name for r in pending_creates(environ, folder)):
        _update(environ, folder, drop)


def pending_creates(environ, folder: str = None) -> list:
    """The creates of earlier launches from `folder` whose outcome no launch has settled, oldest first."""
    entry = _entry(environ, folder)
    pending = entry.get("pending") if isinstance(entry, dict) else None
    if not isinstance(pending, dict):
        return []
    found = [r for r in pending.values() if isinstance(r, dict) and all(
        isinstance(r.get(k), str) for k in ("kind", "name", "token", "identity"))]
    return sorted(found, key=lambda r: r.get("time", 0))


def last_launch_time(environ, folder: str = None):
    """When the launch record of `folder` last changed (seconds since the epoch), or None."""
    entry = _entry(environ, folder)
    return entry.get("time") if isinstance(entry, dict) and isinstance(entry.get("time"), (int, float)) else None


def launched_jobs(environ) -> list:
    """The newest job of every folder (any endpoint), newest first: job names for shell completion,
    read from this machine's record alone."""
    data = read_json_dict(_path(environ))
    entries = [e for e in data.values() if isinstance(e, dict) and isinstance(e.get("job"), str)]
    return [e["job"] for e in sorted(entries, key=lambda e: e.get("time", 0) if isinstance(e.get("time"), (int, float))
                                     else 0, reverse=True)]
