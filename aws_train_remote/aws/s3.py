"""Uploads of an UploadPlan: content-addressed, concurrent, never half-done.

An object that already exists (same content, same key) is not sent again; an input file
whose bytes were uploaded before under another input prefix is copied server-side; the
manifest of each input is written only after all its files, so an interrupted upload is
never taken as complete. One transfer manager serves all files.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import sys
import threading
import time
from dataclasses import dataclass

from ..errors import AwsError, UsageError
from .session import error_code

MULTIPART_THRESHOLD = 16 * 1024 * 1024


@dataclass
class UploadReport:
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


class ObjectIndex:
    """sha256 -> key of an object already uploaded to this bucket (local, per bucket)."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, encoding="utf-8") as fh:
                self.entries = json.load(fh)
        except (OSError, ValueError):
            self.entries = {}

    def get(self, sha: str):
        return self.entries.get(sha)

    def add(self, sha: str, key: str) -> None:
        self.entries[sha] = key

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.entries, fh)
        os.replace(tmp, self.path)



def object_exists(s3, bucket: str, key: str, owner: str = None) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key, **({"ExpectedBucketOwner": owner} if owner else {}))
        return True
    except ClientError as err:
        if error_code(err) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def ensure_bucket(s3, bucket: str, region: str, account: str, created_by_default: bool) -> None:
    """The bucket must exist and belong to this account; the default bucket is created if missing."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
        return
    except ClientError as err:
        code = error_code(err)
        if code in ("403", "AccessDenied"):
            raise UsageError("--sagemaker-bucket", bucket, "exists but is not owned by this account "
                             f"({account}) or is not readable", "pass a bucket of your own") from None
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
    if not created_by_default:
        raise UsageError("--sagemaker-bucket", bucket, "no such bucket", "create it, or drop the flag to "
                         "use sagemaker-<region>-<account>")
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
    def extra_args(self) -> dict:
        extra = {"ExpectedBucketOwner": self.owner} if self.owner else {}
        if self.kms_key:
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key)
        return extra

    def upload_plan(self, plan) -> UploadReport:
        """Upload what is missing; inputs' manifests last. Raises on failure, leaving no manifest."""
        uploads, copies, manifests = [], [], []
        if object_exists(self.s3, self.bucket, plan.code.key, self.owner):
            self.report.files_present += 1
        else:
            uploads.append(plan.code)
        if object_exists(self.s3, self.bucket, plan.driver.key, self.owner):
            self.report.files_present += 1
        else:
            uploads.append(plan.driver)
        for item in plan.inputs:
            if object_exists(self.s3, self.bucket, item.manifest_key, self.owner):
                self.report.files_present += len(item.files)
                continue
            for f in item.files:
                source = self.index.get(f.sha256) if self.index else None
                if source and source != f.key:
                    copies.append((f, source))
                else:
                    uploads.append(f)
            manifests.append((item.manifest_key, item.manifest))
        self._transfer(uploads, copies)
        for key, body in manifests:  # only now is each prefix complete
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **self.extra_args)
        if self.index:
            for f in plan.all_files():
                self.index.add(f.sha256, f.key)
        return self.report

    def _transfer(self, uploads, copies) -> None:
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        progress = Progress(sum(f.size for f in uploads), self.progress_stream)
        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD,
                                max_concurrency=self.max_concurrency, use_threads=True)
        try:
            with create_transfer_manager(self.s3, config) as manager:
                futures = [(f, manager.upload(f.local, self.bucket, f.key, extra_args=self.extra_args or None,
                                              subscribers=[_ProgressSubscriber(progress)])) for f in uploads]
                copied = self._copy_all(copies)
                for f, future in futures:
                    future.result()
                    self._count_upload(f)
                for f in copied:  # copies whose source had vanished: upload after all
                    manager.upload(f.local, self.bucket, f.key, extra_args=self.extra_args or None,
                                   subscribers=[_ProgressSubscriber(progress)]).result()
                    self._count_upload(f)
        except Exception as err:  # noqa: BLE001 - one message for any transfer failure (not Ctrl-C)
            raise AwsError(f"upload to s3://{self.bucket} failed: {err}; nothing was marked complete, "
                           "run again to resume") from None
        finally:
            progress.close()

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
                    return f
                raise
            with self._lock:
                self.report.files_copied += 1
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
    from ..spec.values import is_s3_uri, split_s3_uri

    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
    count = 0
    if is_s3_uri(source):
        src_bucket, src_prefix = split_s3_uri(source)
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
