"""--sagemaker-model-from: an earlier job's model, found by its name (DescribeTrainingJob), and for
a local run fetched and unpacked into the local cache."""
from __future__ import annotations

import dataclasses
import hashlib
import os

from ..errors import UsageError


def model_of_job(sm, job: str) -> str:
    """The S3 URI of a completed job's model.tar.gz; one line if there is none."""
    from ..executors.local_outputs import uncompressed
    from .jobs import describe_or_none

    desc = describe_or_none(sm, job)
    if desc is None:
        raise UsageError("--sagemaker-model-from", job, "no such training job in this account and region",
                         "check the name with: aws-train-remote list")
    uri = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if desc.get("TrainingJobStatus") != "Completed" or not uri:
        raise UsageError("--sagemaker-model-from", job, f"has no model to start from: it is "
                         f"{desc.get('TrainingJobStatus')}", "name a completed job, or an s3:// URI of a model.tar.gz")
    if uncompressed(desc):
        return uri.rstrip("/") + "/"  # --sagemaker-output-compression none: the prefix of the model's files
    return uri


def resolve_model_job(spec, sm):
    """The spec with a job name in --sagemaker-model-from replaced by that job's model URI."""
    from ..spec.job import JOB_MODEL

    inputs = []
    for item in spec.inputs:
        if item.model_init and item.location.startswith(JOB_MODEL):
            uri = model_of_job(sm, item.location[len(JOB_MODEL):])  # a prefix (ends in /): the files as they are
            item = dataclasses.replace(item, location=uri, single_file=not uri.endswith("/"))
        inputs.append(item)
    return dataclasses.replace(spec, inputs=tuple(inputs))


def local_model_init(source: str, session_factory, cache: str) -> str:
    """For a local run: the folder holding the model `source` names, unpacked into the cache
    once per archive content (a local folder is used as it is)."""
    from ..runtime.safe_tar import extract_into
    from ..spec.values import is_s3_uri

    if not is_s3_uri(source) and os.path.isdir(source):
        return os.path.abspath(source)
    if is_s3_uri(source) or not os.path.exists(source):
        from ..contract import split_s3

        session = session_factory()
        uri = source if is_s3_uri(source) else model_of_job(session.client("sagemaker"), source)
        s3 = session.client("s3")
        if uri.endswith("/"):  # an uncompressed model: its files, fetched once per version of them
            return _prefix_model(s3, uri, cache)
        bucket, key = split_s3(uri)
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
        folder = os.path.join(cache, "models", hashlib.sha256(f"{uri} {etag}".encode()).hexdigest()[:32])
        archive = os.path.join(folder, "model.tar.gz")
        if not os.path.isdir(os.path.join(folder, "unpacked")):
            os.makedirs(folder, exist_ok=True)
            s3.download_file(bucket, key, archive)
    else:
        digest = hashlib.sha256()
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        folder = os.path.join(cache, "models", digest.hexdigest()[:32])
        archive = os.path.abspath(source)
    target = os.path.join(folder, "unpacked")
    if not os.path.isdir(target):
        import tarfile

        from ..runtime.safe_tar import UnsafeArchive

        try:
            extract_into(archive, target)
        except (UnsafeArchive, tarfile.TarError, EOFError) as err:
            raise UsageError("--sagemaker-model-from", source, f"cannot unpack it ({err})",
                             "give a model.tar.gz or a folder") from None
    return target


def _prefix_model(s3, uri: str, cache: str) -> str:
    """An uncompressed model (a job's with --sagemaker-output-compression none) in the local cache:
    the folder of its files, fetched once per listing (keys and ETags)."""
    from ..contract import split_s3
    from ..executors.model_download import fetch_prefix

    bucket, prefix = split_s3(uri)
    listing = [f"{o['Key']} {o.get('ETag')}" for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]
    digest = hashlib.sha256("\n".join([uri, *sorted(listing)]).encode()).hexdigest()[:32]
    target = os.path.join(cache, "models", digest, "files")
    if not os.path.isdir(target):
        fetch_prefix(s3, uri, target, overwrite=True, flag="--sagemaker-model-from", job=uri)
    return target
