"""Uploads of an UploadPlan: content-addressed, concurrent, never half-done, resumable.

The input store (File and Pipe inputs): one ListObjectsV2 walk of <prefix>/store/ says which
objects are there with their sizes, so a deleted or truncated one is sent again and nothing
present is; large files go through the transfer manager, packs (read from their files just before
they are sent) and trees are put, and each version's manifest is written after all of them.
Prefix inputs (FastFile, sharded): what is already in S3 is found by one ListObjectsV2 walk per
input prefix (key and size), not a HEAD per object; a manifest is trusted only together with the
objects it names, so a deleted object is sent again. An input file whose bytes were uploaded before
under another key is copied server-side. Each object is recorded in the local index as it
completes (saved atomically even on Ctrl-C), and every manifest is written only after its
objects, so an interrupted upload is never taken as complete and a relaunch sends only what is
missing. A file whose stat stamp moved while it was uploaded is deleted from S3 again and
refused. Multipart uploads this launch leaves behind are aborted. One transfer manager serves all
files.
"""
from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
import time
from dataclasses import dataclass

from ..errors import AwsError, TrainRemoteError, UsageError
from ..paths import read_json_dict, write_json_atomic
from .session import error_code

MULTIPART_THRESHOLD = 16 * 1024 * 1024
# A manifest older than this is written again at launch, so `aws-train-remote gc` (whose cutoff is
# at least this) never takes a version that is being launched for an unused one.
MANIFEST_REFRESH_SECONDS = 86400


@dataclass
class UploadReport:
    """Counted in objects: a file of a prefix input, a large file or a pack of the store, the code
    bundle, the driver (manifests are not counted)."""
    bytes_uploaded: int = 0
    files_uploaded: int = 0
    files_copied: int = 0
    files_present: int = 0


class Progress:
    """One progress line on a terminal, nothing otherwise."""

    def __init__(self, total_bytes: int, stream=None, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)()) and total_bytes > 0
        self.total = total_bytes
        self.done = 0
        self.clock = clock
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, nbytes: int) -> None:
        with self._lock:
            self.done += nbytes
            if self.enabled and (self.clock() - self._last > 0.1 or self.done >= self.total):
                self._last = self.clock()
                pct = 100.0 * self.done / self.total
                self.stream.write(f"\ruploading {self.done / 1e6:8.1f} / {self.total / 1e6:.1f} MB ({pct:5.1f}%)")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class FileChangedDuringUpload(TrainRemoteError):
    """A local file changed between hashing and the end of its upload."""


class ObjectIndex:
    """sha256 -> key of an object already uploaded to this bucket (local, per bucket). Entries
    are added as objects complete, from several threads."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._dirty = False
        self.entries = read_json_dict(path)

    def get(self, sha: str):
        return self.entries.get(sha)

    def add(self, sha: str, key: str) -> None:
        with self._lock:
            if self.entries.get(sha) != key:
                self.entries[sha] = key
                self._dirty = True

    def forget(self, sha: str, key: str) -> None:
        with self._lock:
            if self.entries.get(sha) == key:
                del self.entries[sha]
                self._dirty = True

    def save(self) -> None:
        """Atomically: a reader (or a launch killed half-way) never sees half a file."""
        with self._lock:
            if self._dirty:
                write_json_atomic(self.path, self.entries)
                self._dirty = False


def list_prefix(s3, bucket: str, prefix: str, owner: str = None) -> dict:
    """key -> size of every object under `prefix` (one page walk)."""
    return {key: size for key, (size, _) in list_objects(s3, bucket, prefix, owner).items()}


def list_objects(s3, bucket: str, prefix: str, owner: str = None) -> dict:
    """key -> (size, LastModified) of every object under `prefix`: one call per 1,000 objects."""
    found = {}
    kwargs = {"Bucket": bucket, "Prefix": prefix, **({"ExpectedBucketOwner": owner} if owner else {})}
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = (obj["Size"], obj["LastModified"])
    return found


def object_size(s3, bucket: str, key: str, owner: str = None):
    """The object's size, or None when there is no such object."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key, **({"ExpectedBucketOwner": owner} if owner else {}))
        return head["ContentLength"]
    except ClientError as err:
        if error_code(err) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def object_exists(s3, bucket: str, key: str, owner: str = None) -> bool:
    return object_size(s3, bucket, key, owner) is not None


