"""aws-train-remote gc: delete the input versions this tool wrote that no recent or running job names.

Only keys of the shapes a launch writes are ever deleted (plan/store_keys.py), and a manifest only
when its bytes are the ones its name promises; anything else under the prefix is counted and left
alone. Kept: every manifest written within the cutoff (a launch writes a store manifest again when
it is older than a day by S3's clock, so a version in use is never older than that) and every
manifest or prefix a running training or tuning job, or a job waiting in an AWS Batch queue, reads,
in the bucket's own region; every object such a manifest names; every object newer than the cutoff
(a launch in flight uploads objects before it writes their manifest). A live manifest gc cannot
read keeps everything. Ages are S3's: the cutoff is taken from the Date of S3's reply to a listing
(or the LastModified of a marker gc writes), never from this machine's clock.

Deleted: the stale manifests first, then what they named, so an interruption never leaves a
manifest naming a missing object. The store's manifests are listed again before each batch of
objects, and a prefix version's manifest is looked up again before its files go: a launch that
writes or refreshes a manifest while gc runs keeps what it names.
"""
from __future__ import annotations

import datetime
import re
import uuid
from dataclasses import dataclass, field

from ..aws.s3 import MANIFEST_REFRESH_SECONDS, list_objects, object_exists
from ..errors import AwsError, UsageError
from ..plan import store_keys as shapes
from ..plan.store import store_root
from .gc_jobs import Protection, protection, queued_channels, read_object, running_channels

MAX_AGE_DAYS = 36500  # --older-than beyond a century is a typo (99999999999d overflowed datetime)
CLOCK_FOLDER = "gc-clock/"  # <prefix>/gc-clock/<uuid>: gc's own marker, written and deleted at once
BATCH = 1000  # DeleteObjects takes at most 1,000 keys


def check_cutoff(seconds: float, raw: str) -> None:
    if seconds < MANIFEST_REFRESH_SECONDS:
        raise UsageError("--older-than", raw, "shorter than a day: a version launched today may not have "
                         "refreshed its manifest yet", "use 1d or more (default: 30d)")
    if seconds > MAX_AGE_DAYS * 86400:
        raise UsageError("--older-than", raw, f"longer than {MAX_AGE_DAYS} days",
                         "use e.g. 30d or 365d")


def s3_now(s3, bucket: str, prefix: str, dry_run: bool = False) -> datetime.datetime:
    """S3's clock: the Date of a listing's reply (a --dry-run writes nothing, so read-only
    credentials can preview), else the LastModified of a marker gc writes and deletes at once.
    Objects are aged by the clock that stamped them, so a machine whose clock is days ahead
    deletes nothing young."""
    from ..aws.store_check import s3_date

    date = s3_date(s3.list_objects_v2(Bucket=bucket, Prefix=shapes.prefix_base(prefix) + CLOCK_FOLDER, MaxKeys=1))
    if date is not None or dry_run:
        if date is None:
            raise AwsError(f"s3://{bucket} sent no Date with its reply, so gc cannot read S3's clock without writing; "
                           "run gc without --dry-run (it writes and deletes one marker to read it)")
        return date
    key = f"{shapes.prefix_base(prefix)}{CLOCK_FOLDER}{uuid.uuid4().hex}"
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    try:
        return s3.head_object(Bucket=bucket, Key=key)["LastModified"]
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


@dataclass
class GcPlan:
    bucket: str
    prefix: str
    cutoff: datetime.datetime
    manifests: list = field(default_factory=list)  # store manifests to delete, before any object
    objects: dict = field(default_factory=dict)  # store object key -> size
    versions: dict = field(default_factory=dict)  # stale version manifest key -> {file key: size}
    seen: dict = field(default_factory=dict)  # store manifest key -> LastModified when gc read it
    kept_manifests: int = 0
    kept_objects: int = 0
    in_use: int = 0  # manifests kept only because a running job reads them
    foreign: int = 0  # keys not of the tool's shapes, left alone
    unrecorded: int = 0  # version files no manifest of the tool records (a launch in flight, or interrupted)
    held: str = None  # why nothing is deleted

    @property
    def keys(self) -> list:
        out = list(self.manifests)
        for key, files in sorted(self.versions.items()):
            out += [key, *sorted(files)]
        return out + sorted(self.objects)

    @property
    def counts(self) -> tuple:
        """(manifests, objects, bytes) to delete."""
        files = [size for files in self.versions.values() for size in files.values()]
        return (len(self.manifests) + len(self.versions), len(self.objects) + len(files),
                sum(self.objects.values()) + sum(files))


