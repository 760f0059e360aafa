"""Job management behind the aws-train-remote command: list, status, logs, stop, download."""
from __future__ import annotations

from ..aws.jobs import summary_lines
from ..aws.session import error_code
from ..errors import AwsError, UsageError


def describe(sm, job: str) -> dict:
    from botocore.exceptions import ClientError

    try:
        return sm.describe_training_job(TrainingJobName=job)
    except ClientError as err:
        if error_code(err) in ("ValidationException", "ResourceNotFound"):
            raise UsageError("JOB", job, "no such training job in this account and region",
                             "check the name with `aws-train-remote list` and --region") from None
        raise AwsError(f"DescribeTrainingJob failed: {err}") from None


def list_jobs(sm, limit: int = 20, name_contains: str = None, status: str = None) -> list:
    """The newest `limit` jobs, newest first (the paginator follows tokens; filters may thin pages)."""
    kwargs = {"SortBy": "CreationTime", "SortOrder": "Descending"}
    if name_contains:
        kwargs["NameContains"] = name_contains
    if status:
        kwargs["StatusEquals"] = status
    jobs = []
    for page in sm.get_paginator("list_training_jobs").paginate(**kwargs):
        jobs += page.get("TrainingJobSummaries", [])
        if len(jobs) >= limit:
            break
    jobs.sort(key=lambda j: j["CreationTime"], reverse=True)
    return jobs[:limit]


def format_job_rows(jobs) -> list:
    rows = []
    for job in jobs:
        created = job["CreationTime"].strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{created}  {job['TrainingJobStatus']:<10}  {job['TrainingJobName']}")
    return rows


def status_lines(sm, job: str) -> list:
    desc = describe(sm, job)
    lines = summary_lines(desc, full_reason=True)
    lines.insert(1, f"secondary status: {desc.get('SecondaryStatus')}")
    resources = desc.get("ResourceConfig") or {}
    lines.insert(2, f"instances: {resources.get('InstanceCount')} x {resources.get('InstanceType')}")
    return lines


def stop_job(sm, job: str) -> str:
    from botocore.exceptions import ClientError

    desc = describe(sm, job)
    if desc["TrainingJobStatus"] != "InProgress":
        return f"{job} is already {desc['TrainingJobStatus']}"
    try:
        sm.stop_training_job(TrainingJobName=job)
    except ClientError as err:
        raise AwsError(f"StopTrainingJob failed: {err}") from None
    return f"stopping {job}"