def check_bucket(s3, bucket: str, account: str, flag: str, may_create: bool) -> bool:
    """Whether the bucket exists and belongs to this account (read-only). A missing bucket is an
    error unless aws-train-remote may create it (the default bucket)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
        return True
    except ClientError as err:
        code = error_code(err)
        if code in ("403", "AccessDenied"):
            raise UsageError(flag, bucket, "exists but is not owned by this account "
                             f"({account}) or is not readable", "pass a bucket of your own") from None
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
    if not may_create:
        raise UsageError(flag, bucket, "no such bucket", "create it, or drop the flag to use "
                         "sagemaker-<region>-<account>")
    return False


def create_bucket(s3, bucket: str, region: str) -> None:
    from botocore.exceptions import ClientError

    kwargs = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as err:
        if error_code(err) != "BucketAlreadyOwnedByYou":
            raise


class Uploader:
    def __init__(self, s3, bucket: str, *, kms_key=None, index: ObjectIndex = None, max_concurrency=16,
                 progress_stream=None, owner: str = None):
        self.s3 = s3
        self.bucket = bucket
        self.owner = owner  # every call carries ExpectedBucketOwner: a bucket re-created by someone else fails
        self.kms_key = kms_key
        self.index = index
        self.max_concurrency = max_concurrency
        self.progress_stream = progress_stream
        self.report = UploadReport()
        self._lock = threading.Lock()

    @property
    def owner_args(self) -> dict:
        return {"ExpectedBucketOwner": self.owner} if self.owner else {}

    @property
    def extra_args(self) -> dict:
        extra = dict(self.owner_args)
        if self.kms_key:
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key)
        return extra

    def upload_plan(self, plan, clock=None) -> UploadReport:
        """Upload what is missing; manifests last. Raises on failure, leaving no new manifest."""
        uploads, copies, puts, manifests = [], [], [], []
        for single in plan.singles():
            if object_size(self.s3, self.bucket, single.key, self.owner) == single.size:
                self.report.files_present += 1
            else:
                uploads.append(single)
        for item in plan.prefix_inputs():
            complete = object_exists(self.s3, self.bucket, item.manifest_key, self.owner)
            present = list_prefix(self.s3, self.bucket, item.prefix_key, self.owner)
            for f in item.files:
                if present.get(f.key) == f.size:
                    self.report.files_present += 1
                    self._record(f)
                    continue
                source = self.index.get(f.sha256) if self.index else None
                if source and source != f.key:
                    copies.append((f, source))
                else:
                    uploads.append(f)
            if not complete:
                manifests.append((item.manifest_key, item.manifest))
        stores = plan.store_inputs()
        if stores:
            more_uploads, puts, store_manifests = self._store_needs(stores, clock)
            uploads += more_uploads
            manifests += store_manifests
        self._transfer(uploads, copies)
        self._put_all(puts)
        for key, body in manifests:  # only now is each version complete
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **self.extra_args)
        for f in plan.singles():
            self._record(f)
        return self.report

    def _store_needs(self, stores, clock=None) -> tuple:
        """One listing of the store tells what is there (a deleted object included): the large files
        to send (as PlannedFile), the packs and trees to put, the manifests to write."""
        import datetime

        from ..plan.uploads import PlannedFile

        now = (clock or (lambda: datetime.datetime.now(datetime.timezone.utc)))()
        from ..plan.store import store_root

        listing = list_objects(self.s3, self.bucket, store_root(stores[0].prefix), self.owner)
        uploads, puts, manifests, seen = [], [], [], set()
        for item in stores:
            for obj in item.unique_objects():
                key = item.object_key(obj.sha256)
                if key in seen:
                    continue
                seen.add(key)
                if listing.get(key, (None,))[0] == obj.size:
                    self.report.files_present += 1
                elif obj.kind == "file":
                    m = obj.members[0]
                    uploads.append(PlannedFile(m.local, m.relpath, m.size, m.sha256, key, m.stamp))
                else:
                    puts.append((key, obj))
            key = item.manifest_key(self.bucket)
            there = listing.get(key)
            if there is None or (now - there[1]).total_seconds() > MANIFEST_REFRESH_SECONDS:
                manifests.append((key, item.manifest(self.bucket)))
        return uploads, puts, manifests

    def _put_all(self, puts) -> None:
        """Packs (read from their files now, refused if one changed since it was hashed) and trees,
        concurrently."""
        from botocore.exceptions import BotoCoreError, ClientError

        from ..plan.hashcache import FileChanged
        from ..plan.store import read_pack

        def put(item):
            key, obj = item
            try:
                body = obj.body if obj.kind == "tree" else read_pack(obj)
            except FileChanged as err:
                raise FileChangedDuringUpload(f"{err} changed while it was uploaded; nothing was marked "
                                              "complete; launch again once it is written") from None
            try:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **self.extra_args)
            except (ClientError, BotoCoreError):
                if object_size(self.s3, self.bucket, key, self.owner) != len(body):
                    raise  # not a lost reply of a put that landed
            with self._lock:
                self.report.files_uploaded += 1
                self.report.bytes_uploaded += len(body)

        try:
            for phase in ("pack", "tree"):  # a tree only once the packs it names are in
                batch = [item for item in puts if item[1].kind == phase]
                if batch:
                    with concurrent.futures.ThreadPoolExecutor(min(self.max_concurrency, len(batch))) as pool:
                        for _ in pool.map(put, batch):
                            pass
        except (TrainRemoteError, KeyboardInterrupt):
            raise
        except Exception as err:  # noqa: BLE001 - one message for any transfer failure
            raise AwsError(f"upload to s3://{self.bucket} failed: {err}; nothing was marked complete, "
                           "run again to resume") from None

    def _record(self, f) -> None:
        if self.index is not None:
            self.index.add(f.sha256, f.key)

    def _transfer(self, uploads, copies) -> None:
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        progress = Progress(sum(f.size for f in uploads), self.progress_stream)
        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD,
                                max_concurrency=self.max_concurrency, use_threads=True)
        multipart = [f for f in uploads if f.size >= MULTIPART_THRESHOLD]
        try:
            with create_transfer_manager(self.s3, config) as manager:
                def send(f):
                    return f, manager.upload(f.local, self.bucket, f.key, extra_args=self.extra_args or None,
                                             subscribers=[_ProgressSubscriber(progress)])

                futures = [send(f) for f in uploads]
                resend = self._copy_all(copies)
                multipart += [f for f in resend if f.size >= MULTIPART_THRESHOLD]
                futures += [send(f) for f in resend]  # copies whose source had vanished: upload after all
                for f, future in futures:
                    self._finish(f, future)
        except (TrainRemoteError, KeyboardInterrupt):
            raise
        except Exception as err:  # noqa: BLE001 - one message for any transfer failure
            raise AwsError(f"upload to s3://{self.bucket} failed: {err}; nothing was marked complete, "
                           "run again to resume") from None
        finally:
            progress.close()
            self._abort_leftover_multipart(multipart)

    def _finish(self, f, future) -> None:
        """Wait for one upload; a failure whose object is complete after all (its last reply was
        lost) counts as done. Then check the file did not change while it was sent."""
        try:
            future.result()
        except Exception:
            if object_size(self.s3, self.bucket, f.key, self.owner) != f.size:
                raise
        self._check_unchanged(f)
        self._count_upload(f)
        self._record(f)

    def _check_unchanged(self, f) -> None:
        from ..plan.hashcache import stamp_of

        try:
            now = stamp_of(os.stat(f.local))
        except OSError:
            now = None
        if f.stamp and now != list(f.stamp):
            # the object may hold bytes that are not the planned sha256: it must not stay under that name
            self.s3.delete_object(Bucket=self.bucket, Key=f.key, **self.owner_args)
            if self.index is not None:
                self.index.forget(f.sha256, f.key)
            raise FileChangedDuringUpload(f"{f.local} changed while it was uploaded; nothing was marked "
                                          "complete; launch again once it is written")

    def _abort_leftover_multipart(self, files) -> None:
        """Abort incomplete multipart uploads to these keys: after a CreateMultipartUpload whose reply
        was lost, S3 holds an upload nobody will complete (and bills its parts). Uploads to a key that
        is now complete are redundant whoever started them; a concurrent launch whose upload is
        aborted finds the object complete and counts it as done."""
        from botocore.exceptions import BotoCoreError, ClientError

        for f in files:
            try:
                if object_size(self.s3, self.bucket, f.key, self.owner) != f.size:
                    continue  # interrupted: s3transfer aborted its own upload; a relaunch cleans the rest
                page = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=f.key, **self.owner_args)
                for upload in page.get("Uploads", []):
                    if upload["Key"] == f.key:
                        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=f.key, UploadId=upload["UploadId"],
                                                       **self.owner_args)
            except (ClientError, BotoCoreError, KeyboardInterrupt):
                return  # housekeeping only: never turn a finished launch into a failed one

    def _count_upload(self, f) -> None:
        with self._lock:
            self.report.files_uploaded += 1
            self.report.bytes_uploaded += f.size

    def _copy_all(self, copies) -> list:
        """Server-side copies, concurrently; returns the files whose source was missing."""
        from botocore.exceptions import ClientError

        missing = []

        def copy(item):
            f, source = item
            try:
                self.s3.copy_object(Bucket=self.bucket, Key=f.key, CopySource={"Bucket": self.bucket, "Key": source},
                                    **self.extra_args)
            except ClientError as err:
                if error_code(err) in ("NoSuchKey", "404"):
                    if self.index is not None:
                        self.index.forget(f.sha256, source)
                    return f
                raise
            with self._lock:
                self.report.files_copied += 1
            self._record(f)
            return None

        large = [item for item in copies if item[0].size >= 5 * 1024 ** 3]
        if large:  # CopyObject is limited to 5 GB; re-upload those rather than multipart-copy
            missing += [f for f, _ in large]
            copies = [item for item in copies if item[0].size < 5 * 1024 ** 3]
        with concurrent.futures.ThreadPoolExecutor(self.max_concurrency) as pool:
            for result in pool.map(copy, copies):
                if result is not None:
                    missing.append(result)
        return missing


class _ProgressSubscriber:
    def __init__(self, progress):
        self.progress = progress

    def on_progress(self, future=None, bytes_transferred=0, **kwargs):
        self.progress(bytes_transferred)

    def on_queued(self, **kwargs):
        pass

    def on_done(self, **kwargs):
        pass


def put_marker(s3, bucket: str, key: str, kms_key=None) -> None:
    """An object so that an S3 prefix used as a channel is never empty (SageMaker rejects that)."""
    if not object_exists(s3, bucket, key):
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
        s3.put_object(Bucket=bucket, Key=key, Body=b"aws-train-remote\n", **extra)


def seed_prefix(s3, bucket: str, dest_prefix: str, source: str, kms_key=None) -> int:
    """--checkpoint-initial: copy a local folder or an S3 prefix into the checkpoint prefix."""
    from ..contract import split_s3
    from ..spec.values import is_s3_uri

    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
    count = 0
    if is_s3_uri(source):
        src_bucket, src_prefix = split_s3(source)
        src_prefix = src_prefix if not src_prefix or src_prefix.endswith("/") else src_prefix + "/"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=src_bucket, Prefix=src_prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(src_prefix):]
                if rel:
                    s3.copy_object(Bucket=bucket, Key=dest_prefix + rel,
                                   CopySource={"Bucket": src_bucket, "Key": obj["Key"]}, **extra)
                    count += 1
        return count
    for dirpath, _, filenames in os.walk(source):
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, source).replace(os.sep, "/")
            s3.upload_file(full, bucket, dest_prefix + rel, ExtraArgs=extra or None)
            count += 1
    return count


def archive_prefix(s3, bucket: str, prefix: str, dest_prefix: str, kms_key=None) -> int:
    """--sagemaker-fresh-start: move every object under `prefix` to `dest_prefix` (copy, then
    delete the originals once all are copied: an interruption leaves copies, never a loss)."""
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
    keys = sorted(list_prefix(s3, bucket, prefix))
    for key in keys:
        s3.copy_object(Bucket=bucket, Key=dest_prefix + key[len(prefix):], CopySource={"Bucket": bucket, "Key": key},
                       **extra)
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                 "Quiet": True})
    return len(keys)