@dataclass
class Listing:
    """The keys gc may consider, key -> (size, LastModified): one listing each of <prefix>/store/,
    <prefix>/manifests/ and <prefix>/inputs/."""
    store: dict
    manifests: dict
    inputs: dict


def list_store(s3, bucket: str, prefix: str) -> Listing:
    base = shapes.prefix_base(prefix)
    return Listing(list_objects(s3, bucket, store_root(prefix)), list_objects(s3, bucket, base + "manifests/"),
                   list_objects(s3, bucket, base + "inputs/"))


def check_store_root(bucket: str, prefix: str, listing: Listing) -> None:
    """A --prefix ending in a folder of a store (store, objects, manifests, inputs, a version's
    hash) that holds no store of its own points inside one: refused before anything is written."""
    inner = shapes.inner_name(prefix)
    if not inner or shapes.holds_a_store(prefix, [*listing.store, *listing.inputs]):
        return
    parent = prefix.strip("/")
    while shapes.inner_name(parent):
        parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
    raise UsageError("--prefix", prefix, f"ends in {inner}/, a folder inside an input store, and "
                     f"s3://{bucket}/{shapes.prefix_base(prefix)} holds no store of its own",
                     f"pass the --sagemaker-prefix the launches used, e.g. --prefix '{parent}'")


def _read_store_manifest(s3, plan: GcPlan, key: str, digest: str):
    """(names, LastModified) of a store manifest; None when it is gone; raises UnreadableManifest."""
    got = read_object(s3, plan.bucket, key)
    if got is None:
        return None
    return shapes.read_store_manifest(got[0], digest, plan.bucket, plan.prefix), got[1]


def plan_gc(s3, bucket: str, prefix: str, cutoff, listing: Listing, guard: Protection) -> GcPlan:
    plan = GcPlan(bucket, prefix, cutoff, held=guard.everything)
    live_names = plan_store_manifests(plan, s3, listing, guard)
    for key, (size, modified) in listing.store.items():
        if shapes.store_object_digest(prefix, key):
            if key in live_names or modified >= cutoff or guard.covers(key):
                plan.kept_objects += 1
            else:
                plan.objects[key] = size
        elif not shapes.store_manifest_digest(prefix, key):
            plan.foreign += 1
    plan_prefix_versions(plan, s3, listing, guard)
    if plan.held:  # a live manifest gc cannot read might name anything: delete nothing
        plan.kept_manifests += len(plan.manifests) + len(plan.versions)
        plan.kept_objects += plan.counts[1]
        plan.manifests, plan.objects, plan.versions = [], {}, {}
    return plan


def plan_store_manifests(plan: GcPlan, s3, listing: Listing, guard: Protection) -> set:
    """Sorts the store's manifests into kept (recent, or read by a running job) and stale; returns
    the object keys the kept ones name. Each is read: a stale one goes only when it is the tool's."""
    live_names, where = set(), f"s3://{plan.bucket}/"
    for key, (_, modified) in sorted(listing.store.items()):
        digest = shapes.store_manifest_digest(plan.prefix, key)
        if not digest:
            continue
        plan.seen[key] = modified
        try:
            got = _read_store_manifest(s3, plan, key, digest)
        except shapes.UnreadableManifest as err:
            plan.foreign += 1  # not the tool's: never deleted
            if modified >= plan.cutoff or guard.covers(key):
                plan.held = plan.held or f"{where}{key} is recent or read by a running job but cannot be read: {err}"
            continue
        if got is None:
            continue
        modified = plan.seen[key] = max(modified, got[1])  # written again since the listing: it counts as new
        if modified >= plan.cutoff or guard.covers(key):
            plan.kept_manifests += 1
            plan.in_use += modified < plan.cutoff
            live_names |= got[0]
        else:
            plan.manifests.append(key)
    for key in guard.keys:
        if shapes.store_manifest_digest(plan.prefix, key) and key not in listing.store:
            plan.held = plan.held or f"a running job reads {where}{key}, which is gone: gc cannot tell what it needs"
    return live_names


