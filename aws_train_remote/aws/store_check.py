"""The input store in S3 checked by content: what a launch may trust, what it sends again.

Every object of the store is named by a sha256 (plan/store.py) and every upload carries S3's
SHA-256 checksum, which S3 verifies before it keeps the bytes (aws/s3.py). A launch:

- lists the store once (ListObjectsV2 gives each key's size, ETag and whether S3 holds a SHA-256
  checksum). An object whose size and ETag are the ones this machine recorded when it sent or
  checked it is trusted with no other call: other bytes get another ETag (the MD5 of the bytes, or
  under SSE-KMS a new value per upload);
- checks any other object of the right size with one HeadObject (ChecksumMode=ENABLED): its
  checksum must be the one its name fixes. A large file's or a tree's is its own sha256; a pack's
  is the sha256 of its members' bytes, and a file sent in parts has S3's composite of the parts'
  sha256s (both read from the local files when this machine has no record: a new machine pays one
  read). An object with another checksum, or none (sent by hand, or by a version before this
  check), is sent again. A manifest is checked the same way against its name and written again;
- after it wrote a manifest, and before the job is created, checks that every object that manifest
  names is still there (gc may delete an object nothing fresh named between the listing and the
  manifest's write): one listing or one HeadObject per object, whichever needs fewer calls, and
  what is missing is sent again (docs/guide/input-store.md says what window is left).
"""
from __future__ import annotations

import base64
import concurrent.futures
import datetime
import hashlib
import sys
import threading
from typing import NamedTuple

from ..errors import AwsError
from ..paths import read_json_dict, write_json_atomic

PART_SIZE = 16 * 1024 * 1024  # the transfer manager's threshold and part size (aws/s3.py)
CONFIRM_ROUNDS = 3  # re-sends after the manifest before the launch gives up (gc deleting in a loop)
LIST_PAGE = 1000  # keys per ListObjectsV2 call


class Listed(NamedTuple):
    size: int
    etag: str
    modified: object  # datetime, S3's clock
    sha256: bool  # whether S3 holds a SHA-256 checksum of it


class Head(NamedTuple):
    size: int
    etag: str
    checksum: str  # S3's ChecksumSHA256 in base64 (a composite without the "-<parts>" S3 may append), or None


