"""What running jobs read from a bucket, found where they can run: what gc must never delete.

SageMaker reads S3 only in the job's own region, so the jobs that can read a bucket are listed in
the bucket's region (GetBucketLocation), whatever --region says. A running training job's, tuning
job's or queued AWS Batch service job's channel protects its S3Prefix (every key under it) or its
manifest and what that names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..plan import store_keys as shapes

RUNNING = ("InProgress", "Stopping")


def bucket_region(s3, bucket: str) -> str:
    """Where the bucket lives: the only region whose jobs can read it (SageMaker reads S3 in its own
    region). GetBucketLocation says None for us-east-1 and EU for the oldest eu-west-1 buckets."""
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)


def client_in(session, service: str, region: str):
    """The session's client for `service`, in `region` (the session's own when they agree)."""
    if region == session.region_name:
        return session.client(service)
    from botocore.config import Config

    config = Config(retries={"mode": session.retry_mode, "total_max_attempts": session.max_attempts},
                    connect_timeout=10, read_timeout=60)
    return session.boto.client(service, region_name=region, config=config)


@dataclass
class Protection:
    """What running jobs read in this bucket: exact keys (their manifests and what those name) and
    prefixes (S3Prefix channels: every key under them)."""
    keys: set = field(default_factory=set)
    prefixes: set = field(default_factory=set)
    everything: str = None  # why no key may go: a job reads a manifest gc cannot read

    def covers(self, key: str) -> bool:
        return key in self.keys or any(key.startswith(p) for p in self.prefixes)

    def covers_folder(self, folder: str) -> bool:
        return (any(folder.startswith(p) or p.startswith(folder) for p in self.prefixes)
                or any(k.startswith(folder) for k in self.keys))


def _channels(config, job: str) -> list:
    return [(c["DataSource"]["S3DataSource"]["S3Uri"], c["DataSource"]["S3DataSource"].get("S3DataType"), job)
            for c in config or [] if "S3DataSource" in c.get("DataSource", {})]


def running_channels(sm) -> list:
    """(S3 URI, S3DataType, job) of every channel a running training job or tuning job reads."""
    found = []
    for status in RUNNING:
        for page in sm.get_paginator("list_training_jobs").paginate(StatusEquals=status):
            for job in page["TrainingJobSummaries"]:
                name = job["TrainingJobName"]
                found += _channels(sm.describe_training_job(TrainingJobName=name).get("InputDataConfig"), name)
        for page in sm.get_paginator("list_hyper_parameter_tuning_jobs").paginate(StatusEquals=status):
            for job in page["HyperParameterTuningJobSummaries"]:
                name = job["HyperParameterTuningJobName"]
                desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
                for definition in filter(None, [desc.get("TrainingJobDefinition"),
                                                *(desc.get("TrainingJobDefinitions") or [])]):
                    found += _channels(definition.get("InputDataConfig"), name)
    return found


QUEUED = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING")


def queued_channels(batch, out=None) -> list:
    """(S3 URI, S3DataType, job) of every channel a service job waiting or running in an AWS Batch
    queue for SageMaker training reads (its CreateTrainingJob request, serviceRequestPayload): a
    queued job has no training job yet, and may wait for days. Credentials that may not read Batch
    are said in a note: such an account queues no jobs it could see."""
    import json

    from botocore.exceptions import ClientError

    from ..aws.session import error_code

    found = []
    try:
        for page in batch.get_paginator("describe_job_queues").paginate():
            for queue in page.get("jobQueues", []):
                if queue.get("jobQueueType") != "SAGEMAKER_TRAINING":
                    continue
                for status in QUEUED:
                    for listed in batch.get_paginator("list_service_jobs").paginate(
                            jobQueue=queue["jobQueueArn"], jobStatus=status):
                        for job in listed.get("jobSummaryList", []):
                            desc = batch.describe_service_job(jobId=job["jobId"])
                            try:
                                request = json.loads(desc.get("serviceRequestPayload") or "{}")
                            except ValueError:
                                continue
                            found += _channels(request.get("InputDataConfig"), f"{job['jobName']} (queued)")
    except ClientError as err:
        if not error_code(err).startswith(("AccessDenied", "UnauthorizedOperation")):
            raise
        if out is not None:
            out.write(f"note: these credentials may not list AWS Batch queues ({error_code(err)}); the inputs of "
                      "a job waiting in one are not seen\n")
    return found


def read_object(s3, bucket: str, key: str):
    """(bytes, LastModified) of an object, None when it is gone."""
    from botocore.exceptions import ClientError

    from ..aws.session import error_code

    try:
        reply = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if error_code(err) in ("NoSuchKey", "404"):
            return None
        raise
    return reply["Body"].read(), reply["LastModified"]


def protection(s3, bucket: str, prefix: str, channels) -> Protection:
    """What the running jobs' channels in this bucket hold. A manifest of this store is read with
    the store's own (plan_gc); another manifest is read here: a ManifestFile's prefix and entries,
    else every s3://<bucket>/ URI it mentions, taken as a prefix."""
    found, mine = Protection(), f"s3://{bucket}/"
    for uri, data_type, job in channels:
        if not uri.startswith(mine):
            continue
        key = uri[len(mine):]
        if data_type == "S3Prefix":
            found.prefixes.add(key)
            continue
        found.keys.add(key)
        if shapes.store_manifest_digest(prefix, key):
            continue
        try:
            got = read_object(s3, bucket, key)
        except Exception as err:  # noqa: BLE001 - an unreadable manifest keeps everything, whatever the cause
            found.everything = f"running job {job} reads s3://{bucket}/{key}, which gc cannot read ({err})"
            continue
        if got is not None:
            _add_foreign_manifest(found, got[0], bucket)
    return found


def _add_foreign_manifest(found: Protection, body: bytes, bucket: str) -> None:
    import json

    mine = f"s3://{bucket}/"
    try:
        entries = json.loads(body)
        base = entries[0]["prefix"]
        names = [e for e in entries[1:] if isinstance(e, str)]
        if not isinstance(base, str):
            raise TypeError
    except (ValueError, TypeError, KeyError, IndexError):
        text = body.decode("utf-8", "replace")
        found.prefixes.update(m for m in re.findall(re.escape(mine) + r"([^\s\"'\\]*)", text))
        return
    if base.startswith(mine):
        found.keys.update(base[len(mine):] + name for name in names)