def plan_prefix_versions(plan: GcPlan, s3, listing: Listing, guard: Protection) -> None:
    """FastFile and sharded inputs: a version is <prefix>/inputs/<hash>/ recorded by
    <prefix>/manifests/<hash>.json; a stale one goes with exactly the files its manifest records."""
    recorded = {}  # digest -> the version's manifest key, for every manifest of the tool's shape
    stale = {}  # digest -> the relative paths of a stale version
    for key, (_, modified) in sorted(listing.manifests.items()):
        digest = shapes.version_manifest_digest(plan.prefix, key)
        if not digest:
            plan.foreign += 1
            continue
        folder = shapes.version_folder(plan.prefix, digest)
        if modified >= plan.cutoff or guard.covers(key) or guard.covers_folder(folder):
            plan.kept_manifests += 1
            plan.in_use += modified < plan.cutoff
            recorded[digest] = key
            continue
        got = read_object(s3, plan.bucket, key)
        if got is None:
            continue
        try:
            paths = shapes.read_version_manifest(got[0], digest)
        except shapes.UnreadableManifest:
            plan.foreign += 1  # not the tool's: its folder's files count as no manifest's
            continue
        recorded[digest] = key
        if got[1] >= plan.cutoff:  # refreshed since the listing
            plan.kept_manifests += 1
            continue
        stale[digest] = paths
        plan.versions[key] = {}
    for key, (size, _) in listing.inputs.items():
        version = shapes.version_of(plan.prefix, key)
        if not version:
            plan.foreign += 1
        elif version[0] in stale:
            if stale[version[0]].get(version[1]) == size:
                plan.versions[recorded[version[0]]][key] = size
            else:
                plan.foreign += 1  # put into a version's folder, or written over, by hand
        elif version[0] in recorded:
            plan.kept_objects += 1
        else:
            plan.unrecorded += 1


def summary(plan: GcPlan, dry_run: bool) -> str:
    manifests, objects, size = plan.counts
    verb = "would delete" if dry_run else "deleting"
    text = (f"gc s3://{plan.bucket}/{shapes.prefix_base(plan.prefix)}: {verb} {manifests} manifests and {objects} "
            f"objects ({size / 1e6:.1f} MB) that nothing newer than {plan.cutoff:%Y-%m-%d %H:%M} UTC (S3's clock) "
            f"and no running job names; keeping {plan.kept_manifests} manifests ({plan.in_use} only because a "
            f"running job reads them) and {plan.kept_objects} objects; left alone {plan.foreign} keys this tool "
            "did not write")
    if plan.unrecorded:
        text += f" and {plan.unrecorded} files of versions no manifest records yet (a launch in flight)"
    if plan.held:
        text += f"\nkept everything: {plan.held}; fix or remove it, then run gc again"
    return text + "\n"


@dataclass
class Deleted:
    """What a gc run has deleted so far: what Ctrl-C reports."""
    manifests: int = 0
    objects: int = 0
    in_flight: int = 0  # keys of the DeleteObjects request under way
    orphan: str = None  # a version folder whose manifest went (or is going) but whose files have not yet
    orphan_gone: bool = False  # its manifest's DeleteObjects answered


def delete_keys(s3, bucket: str, keys: list, deleted: Deleted, kind: str) -> None:
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        deleted.in_flight = len(batch)
        reply = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        deleted.in_flight = 0
        errors = reply.get("Errors") or []
        setattr(deleted, kind, getattr(deleted, kind) + len(batch) - len(errors))
        if errors:
            first = errors[0]
            raise AwsError(f"gc: s3://{bucket}/{first['Key']} could not be deleted ({first.get('Code')}); check "
                           "the credentials may delete in this bucket, then run gc again (it is safe)")


def _fresh_names(s3, plan: GcPlan):
    """What the store's manifests name that gc has not seen yet (written or refreshed since it
    looked); a reason string when one cannot be read."""
    names = set()
    for key, (_, modified) in list_objects(s3, plan.bucket, store_root(plan.prefix) + "manifests/").items():
        digest = shapes.store_manifest_digest(plan.prefix, key)
        if not digest or (key in plan.seen and modified <= plan.seen[key]):
            continue
        try:
            got = _read_store_manifest(s3, plan, key, digest)
        except shapes.UnreadableManifest as err:
            return f"s3://{plan.bucket}/{key} appeared while gc ran and cannot be read: {err}"
        if got is not None:
            names |= got[0]
            plan.seen[key] = max(modified, got[1])
    return names


def _still_stale(s3, plan: GcPlan, at: str, keys) -> list:
    """The keys no launch has written again since gc read them (one listing of their folder)."""
    now = list_objects(s3, plan.bucket, at)
    return [k for k in keys if k in now and now[k][1] < plan.cutoff]


