"""A job's storage on S3: channel data in (S3Prefix objects, a host's shard, ManifestFile channels)
and artifacts and checkpoints out, through a boto3 S3 client (S3Storage). local_job.py runs the
sandbox's jobs over it.
"""
from __future__ import annotations

import json
import os

from .. import contract
from .folder_sync import churned, scan_changes


class S3Storage:
    """Channel data in and artifacts out, through a boto3 S3 client."""

    def __init__(self, s3):
        self.s3 = s3

    def fetch(self, uri: str, dest: str, shard=None) -> int:
        """Every object under `uri` into `dest`, keyed relative to the URI's folder (as SageMaker's
        File mode does: an exact object key lands as its file name). `shard` (index, count): only
        this host's share, see shard_of."""
        if not uri.startswith("s3://"):
            raise ValueError(f"{uri} is a file system, which only a SageMaker job can mount (the sandbox cannot); "
                             "try it in local mode with --<input>-local FOLDER")
        bucket, key = contract.split_s3(uri)
        if not key or key.endswith("/"):
            base = key
        else:  # an exact object key: it lands under its own name
            base = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        modified = {obj["Key"]: obj["LastModified"]
                    for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                    for obj in page.get("Contents", []) if obj["Key"][len(base):] and not obj["Key"].endswith("/")}
        count = 0
        for object_key in shard_of(sorted(modified), shard):
            target = os.path.realpath(os.path.join(dest, object_key[len(base):]))
            if not target.startswith(os.path.realpath(dest) + os.sep):
                continue  # a key with '..' must not escape the channel folder
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self.s3.download_file(bucket, object_key, target)
            # the object's own time, as `aws s3 sync` sets it: a trainer that picks its newest
            # checkpoint by file time (Lightning's ckpt_path="last") must not see download order
            stamp = modified[object_key].timestamp()
            os.utime(target, (stamp, stamp))
            count += 1
        return count

    def read(self, uri: str) -> bytes:
        bucket, key = contract.split_s3(uri)
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def download(self, uri: str, target: str) -> None:
        bucket, key = contract.split_s3(uri)
        self.s3.download_file(bucket, key, target)

    def put(self, local: str, uri: str) -> None:
        bucket, key = contract.split_s3(uri)
        self.s3.upload_file(local, bucket, key)

    def sync_up(self, local_dir: str, uri: str, seen: dict) -> list:
        """Upload new or changed files and delete removed ones (as SageMaker's checkpoint sync: a
        link's target is uploaded); returns the lines naming what was skipped (dangling links)."""
        bucket, prefix = contract.split_s3(uri)
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        skipped = []
        changed, removed = scan_changes(local_dir, seen, skipped)
        for rel in removed:
            self.s3.delete_object(Bucket=bucket, Key=prefix + rel)
        for rel in changed:
            path = os.path.join(local_dir, rel)
            try:
                # one open file: a link re-pointed after the listing cannot change the size under the
                # upload (upload_file takes the size first, then reads: a PutObject that never ends)
                with open(path, "rb") as fh:
                    self.s3.upload_fileobj(fh, bucket, prefix + rel)
            except Exception:
                if not churned(path, seen[rel]):
                    raise  # the storage failed, not the trainer's folder
                seen[rel] = None  # changed or gone while uploaded: the next pass sends or deletes it
        return skipped


def fetch_manifest(storage, uri: str, dest: str, shard=None) -> list:
    """A ManifestFile channel as SageMaker's File mode is reported to place it: each listed object
    under `dest` at its whole key (reference/manifest_channels.md), so the runtime cannot rely on
    where it lands. Returns the local paths in manifest order, repeats kept (Pipe streams that)."""
    os.makedirs(dest, exist_ok=True)
    try:  # a manifest edited by hand may be anything: as SageMaker, the channel cannot be read
        entries = json.loads(storage.read(uri))
        prefix = entries[0]["prefix"]
        _, key_prefix = contract.split_s3(prefix)
        if not all(isinstance(suffix, str) for suffix in entries[1:]):
            raise TypeError("an entry is not a key suffix")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise ValueError(f"manifest {uri} is not a ManifestFile ([{{\"prefix\": ...}}, \"key\", ...]): "
                         f"{type(err).__name__}: {err}") from None
    paths, fetched = [], {}
    for suffix in shard_of(entries[1:], shard):
        if suffix not in fetched:
            target = os.path.realpath(os.path.join(dest, key_prefix + suffix))
            if not target.startswith(os.path.realpath(dest) + os.sep):
                raise ValueError(f"manifest {uri} names {suffix!r}, outside its prefix")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                storage.download(prefix + suffix, target)
            except Exception as err:  # noqa: BLE001 - as SageMaker: the channel cannot be downloaded
                raise ValueError(f"{prefix}{suffix}, named by the manifest {uri}, cannot be read ({err})") from None
            fetched[suffix] = target
        paths.append(fetched[suffix])
    return paths


def shard_of(keys: list, shard) -> list:
    """ShardedByS3Key as emulated here: keys in lexicographic order, host i of n (algo-(i+1)) gets
    every n-th key starting at the i-th, so each gets about 1/n of the objects and none twice.
    (SageMaker documents the share, not the assignment; a script must not rely on which.)"""
    if not shard:
        return keys
    index, count = shard
    return keys[index::count]
