"""aws-train-remote gc: delete what the input store holds that no recent or running job names.

Kept: every manifest written within the cutoff (a launch writes a version's manifest again
when it is older than a day, so a version in use is never older than that) and every manifest a
running training job or tuning job names; every object such a manifest names; every object newer
than the cutoff (a launch in flight uploads objects before it writes their manifest). Deleted:
the other manifests first, then the other objects, so an interruption never leaves a manifest
naming a missing object. Manifests that appear while gc runs are read before any object goes.
Prefix versions (FastFile, sharded inputs: <prefix>/inputs/<hash>/ with <prefix>/manifests/)
follow the same rule as a whole.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field

from ..aws.s3 import MANIFEST_REFRESH_SECONDS, list_objects
from ..contract import split_s3
from ..errors import UsageError
from ..plan.store import store_root

RUNNING = ("InProgress", "Stopping")


@dataclass
class GcPlan:
    bucket: str
    store: str  # <prefix>/store/
    manifests: list = field(default_factory=list)  # keys to delete, manifests first
    objects: dict = field(default_factory=dict)  # key -> size, to delete after them
    kept_manifests: int = 0
    kept_objects: int = 0
    in_use: int = 0  # manifests kept only because a running job names them
    listed: set = field(default_factory=set)  # the store's manifests when gc looked

    @property
    def keys(self) -> list:
        return list(self.manifests) + sorted(self.objects)


def check_cutoff(seconds: float, raw: str) -> None:
    if seconds < MANIFEST_REFRESH_SECONDS:
        raise UsageError("--older-than", raw, "shorter than a day: a version launched today may not have "
                         "refreshed its manifest yet", "use 1d or more (default: 30d)")


def _channel_uris(config) -> list:
    return [c["DataSource"]["S3DataSource"]["S3Uri"] for c in config or []
            if "S3DataSource" in c.get("DataSource", {})]


def running_uris(sm) -> set:
    """Every channel URI a running training job or tuning job reads."""
    uris = set()
    for status in RUNNING:
        for page in sm.get_paginator("list_training_jobs").paginate(StatusEquals=status):
            for job in page["TrainingJobSummaries"]:
                desc = sm.describe_training_job(TrainingJobName=job["TrainingJobName"])
                uris.update(_channel_uris(desc.get("InputDataConfig")))
    for status in RUNNING:
        for page in sm.get_paginator("list_hyper_parameter_tuning_jobs").paginate(StatusEquals=status):
            for job in page["HyperParameterTuningJobSummaries"]:
                desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job[
                    "HyperParameterTuningJobName"])
                definitions = [desc.get("TrainingJobDefinition")] + list(desc.get("TrainingJobDefinitions") or [])
                for definition in filter(None, definitions):
                    uris.update(_channel_uris(definition.get("InputDataConfig")))
    return uris


def _named_by(s3, bucket: str, key: str) -> set:
    """The object keys a store manifest names."""
    entries = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    base = split_s3(entries[0]["prefix"])[1]
    return {base + suffix for suffix in entries[1:]}


def plan_gc(s3, sm, bucket: str, prefix: str, cutoff: datetime.datetime) -> GcPlan:
    root = store_root(prefix)
    listing = list_objects(s3, bucket, root)
    manifests = {k: v for k, v in listing.items() if k.startswith(root + "manifests/")}
    objects = {k: v for k, v in listing.items() if k.startswith(root + "objects/")}
    in_use = {uri.split("/", 3)[3] for uri in running_uris(sm) if uri.startswith(f"s3://{bucket}/")}
    keep = {k for k, (_, modified) in manifests.items() if modified >= cutoff or k in in_use}
    live = set()
    for key in sorted(keep):
        live |= _named_by(s3, bucket, key)
    plan = GcPlan(bucket, root, sorted(set(manifests) - keep), {}, len(keep), 0,
                  sum(1 for k in keep if manifests[k][1] < cutoff), set(manifests))
    for key, (size, modified) in objects.items():
        if key in live or modified >= cutoff:
            plan.kept_objects += 1
        else:
            plan.objects[key] = size
    plan_prefix_versions(plan, s3, bucket, prefix, cutoff, in_use)
    return plan


def plan_prefix_versions(plan: GcPlan, s3, bucket: str, prefix: str, cutoff, in_use: set) -> None:
    """FastFile and sharded inputs: a version is <prefix>/inputs/<hash>/ and <prefix>/manifests/<hash>.json."""
    base = prefix.strip("/") + "/" if prefix.strip("/") else ""
    manifests_at = base + "manifests/"
    for key, (_, modified) in list_objects(s3, bucket, manifests_at).items():
        digest = key[len(manifests_at):].removesuffix(".json")
        folder = f"{base}inputs/{digest}/"
        if modified >= cutoff or folder in in_use:
            plan.kept_manifests += 1
            continue
        plan.manifests.append(key)
        for obj, (size, _) in list_objects(s3, bucket, folder).items():
            plan.objects[obj] = size


def delete_keys(s3, bucket: str, keys: list) -> None:
    for start in range(0, len(keys), 1000):
        batch = keys[start:start + 1000]
        reply = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        if reply.get("Errors"):
            first = reply["Errors"][0]
            raise UsageError("gc", f"s3://{bucket}/{first['Key']}", f"could not be deleted ({first.get('Code')})",
                             "check the credentials may delete in this bucket, then run gc again")


def run_gc(s3, sm, bucket: str, prefix: str, cutoff, dry_run: bool, out) -> int:
    plan = plan_gc(s3, sm, bucket, prefix, cutoff)
    size = sum(plan.objects.values())
    verb = "would delete" if dry_run else "deleting"
    out.write(f"gc s3://{bucket}/{plan.store}: {verb} {len(plan.manifests)} manifests and {len(plan.objects)} "
              f"objects ({size / 1e6:.1f} MB) that nothing newer than {cutoff:%Y-%m-%d %H:%M} UTC names; keeping "
              f"{plan.kept_manifests} manifests ({plan.in_use} only because a running job reads them) and "
              f"{plan.kept_objects} objects\n")
    if dry_run:
        for key in plan.keys:
            out.write(f"  {key}\n")
        return 0
    delete_keys(s3, bucket, plan.manifests)
    # a manifest written since the listing names objects that must stay
    fresh = set(list_objects(s3, bucket, plan.store + "manifests/")) - plan.listed
    keep = set()
    for key in fresh:
        keep |= _named_by(s3, bucket, key)
    doomed = sorted(k for k in plan.objects if k not in keep)
    delete_keys(s3, bucket, doomed)
    out.write(f"deleted {len(plan.manifests)} manifests and {len(doomed)} objects\n")
    return 0
