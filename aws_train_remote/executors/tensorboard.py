"""`aws-train-remote tensorboard [JOB]`: the TensorBoard files a job uploads (--sagemaker-tensorboard,
TensorBoardOutputConfig) synced into a local folder, then TensorBoard started on that folder when it
is installed, else the command that starts it. While the job runs the folder is synced again every
SYNC_SECONDS, so the charts follow the job; TensorBoard re-reads its folder by itself.

The sync only adds and refreshes files (by size and ETag): nothing in the folder is deleted, and a
key that would leave it is skipped. The effects (clients, the TensorBoard runner, which, sleep) are
passed in.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from ..aws.jobs import TERMINAL, plural
from ..errors import UsageError

SYNC_SECONDS = 30.0
DEFAULT_PORT = 6006


def tensorboard_uri(desc: dict, job: str) -> str:
    """Where the job's TensorBoard files are; one line when it has none."""
    uri = (desc.get("TensorBoardOutputConfig") or {}).get("S3OutputPath")
    if not uri:
        raise UsageError("JOB", job, "has no TensorBoard output (it was launched without --sagemaker-tensorboard)",
                         "launch with --sagemaker-tensorboard; the script writes its logs to args.tensorboard_dir")
    return uri


def sync_down(s3, uri: str, dest: str, seen: dict) -> int:
    """Objects under `uri` that are new or changed since `seen` (key -> (size, ETag)) into `dest`;
    returns how many were fetched. Nothing in `dest` is deleted."""
    from ..contract import split_s3

    bucket, prefix = split_s3(uri.rstrip("/") + "/")
    fetched = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            stamp = (obj.get("Size"), obj.get("ETag"))
            if not rel or rel.endswith("/") or seen.get(obj["Key"]) == stamp:
                continue
            if rel.startswith("/") or any(part in ("", ".", "..") for part in rel.split("/")):
                continue  # a key that would leave the folder
            target = os.path.join(dest, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            partial = target + ".atr-partial"
            s3.download_file(bucket, obj["Key"], partial)
            os.replace(partial, target)  # TensorBoard never reads half a file
            seen[obj["Key"]] = stamp
            fetched += 1
    return fetched


def cmd_tensorboard(session, job: str, args, *, out=None, runner=subprocess.Popen, which=shutil.which,
                    sleep=time.sleep) -> int:
    from .manage import describe
    from .model_download import check_dest

    out = out if out is not None else sys.stdout
    dest = args.dest or os.path.join("output", "tensorboard", job)
    check_dest("--dest", dest)
    sm, s3 = session.client("sagemaker"), session.client("s3")
    desc = describe(sm, job)
    uri = tensorboard_uri(desc, job)
    seen = {}
    count = sync_down(s3, uri, dest, seen)
    status = desc.get("TrainingJobStatus")
    print(f"TensorBoard files of {job} ({status}): {plural(count, 'file')} from {uri} in {dest}", file=out)
    exe = which("tensorboard")
    command = ["tensorboard", "--logdir", dest, "--port", str(args.port)]
    if args.no_start or not exe:
        hint = "" if exe else " (TensorBoard is not installed here: pip install tensorboard)"
        print(f"start it with: {' '.join(command)}{hint}", file=out)
        return 0
    out.flush()
    proc = runner([exe, *command[1:]])  # TensorBoard serves on localhost unless told --bind_all
    print(f"TensorBoard on http://localhost:{args.port}/ ; Ctrl-C stops it", file=out)
    out.flush()
    try:
        while proc.poll() is None:
            if status in TERMINAL:
                proc.wait()
                break
            sleep(SYNC_SECONDS)
            status = describe(sm, job).get("TrainingJobStatus")
            fresh = sync_down(s3, uri, dest, seen)  # once more after the end: the last files
            if fresh:
                print(f"{plural(fresh, 'file')} more from {job} ({status})", file=out)
                out.flush()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0
