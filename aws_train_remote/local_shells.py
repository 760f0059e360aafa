"""Where a running local-mode or sandbox job can be entered: one small JSON file per host, written
by the runtime as the script starts (runtime/debugging.write_shell_record) and removed by the
executor when the host ends, under <cache>/shells/<job>/<host>.json. It names the host's code
folder and the environment the script runs with (SM_* variables, PYTHONPATH, the job's virtualenv
first on PATH), which is what `aws-train-remote shell` can honestly give for a job that runs on this
machine. A record whose runtime is gone (a killed executor) is ignored. Standard library only."""
from __future__ import annotations

import os

from .paths import cache_root, read_json_dict


def _root(environ) -> str:
    return os.path.join(cache_root(environ), "shells")


def _safe(name: str) -> bool:
    return bool(name) and "/" not in name and os.sep not in name and not name.startswith(".")


def record_path(environ, job: str, host: str) -> str:
    """The file the runtime of `host` writes (the executor passes it in the job's environment)."""
    return os.path.join(_root(environ), job, f"{host}.json")


def forget(environ, job: str, host: str) -> None:
    """The host ended: its record goes, and the job's folder with its last host."""
    try:
        os.remove(record_path(environ, job, host))
        os.rmdir(os.path.join(_root(environ), job))
    except OSError:
        pass


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def running(environ, job: str) -> dict:
    """host -> record of each host of `job` whose runtime is still running here; {} when none."""
    folder = os.path.join(_root(environ), job) if _safe(job or "") else None
    if not folder or not os.path.isdir(folder):
        return {}
    found = {}
    for name in sorted(os.listdir(folder)):
        record = read_json_dict(os.path.join(folder, name)) if name.endswith(".json") else {}
        if record.get("job") == job and isinstance(record.get("env"), dict) and _alive(record.get("pid")):
            found[record.get("host")] = record
    return found