def execute(s3, plan: GcPlan, deleted: Deleted, out) -> None:
    """Manifests before what they name; a manifest written meanwhile keeps its names."""
    root = store_root(plan.prefix)
    delete_keys(s3, plan.bucket, _still_stale(s3, plan, root + "manifests/", plan.manifests), deleted, "manifests")
    versions = _still_stale(s3, plan, shapes.prefix_base(plan.prefix) + "manifests/", sorted(plan.versions))
    for key in versions:
        deleted.orphan, deleted.orphan_gone = key, False  # before the request: a Ctrl-C during it names the folder
        delete_keys(s3, plan.bucket, [key], deleted, "manifests")
        deleted.orphan_gone = True
        if not object_exists(s3, plan.bucket, key):  # not written again by a launch meanwhile
            delete_keys(s3, plan.bucket, sorted(plan.versions[key]), deleted, "objects")
        deleted.orphan = None
    doomed = sorted(plan.objects)
    for start in range(0, len(doomed), BATCH):
        names = _fresh_names(s3, plan)
        if isinstance(names, str):
            out.write(f"kept the remaining objects: {names}\n")
            return
        delete_keys(s3, plan.bucket, [k for k in doomed[start:start + BATCH] if k not in names], deleted, "objects")


def interrupted(plan: GcPlan, deleted: Deleted) -> str:
    text = f"\ngc interrupted: deleted {deleted.manifests} manifests and {deleted.objects} objects so far"
    if deleted.in_flight:
        text += f" (the {deleted.in_flight} keys of the request under way may be gone too)"
    text += ("; every manifest left names only objects that are still there, so running gc again is safe "
             "and finishes the rest")
    if deleted.orphan and plan is not None:
        digest = shapes.version_manifest_digest(plan.prefix, deleted.orphan)
        folder = shapes.version_folder(plan.prefix, digest)
        gone = "its manifest is gone" if deleted.orphan_gone else f"if s3://{plan.bucket}/{deleted.orphan} is gone"
        text += (f", except s3://{plan.bucket}/{folder}: {gone}, gc no longer takes its files for its own "
                 f"(aws s3 rm --recursive s3://{plan.bucket}/{folder} removes them)")
    return text + "\n"


def sweep_clock_markers(s3, bucket: str, prefix: str, now) -> None:
    """Markers a gc killed between writing and deleting its own left behind (older than an hour)."""
    at = shapes.prefix_base(prefix) + CLOCK_FOLDER
    old = [k for k, (_, modified) in list_objects(s3, bucket, at).items()
           if re.fullmatch(r"[0-9a-f]{32}", k[len(at):]) and (now - modified).total_seconds() > 3600]
    if old:
        delete_keys(s3, bucket, old, Deleted(), "objects")


def run_gc(s3, sm, bucket: str, prefix: str, older_than: float, dry_run: bool, out, clock=None, batch=None) -> int:
    """The cutoff is `older_than` seconds before S3's now; `clock` (this machine's, only for a note
    on its skew) defaults to the system clock; `batch` (a client in the bucket's region) finds the
    jobs waiting in AWS Batch queues. Ctrl-C says what was deleted, then propagates."""
    deleted, plan = Deleted(), None
    try:
        listing = list_store(s3, bucket, prefix)
        check_store_root(bucket, prefix, listing)
        now = s3_now(s3, bucket, prefix, dry_run)
        local = (clock or (lambda: datetime.datetime.now(datetime.timezone.utc)))()
        skew = (local - now).total_seconds()
        if abs(skew) > 300:
            out.write(f"note: this machine's clock is {abs(skew) / 3600:.1f} hours "
                      f"{'ahead of' if skew > 0 else 'behind'} S3's; gc ages objects by S3's clock\n")
        cutoff = now - datetime.timedelta(seconds=older_than)
        channels = running_channels(sm) + (queued_channels(batch, out) if batch is not None else [])
        plan = plan_gc(s3, bucket, prefix, cutoff, listing, protection(s3, bucket, prefix, channels))
        out.write(summary(plan, dry_run))
        if dry_run:
            for key in plan.keys:
                out.write(f"  {key}\n")
            return 0
        execute(s3, plan, deleted, out)
        sweep_clock_markers(s3, bucket, prefix, now)
    except KeyboardInterrupt:
        out.write(interrupted(plan, deleted))
        out.flush()
        raise
    out.write(f"deleted {deleted.manifests} manifests and {deleted.objects} objects\n")
    return 0
