"""Uploads of an UploadPlan: content-addressed, concurrent, never half-done, resumable, checked.

Every upload carries S3's SHA-256 checksum: one PUT the sha256 the plan knows, so S3 refuses bytes
that are not the ones hashed; a multipart upload one per part (S3 keeps their composite). The input
store (File and Pipe inputs): one ListObjectsV2 walk of <prefix>/store/ says which objects are
there, and each is trusted by its checksum (aws/store_check.py), so a deleted, truncated or
replaced one is sent again and nothing intact is; large files go through the transfer manager,
packs (read from their files just before they are sent) and trees are put, each version's
manifest is written after all of them, and the objects it names are checked once more before the
job is created. The code bundle and the driver are checked by size and checksum (one HeadObject each).
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
import datetime
import os
import threading
from dataclasses import dataclass

from ..errors import AwsError, TrainRemoteError, UsageError
from ..paths import read_json_dict, write_json_atomic
from .progress import Progress, ProgressSubscriber
from .session import error_code
from .store_check import (
    PART_SIZE,
    StoreSync,
    VerifiedIndex,
    b64_sha256,
    file_checksum,
    head,
    list_store,
    upload_checksum,
)

MULTIPART_THRESHOLD = PART_SIZE
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


class FileChangedDuringUpload(TrainRemoteError):
    """A local file changed between hashing and the end of its upload."""


class ObjectIndex:
    """sha256 -> key of an object already uploaded to this bucket (local, per bucket). Entries
    are added as objects complete, from several threads. `verified` beside it: what this machine
    sent or checked, by size, ETag and checksum (aws/store_check.py)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._dirty = False
        self.entries = read_json_dict(path)
        self.verified = VerifiedIndex((path[:-5] if path.endswith(".json") else path) + ".verified.json")

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
        self.verified.save()


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
        self.verified = index.verified if index is not None else VerifiedIndex()
        self._checked = set()  # keys whose upload is followed by a HeadObject that records its checksum
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
        uploads, copies, puts, manifests, store_manifests = [], [], [], [], []
        for single in plan.singles():
            self._checked.add(single.key)
            if self._holds(single):
                self.report.files_present += 1
            else:
                uploads.append(single)
        for item in plan.prefix_inputs():
            if self._prefix_version_needs(item, uploads, copies, clock):
                manifests.append((item.manifest_key, item.manifest))
        stores = plan.store_inputs()
        sync = StoreSync(self, stores, MANIFEST_REFRESH_SECONDS) if stores else None
        if sync:
            more_uploads, puts, store_manifests = sync.needs(clock)
            self._checked.update(f.key for f in more_uploads)
            uploads += more_uploads
        self._transfer(uploads, copies)
        self._record_prefix_landings(plan, uploads, copies)
        self._put_all(puts)
        for key, body in manifests + store_manifests:  # only now is each version complete
            self._put_checked(key, body)
        if sync:
            sync.confirm(store_manifests)  # gc may have deleted what the new manifest names meanwhile
        for f in plan.singles():
            self._record(f)
        return self.report

    def _prefix_version_needs(self, item, uploads: list, copies: list, clock=None) -> bool:
        """A FastFile or sharded version (<prefix>/inputs/<hash>/): adds to `uploads`/`copies` what
        S3 does not hold with these bytes — an object of the right size is trusted only by this
        machine's record of its ETag, else by its SHA-256 checksum (one HeadObject), never by size
        alone — and says whether the version's manifest must be written: missing, or older than a
        day by S3's clock, so gc (which keeps what a recent manifest names) keeps a version in use."""
        dates = []
        manifest = list_store(self.s3, self.bucket, item.manifest_key, self.owner, dates).get(item.manifest_key)
        present = list_store(self.s3, self.bucket, item.prefix_key, self.owner, dates)
        for f in item.files:
            got = present.get(f.key)
            if got is not None and got.size == f.size and (self.verified.trusts(f.key, got.size, got.etag)
                                                           or self._holds(f)):
                self.report.files_present += 1
                self._record(f)
                continue
            source = self.index.get(f.sha256) if self.index else None
            if source and source != f.key:
                copies.append((f, source))
            else:
                uploads.append(f)
        if manifest is None:
            return True
        now = max([(clock or (lambda: datetime.datetime.now(datetime.timezone.utc)))(), *dates])
        return (now - manifest.modified).total_seconds() > MANIFEST_REFRESH_SECONDS

    def _record_prefix_landings(self, plan, uploads: list, copies: list) -> None:
        """What a FastFile or sharded version just received, recorded as verified so the next launch
        trusts it by its listed ETag (no HeadObject per file): a single PUT carried the file's
        SHA-256, which S3 checked; one listing per version reads the ETags. A multipart upload or a
        copy is checked by its own HeadObject (they are few)."""
        sent = {f.key for f in uploads} | {f.key for f, _ in copies}
        for item in plan.prefix_inputs():
            mine = [f for f in item.files if f.key in sent and f.key not in self._checked]
            if not mine:
                continue
            listing = list_store(self.s3, self.bucket, item.prefix_key, self.owner)
            copied = {f.key for f, _ in copies}
            for f in mine:
                got = listing.get(f.key)
                if f.size < PART_SIZE and f.key not in copied and got is not None and got.size == f.size:
                    self.verified.add(f.key, got.size, got.etag, b64_sha256(f.sha256))
                else:
                    self._landed(f)

    def _holds(self, f) -> bool:
        """Whether S3 holds this file's bytes under its key: its size and SHA-256 checksum (one
        HeadObject). One sent before checksums, or replaced by hand, is sent again."""
        got = head(self.s3, self.bucket, f.key, self.owner)
        if got is None or got.size != f.size or not got.checksum:
            return False
        if got.checksum != self.verified.checksum(f.key) and got.checksum != file_checksum(f.local, f.size, f.sha256):
            return False
        self.verified.add(f.key, got.size, got.etag, got.checksum)
        return True

    def _landed(self, f) -> bool:
        """After an upload (or a failure whose object may be complete after all: its reply was
        lost): whether the object holds the file, by size and, for one PUT, the sha256 S3 verified.
        Records its checksum (a multipart upload's composite is known only from S3)."""
        got = head(self.s3, self.bucket, f.key, self.owner)
        if got is None or got.size != f.size or not got.checksum:
            return False
        if f.size < PART_SIZE and got.checksum != b64_sha256(f.sha256):
            return False
        self.verified.add(f.key, got.size, got.etag, got.checksum)
        return True

    def _put_checked(self, key: str, body: bytes) -> None:
        """One PUT that S3 keeps only if its bytes have their SHA-256; a failure whose object landed
        after all (a lost reply) counts as done. Records the object's ETag and checksum."""
        import hashlib

        from botocore.exceptions import BotoCoreError, ClientError

        checksum = b64_sha256(hashlib.sha256(body).hexdigest())
        try:
            reply = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                                       ChecksumSHA256=checksum, **self.extra_args)
        except (ClientError, BotoCoreError):
            got = head(self.s3, self.bucket, key, self.owner)
            if got is None or got.size != len(body) or got.checksum != checksum:
                raise  # not a lost reply of a put that landed
            reply = {"ETag": got.etag}
        self.verified.add(key, len(body), reply.get("ETag", ""), checksum)

    def _put_all(self, puts) -> None:
        """Packs (read from their files now, refused if one changed since it was hashed) and trees,
        concurrently."""
        from ..plan.hashcache import FileChanged
        from ..plan.store import read_pack

        def put(item):
            key, obj = item
            try:
                body = obj.body if obj.kind == "tree" else read_pack(obj)  # each member checked by its sha256
            except FileChanged as err:
                raise FileChangedDuringUpload(f"{err} changed while it was uploaded; nothing was marked "
                                              "complete; launch again once it is written") from None
            self._put_checked(key, body)
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
                    extra = {**self.extra_args, **upload_checksum(f.sha256, f.size)}
                    return f, manager.upload(f.local, self.bucket, f.key, extra_args=extra,
                                             subscribers=[ProgressSubscriber(progress)])

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
        lost) counts as done. Then check the file did not change while it was sent (S3 refuses the
        bytes of a changed file sent in one PUT: that failure is reported as the change it is)."""
        try:
            future.result()
        except Exception:
            self._check_unchanged(f)
            if not self._landed(f):
                raise
        self._check_unchanged(f)
        if f.key in self._checked and not self._landed(f):
            raise AwsError(f"s3://{self.bucket}/{f.key} is gone or holds other bytes right after its upload "
                           "(another writer, or gc?); nothing was marked complete, run again to resume")
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
