"""A job's model.tar.gz (or, with --sagemaker-output-compression none, its model prefix) delivered
into a folder on this machine (`aws-train-remote download`, `--sagemaker-download`, local mode's
end): only safe members, nothing outside the folder, nothing of the user's lost (issues 17.7 and
18.2; the rules: runtime/safe_tar.py and docs/remote.md, "Archives").

An unsafe member (a link or path that leaves the folder, a device) is left out and named, and the
other members are delivered: a link that leaves the folder carries no bytes of the model (what it
points at was never in the archive), so refusing the whole archive would only cost the user the
weights beside it. An archive that cannot be read is refused whole.
"""
from __future__ import annotations

import os

from ..errors import AwsError, TrainRemoteError, UsageError
from ..runtime.safe_tar import PathsInTheWay, UnsafeArchive, deliver_into, shown, unpack_into
from .local_outputs import uncompressed


def check_dest(flag: str, dest: str) -> None:
    """A destination that is a file, or lies under one, is one line before anything is fetched."""
    path = os.path.abspath(dest)
    while not os.path.lexists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        where = "is a file" if path == os.path.abspath(dest) else f"is inside {path}, which is a file"
        raise UsageError(flag, dest, f"{where}, not a folder", f"choose a folder for {flag}")


def fetch_model(s3, desc: dict, dest: str, *, overwrite: bool, flag: str = "--dest"):
    """Download the job's model.tar.gz and unpack it into `dest` (unpack_model), or with an
    uncompressed model its files (fetch_prefix); returns safe_tar.Unpacked (files, skipped
    members, replaced paths)."""
    import tempfile

    from ..contract import split_s3

    uri = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not uri:
        raise AwsError(f"{desc.get('TrainingJobName')}: no model artifacts recorded")
    check_dest(flag, dest)
    if uncompressed(desc):
        return fetch_prefix(s3, uri, dest, overwrite=overwrite, flag=flag, job=desc.get("TrainingJobName"))
    bucket, key = split_s3(uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "model.tar.gz")
        s3.download_file(bucket, key, local)
        return unpack_model(local, dest, overwrite=overwrite, flag=flag, job=desc.get("TrainingJobName"), uri=uri)


def unpack_model(archive: str, dest: str, *, overwrite: bool, flag: str, job: str, uri: str = None):
    """A model archive already on this machine unpacked into `dest` all or nothing, unsafe
    members left out; each refusal is one line naming `flag`. Returns safe_tar.Unpacked."""
    return _delivered(lambda: unpack_into(archive, dest, overwrite=overwrite, skip_unsafe=True), dest,
                      flag=flag, job=job, uri=uri or archive)


def fetch_prefix(s3, uri: str, dest: str, *, overwrite: bool, flag: str, job: str):
    """An uncompressed model: every object under the prefix `uri` into `dest`, with the archive's
    guarantees (safe_tar.deliver_into: staged first, nothing of the user's lost, all or nothing).
    A key that would leave `dest` is left out and named, as an unsafe archive member is."""
    from ..contract import split_s3

    bucket, prefix = split_s3(uri.rstrip("/") + "/")

    def fill(folder):
        files, skipped = 0, []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix):]
                if not rel or rel.endswith("/"):
                    continue  # the prefix itself, or a folder marker
                if rel.startswith("/") or any(part in ("", ".", "..") for part in rel.split("/")):
                    skipped.append(f"{rel!r}: the key leaves the model's folder")
                    continue
                target = os.path.join(folder, *rel.split("/"))
                try:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    s3.download_file(bucket, obj["Key"], target)
                except (FileExistsError, NotADirectoryError, IsADirectoryError):
                    skipped.append(f"{rel!r}: a file and a folder of the same name")
                    continue
                files += 1
        if not files and not skipped:
            raise AwsError(f"{job}: no model files under {uri}")
        return files, tuple(skipped)

    return _delivered(lambda: deliver_into(fill, dest, overwrite=overwrite), dest, flag=flag, job=job, uri=uri)


def copy_folder(source: str, dest: str, *, overwrite: bool, flag: str, job: str):
    """Local mode's uncompressed model: the files of the mirror's prefix folder into `dest`, with
    the same guarantees as fetch_prefix."""
    import shutil

    def fill(folder):
        files = 0
        for root, _dirs, names in os.walk(source):
            for name in names:
                rel = os.path.relpath(os.path.join(root, name), source)
                os.makedirs(os.path.join(folder, os.path.dirname(rel)), exist_ok=True)
                shutil.copy2(os.path.join(root, name), os.path.join(folder, rel))
                files += 1
        return files, ()

    return _delivered(lambda: deliver_into(fill, dest, overwrite=overwrite), dest, flag=flag, job=job, uri=source)


def deliver_local_model(storage, request: dict, dest: str, job: str = None):
    """Local mode's end: the job's model from the local mirror into --model-dir, where its files
    replace those of the same name as the script's own run would. (where it was, safe_tar.Unpacked)."""
    from .local_outputs import model_prefix

    job = job or request["TrainingJobName"]
    where = storage._path(model_prefix(request, job))
    if where.endswith("/"):  # uncompressed: a folder of the mirror
        return where, copy_folder(where, dest, overwrite=True, flag="--model-dir", job=job)
    return where, unpack_model(where, dest, overwrite=True, flag="--model-dir", job=job)


def _delivered(deliver, dest: str, *, flag: str, job: str, uri: str):
    """Run a delivery into `dest`; each refusal is one line naming `flag`."""
    try:
        return deliver()
    except UnsafeArchive as err:  # unreadable: unsafe members alone are skipped
        raise AwsError(f"refusing to unpack {uri}: {err}; nothing was written to {dest}") from None
    except PathsInTheWay as err:
        raise UsageError(flag, dest, f"{shown(err.paths)} already there, in the way (nothing was written)",
                         _way_out(err, flag, job)) from None
    except NotADirectoryError:
        raise UsageError(flag, dest, "is a file, not a folder", f"choose a folder for {flag}") from None
    except OSError as err:
        raise TrainRemoteError(f"cannot unpack {uri} into {dest}: {err}; nothing was written") from None


def _way_out(err, flag: str, job: str) -> str:
    if err.folders:
        fix = (f"move {shown(err.folders)} away or choose another {flag}: the archive has a file there, "
               "and a download never deletes a folder")
    else:
        fix = f"pass --overwrite to replace them (the folder's other files are kept), or choose another {flag}"
    if flag != "--dest":  # after a launch: say how to fetch the model once the way is clear
        fix += f"; then: aws-train-remote download {job} --dest DIR"
    return fix


def skipped_line(unpacked, dest: str) -> str:
    """One line naming the unsafe members left out."""
    from ..aws.jobs import plural

    return (f"warning: left out {plural(len(unpacked.skipped), 'unsafe member')} of the model "
            f"(nothing was written outside {dest}): {shown(unpacked.skipped, 3, '; ')}")
