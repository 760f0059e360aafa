"""The logs of local-mode jobs (--sagemaker-run local), kept so that `aws-train-remote metrics`
reads a local job as it reads a SageMaker job's CloudWatch log. A local job has no CloudWatch log
and no DescribeTrainingJob: <cache>/local-jobs/<job>/ holds job.json (its name, the folder it was
launched from, when, and its request's MetricDefinitions) and log.jsonl (one line per log line:
timestamp in ms, host, message). The newest MAX_JOBS jobs are kept. Standard library only."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time

from .paths import cache_root, read_json_dict, write_json_atomic

MAX_JOBS = 50


def _root(environ) -> str:
    return os.path.join(cache_root(environ), "local-jobs")


class LocalJobLog:
    """Records one local job; line() is called from every host's reader thread."""

    def __init__(self, environ, job: str, request: dict, folder: str = None, now=time.time):
        self.folder = os.path.join(_root(environ), job)
        os.makedirs(self.folder, exist_ok=True)
        definitions = (request.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
        write_json_atomic(os.path.join(self.folder, "job.json"), {
            "job": job, "folder": os.path.realpath(folder or os.getcwd()), "time": now(),
            "metric_definitions": definitions})
        self.lock = threading.Lock()
        self.out = open(os.path.join(self.folder, "log.jsonl"), "w", encoding="utf-8")  # noqa: SIM115 - close()
        self.now = now
        _prune(_root(environ), keep=job)

    def line(self, host: str, text: str) -> None:
        record = json.dumps({"timestamp": int(self.now() * 1000), "host": host, "message": text or ""})
        with self.lock:
            if not self.out.closed:
                self.out.write(record + "\n")

    def close(self) -> None:
        with self.lock:
            self.out.close()


def _prune(root: str, keep: str) -> None:
    """Forget the oldest jobs beyond MAX_JOBS (never `keep`, the one being written)."""
    jobs = [(read_json_dict(os.path.join(root, name, "job.json")).get("time", 0), name) for name in os.listdir(root)]
    for _, name in sorted(jobs, reverse=True)[MAX_JOBS:]:
        if name != keep:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def find(job: str, environ):
    """The record of local job `job` (its job.json, plus `log`: the log's path), or None."""
    if not job or "/" in job or os.sep in job or job.startswith("."):  # a job name, never a path
        return None
    folder = os.path.join(_root(environ), job)
    record = read_json_dict(os.path.join(folder, "job.json"))
    if record.get("job") != job:
        return None
    return dict(record, log=os.path.join(folder, "log.jsonl"))


def last(environ, folder: str = None):
    """The newest local job launched from `folder` (default: the working folder), or None."""
    root = _root(environ)
    if not os.path.isdir(root):
        return None
    here = os.path.realpath(folder or os.getcwd())
    found = [find(name, environ) for name in os.listdir(root)]
    found = [r for r in found if r and r.get("folder") == here]
    return max(found, key=lambda r: r.get("time", 0)) if found else None


def names(environ) -> list:
    """Every local job kept, newest first (for shell completion)."""
    root = _root(environ)
    if not os.path.isdir(root):
        return []
    found = [find(name, environ) for name in os.listdir(root)]
    return [r["job"] for r in sorted((r for r in found if r), key=lambda r: r.get("time", 0), reverse=True)]


def read_log(record) -> list:
    """(timestamp ms, host, message) of every line of a local job's log, in order."""
    lines = []
    try:
        with open(record["log"], encoding="utf-8") as fh:
            for raw in fh:
                try:
                    item = json.loads(raw)
                    lines.append((int(item["timestamp"]), str(item["host"]), str(item["message"])))
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash
    except FileNotFoundError:
        pass
    return lines


def local_job_for(job, environ, folder: str = None):
    """The local-mode job JOB names, or None when it names none (then it is a SageMaker job's). No
    JOB, or `last`: the newest local job from `folder`, if it is newer than the folder's last launch."""
    if job not in (None, "", "last"):
        return find(job, environ)
    newest = last(environ, folder)
    if newest is None:
        return None
    from .launches import last_launch_time

    launched = last_launch_time(environ, folder)
    return newest if launched is None or newest.get("time", 0) >= launched else None