def b64_sha256(hexdigest: str) -> str:
    """A sha256 as S3 writes its checksums: base64 of the 32 bytes."""
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def upload_checksum(sha_hex: str, size: int) -> dict:
    """The checksum arguments of one upload. One PUT carries the sha256 we know, so S3 refuses
    bytes that are not those we hashed. A multipart upload cannot carry a full-object SHA-256 (S3
    takes full-object checksums of multipart uploads for the CRC algorithms only): each part
    carries the SHA-256 of the bytes sent, and S3 keeps their composite."""
    if size >= PART_SIZE:
        return {"ChecksumAlgorithm": "SHA256"}
    return {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": b64_sha256(sha_hex)}


def part_size(size: int) -> int:
    """The part size the transfer manager uses for a file of `size` bytes (it grows the part past
    PART_SIZE for files of more than 10,000 parts)."""
    from s3transfer.utils import ChunksizeAdjuster

    return ChunksizeAdjuster().adjust_chunksize(PART_SIZE, size)


def file_checksum(path: str, size: int, sha_hex: str) -> str:
    """The SHA-256 checksum S3 holds for this file as aws/s3.py sends it: its sha256 (one PUT), or
    the composite of its parts' sha256s, the sha256 of their digests in order (read from the file)."""
    if size < PART_SIZE:
        return b64_sha256(sha_hex)
    chunk, digests = part_size(size), []
    with open(path, "rb") as fh:
        while True:
            data = fh.read(chunk)
            if not data:
                break
            digests.append(hashlib.sha256(data).digest())
    return base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()


def object_checksum(obj) -> str:
    """The checksum S3 holds for a StoreObject sent by this version (a pack is read from its files)."""
    from ..plan.store import read_pack

    if obj.kind == "pack":
        return b64_sha256(hashlib.sha256(read_pack(obj)).hexdigest())
    if obj.kind == "file":
        member = obj.members[0]
        return file_checksum(member.local, member.size, member.sha256)
    return b64_sha256(obj.sha256)


def expected_checksum(obj) -> str:
    """object_checksum, or one line naming the local file that changed since it was hashed."""
    from ..plan.hashcache import FileChanged
    from .s3 import FileChangedDuringUpload

    try:
        return object_checksum(obj)
    except FileChanged as err:
        changed = str(err)
    except OSError as err:
        changed = err.filename or obj.members[0].local
    raise FileChangedDuringUpload(f"{changed} changed since it was hashed; nothing was marked complete; launch "
                                  "again once it is written")


def s3_date(reply: dict):
    """S3's clock: the Date header of one of its replies (a datetime in UTC), None without one."""
    import email.utils

    date = ((reply.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).get("date")
    try:
        return email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None


def list_store(s3, bucket: str, prefix: str, owner: str = None, dates: list = None) -> dict:
    """key -> Listed of every object under `prefix`: one call per 1,000 objects. `dates` collects
    S3's clock from each reply."""
    found = {}
    kwargs = {"Bucket": bucket, "Prefix": prefix, **({"ExpectedBucketOwner": owner} if owner else {})}
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        date = s3_date(page) if dates is not None else None
        if date:
            dates.append(date)
        for obj in page.get("Contents", []):
            found[obj["Key"]] = Listed(obj["Size"], obj.get("ETag", ""), obj["LastModified"],
                                       "SHA256" in (obj.get("ChecksumAlgorithm") or []))
    return found


def head(s3, bucket: str, key: str, owner: str = None):
    """The object's Head (size, ETag, SHA-256 checksum), or None when there is no such object."""
    from botocore.exceptions import ClientError

    from .session import error_code

    try:
        reply = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED",
                               **({"ExpectedBucketOwner": owner} if owner else {}))
    except ClientError as err:
        if error_code(err) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    checksum = reply.get("ChecksumSHA256")
    return Head(reply["ContentLength"], reply.get("ETag", ""), checksum.split("-", 1)[0] if checksum else None)


class VerifiedIndex:
    """key -> [size, ETag, SHA-256 checksum] of the objects this machine sent or checked (local,
    per bucket, beside the object index). Entries are added from several threads."""

    def __init__(self, path: str = None):
        self.path = path
        self._lock = threading.Lock()
        self._dirty = False
        self.entries = {k: v for k, v in (read_json_dict(path) if path else {}).items()
                        if isinstance(v, list) and len(v) == 3}

    def trusts(self, key: str, size: int, etag: str) -> bool:
        entry = self.entries.get(key)
        return bool(entry and etag and entry[0] == size and entry[1] == etag)

    def checksum(self, key: str):
        entry = self.entries.get(key)
        return entry[2] if entry else None

    def add(self, key: str, size: int, etag: str, checksum: str) -> None:
        with self._lock:
            if self.entries.get(key) != [size, etag, checksum]:
                self.entries[key] = [size, etag, checksum]
                self._dirty = True

    def save(self) -> None:
        with self._lock:
            if self._dirty and self.path:
                write_json_atomic(self.path, self.entries)
                self._dirty = False


class StoreSync:
    """What an Uploader (aws/s3.py) must send for the store inputs of a plan, and the check after
    their manifests are written."""

    def __init__(self, uploader, stores, refresh_seconds: float):
        self.up = uploader
        self.stores = stores
        self.refresh = refresh_seconds
        self.listed = 0  # how many keys the store held at the launch's listing
        self.replaced = []  # keys that held other bytes than their name (or no checksum)

    def needs(self, clock=None) -> tuple:
        """One listing (plus a HeadObject per object this machine cannot trust by its record): the
        large files to send (as PlannedFile), the packs and trees to put, the manifests to write."""
        from ..plan.store import store_root

        up = self.up
        dates = []  # S3's clock: a clock days behind took a manifest gc finds stale for a fresh one
        listing = list_store(up.s3, up.bucket, store_root(self.stores[0].prefix), up.owner, dates)
        # the later of the two clocks: a manifest old by either is written again (a spare PUT at worst)
        now = max([(clock or (lambda: datetime.datetime.now(datetime.timezone.utc)))(), *dates])
        self.listed = len(listing)
        sends, manifests, to_check, seen = [], [], [], set()
        for item in self.stores:
            for obj in item.unique_objects():
                key = item.object_key(obj.sha256)
                if key not in seen:
                    seen.add(key)
                    verdict = self._judge(key, obj.size, listing.get(key))
                    if verdict == "check":
                        to_check.append((key, obj.size, obj))
                    elif verdict == "send":
                        sends.append((key, obj))
                    else:
                        up.report.files_present += 1
            key, body = item.manifest_key(up.bucket), item.manifest(up.bucket)
            there = listing.get(key)
            if there is not None and (now - there.modified).total_seconds() > self.refresh:
                manifests.append((key, body))  # refreshed, so gc takes it for a version in use
                continue
            verdict = self._judge(key, len(body), there)
            if verdict == "check":
                to_check.append((key, len(body), body))
            elif verdict == "send":
                manifests.append((key, body))
        for (key, size, what), good in zip(to_check, self._check_all(to_check)):
            if isinstance(what, bytes):
                if not good:
                    manifests.append((key, what))
            elif good:
                up.report.files_present += 1
            else:
                sends.append((key, what))
        self._note_replaced()
        uploads, puts = split_sends(sends)
        return uploads, puts, manifests

    def _judge(self, key: str, size: int, there) -> str:
        """"send" (missing, another size, no SHA-256 checksum), "trust" (this machine's record) or "check"."""
        if there is None:
            return "send"
        if there.size != size:  # S3 never keeps part of an upload: these are other bytes
            self.replaced.append(key)
            return "send"
        if self.up.verified.trusts(key, there.size, there.etag):
            return "trust"
        if not there.sha256:
            self.replaced.append(key)
            return "send"
        return "check"

    def _check_all(self, items) -> list:
        """Whether each (key, size, StoreObject or manifest bytes) holds the checksum its name fixes;
        records the ones that do."""
        up = self.up

        def check(item):
            key, size, what = item
            got = head(up.s3, up.bucket, key, up.owner)
            if got is None or got.size != size or not got.checksum:
                return False
            expected = up.verified.checksum(key)
            if got.checksum != expected:
                expected = b64_sha256(hashlib.sha256(what).hexdigest()) if isinstance(what, bytes) else \
                    expected_checksum(what)
            if got.checksum != expected:
                self.replaced.append(key)
                return False
            up.verified.add(key, got.size, got.etag, got.checksum)
            return True

        return self._each(check, items)

    def _each(self, check, items) -> list:
        """check(item) for every item, on the uploader's threads; results in order."""
        if not items:
            return []
        with concurrent.futures.ThreadPoolExecutor(min(self.up.max_concurrency, len(items))) as pool:
            return list(pool.map(check, items))

    def _note_replaced(self) -> None:
        if self.replaced:
            count = len(self.replaced)
            what = f"{count} objects of the input store in s3://{self.up.bucket} held other bytes than their names " \
                "say" if count > 1 else f"1 object of the input store in s3://{self.up.bucket} held other bytes " \
                "than its name says"
            print(f"note: {what}, or no SHA-256 checksum (written by hand, or by an older version; first: "
                  f"{sorted(self.replaced)[0]}); sending again", file=self.up.progress_stream or sys.stderr)

    def confirm(self, written: list) -> None:
        """After the manifests in `written` [(key, body)], before the job exists: every object they
        name is there (re-sent when gc deleted it meanwhile), and so are they."""
        if not written:
            return
        up, keys = self.up, {key for key, _ in written}
        named = {}
        for item in self.stores:
            if item.manifest_key(up.bucket) in keys:
                for obj in item.unique_objects():
                    named[item.object_key(obj.sha256)] = obj
        manifests = dict(written)
        for attempt in range(CONFIRM_ROUNDS + 1):
            lost = self._lost(named, manifests)
            if not lost:
                return
            if attempt == CONFIRM_ROUNDS:
                break
            print(f"note: {len(lost)} object{'s' if len(lost) > 1 else ''} of this launch's inputs went missing from "
                  f"s3://{up.bucket} after the listing (gc?); sending again", file=up.progress_stream or sys.stderr)
            uploads, puts = split_sends([(key, named[key]) for key in lost if key in named])
            up._checked.update(f.key for f in uploads)
            up._transfer(uploads, [])
            up._put_all(puts)
            for key in lost:
                if key in manifests:
                    up._put_checked(key, manifests[key])
        raise AwsError(f"objects of this launch's inputs keep disappearing from s3://{up.bucket} (first: {lost[0]}); "
                       "is `aws-train-remote gc` running with a short --older-than? No job was created; launch "
                       "again once it has finished")

    def _lost(self, named: dict, manifests: dict) -> list:
        """The keys of `named` objects and `manifests` that are missing or no longer hold what this
        launch recorded: by one listing or one HeadObject each, whichever costs fewer calls."""
        from ..plan.store import store_root

        up = self.up
        wanted = {**{k: o.size for k, o in named.items()}, **{k: len(b) for k, b in manifests.items()}}
        pages = max(1, -(-(self.listed + len(wanted)) // LIST_PAGE))
        if pages <= len(wanted):
            listing = list_store(up.s3, up.bucket, store_root(self.stores[0].prefix), up.owner)
            doubtful = [(k, size, None) for k, size in wanted.items()
                        if k in listing and listing[k].size == size
                        and not up.verified.trusts(k, size, listing[k].etag)]
            lost = [k for k, size in wanted.items() if k not in listing or listing[k].size != size]
        else:
            doubtful, lost = [(k, size, None) for k, size in wanted.items()], []
        # an ETag this launch did not record: the object was written again meanwhile; its checksum decides
        for (key, size, _), good in zip(doubtful, self._recheck(doubtful)):
            if not good:
                lost.append(key)
        return sorted(lost)

    def _recheck(self, items) -> list:
        up = self.up

        def check(item):
            key, size, _ = item
            got = head(up.s3, up.bucket, key, up.owner)
            ok = got is not None and got.size == size and got.checksum and got.checksum == up.verified.checksum(key)
            if ok:
                up.verified.add(key, got.size, got.etag, got.checksum)
            return bool(ok)

        return self._each(check, items)


def split_sends(sends) -> tuple:
    """[(key, StoreObject)] -> (large files as PlannedFile for the transfer manager, [(key, pack or tree)] to put)."""
    from ..plan.uploads import PlannedFile

    uploads, puts = [], []
    for key, obj in sends:
        if obj.kind == "file":
            m = obj.members[0]
            uploads.append(PlannedFile(m.local, m.relpath, m.size, m.sha256, key, m.stamp))
        else:
            puts.append((key, obj))
    return uploads, puts
