"""Job management behind the aws-train-remote command: list, status, logs, stop, download."""
from __future__ import annotations

import datetime
import re
import sys

from ..aws.jobs import TERMINAL, summary_lines
from ..aws.session import error_code
from ..errors import AwsError, UsageError

_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:([a-z0-9-]+):\d{12}:training-job/(.+)$")


def resolve_job(job, environ):
    """(name, region or None) for a job name, a training-job ARN, or `last`/nothing: the newest
    job launched from this folder (against this endpoint)."""
    from ..launches import last_launch
    from ..spec.naming import is_valid_job_name

    if job in (None, "", "last"):
        found = last_launch(environ)
        if found is None:
            raise UsageError("JOB", job or None, "no job has been launched from this folder",
                             "pass a job name or ARN (aws-train-remote list shows them)")
        return found
    match = _ARN.match(job)
    if match:
        return match.group(2), match.group(1)
    if not is_valid_job_name(job):
        raise UsageError("JOB", job, "not a training job name or ARN",
                         "pass a name such as demo-20261123-101500-a1b2c3, an ARN, or last")
    return job, None


def describe(sm, job: str) -> dict:
    from botocore.exceptions import ClientError

    try:
        return sm.describe_training_job(TrainingJobName=job)
    except ClientError as err:
        if error_code(err) in ("ValidationException", "ResourceNotFound"):
            raise UsageError("JOB", job, "no such training job in this account and region",
                             "check the name with `aws-train-remote list` and --region") from None
        raise AwsError(f"DescribeTrainingJob failed: {err}") from None


def list_jobs(sm, limit: int = 20, name_contains: str = None, status: str = None, since=None) -> list:
    """The newest `limit` jobs (0: all), newest first, following every page; `since`: a datetime."""
    kwargs = {"SortBy": "CreationTime", "SortOrder": "Descending", "PaginationConfig": {"PageSize": 100}}
    if name_contains:
        kwargs["NameContains"] = name_contains
    if status:
        kwargs["StatusEquals"] = status
    if since is not None:
        kwargs["CreationTimeAfter"] = since
    jobs = []
    for page in sm.get_paginator("list_training_jobs").paginate(**kwargs):
        jobs += page.get("TrainingJobSummaries", [])
        if limit and len(jobs) >= limit:
            break
    jobs.sort(key=lambda j: j["CreationTime"], reverse=True)
    return jobs[:limit] if limit else jobs


def format_job_rows(jobs) -> list:
    rows = [f"{'CREATED (UTC)':<19}  {'STATUS':<10}  {'ENDED (UTC)':<19}  NAME"]
    for job in jobs:
        created = job["CreationTime"].astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        ended = job.get("TrainingEndTime") if job["TrainingJobStatus"] in TERMINAL else None
        ended = ended.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ended else "-"
        rows.append(f"{created:<19}  {job['TrainingJobStatus']:<10}  {ended:<19}  {job['TrainingJobName']}")
    return rows



def status_lines(sm, job: str):
    """(lines for people, the description)."""
    desc = describe(sm, job)
    lines = summary_lines(desc, full_reason=True)
    lines.insert(1, f"secondary status: {desc.get('SecondaryStatus')}")
    resources = desc.get("ResourceConfig") or {}
    lines.insert(2, "instances: " + (", ".join(f"{g['InstanceGroupName']} {g['InstanceCount']} x {g['InstanceType']}"
                                               for g in resources["InstanceGroups"])
                                     if resources.get("InstanceGroups") else
                                     f"{resources.get('InstanceCount')} x {resources.get('InstanceType')}"))
    return lines, desc


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


def _age(flag: str, raw):
    """--since AGE as the datetime that long ago (UTC)."""
    from ..spec.values import parse_duration

    if raw is None:
        return None
    try:
        seconds = parse_duration(raw)
    except ValueError as err:
        raise UsageError(flag, raw, str(err), "e.g. --since 10m or --since 2d") from None
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)


def _print_json(data) -> None:
    import json

    print(json.dumps(data, indent=2, sort_keys=False))


def cmd_list(session, args) -> int:
    from ..aws.jobs import summary_record

    if args.limit < 0:
        raise UsageError("--limit", args.limit, "must be 0 (all) or more", "e.g. --limit 50")
    jobs = list_jobs(session.client("sagemaker"), args.limit, args.name_contains, args.status,
                     _age("--since", args.since))
    if args.json:
        _print_json([summary_record(j) for j in jobs])
    else:
        print("\n".join(format_job_rows(jobs)))
    return 0


def cmd_status(session, job: str, as_json: bool) -> int:
    from ..aws.jobs import exit_status, job_record

    sm = session.client("sagemaker")
    if as_json:
        desc = describe(sm, job)
        _print_json(job_record(desc))
    else:
        lines, desc = status_lines(sm, job)
        print("\n".join(lines))
    return exit_status(desc["TrainingJobStatus"])


def cmd_logs(session, job: str, region: str, args) -> int:
    import json

    from ..aws.logs import LogTail, last_lines
    from .follow import Printer

    if args.tail is not None and args.tail < 0:
        raise UsageError("--tail", args.tail, "must be 0 or more", "e.g. --tail 100")
    since = _age("--since", args.since)
    start = int(since.timestamp() * 1000) if since else None
    describe(session.client("sagemaker"), job)
    logs = session.client("logs")

    class JsonPrinter(Printer):
        def log(self, line):
            self.out.write(json.dumps({"timestamp": line.timestamp, "instance": line.host,
                                       "message": line.message.rstrip("\n")}) + "\n")

        def info(self, text):  # status lines are for people; --json prints log lines only
            pass

    printer = JsonPrinter() if args.json else Printer()

    def show(lines):
        for line in lines:
            printer.log(line)
        printer.flush()

    if args.follow:
        from ..aws.jobs import exit_status
        from .sagemaker import follow_job

        tail = LogTail(logs, job, start_time=start, hosts=args.instance, keep_last=args.tail)
        return exit_status(follow_job(session, job, region, tail=tail, printer=printer)["TrainingJobStatus"])
    if args.tail is not None:
        show(last_lines(logs, job, args.tail, start_time=start, hosts=args.instance))
    else:
        show(LogTail(logs, job, start_time=start, hosts=args.instance).poll())
    return 0


def cmd_download(session, job: str, dest: str, as_json: bool) -> int:
    from ..aws.jobs import plural
    from .sagemaker import download_model

    sm = session.client("sagemaker")
    try:
        desc = describe(sm, job)
    except UsageError:
        best = best_of_tuning(sm, job)  # a tuning job's name: its best trial's model
        if best is None:
            raise
        print(f"{job} is a tuning job; its best trial is {best}", file=sys.stderr)
        job, desc = best, describe(sm, best)
    status = desc["TrainingJobStatus"]
    if status != "Completed":
        raise UsageError("JOB", job, f"has no model to download: it is {status} (only a completed job uploads "
                         "its model)", f"check it with: aws-train-remote status {job}")
    count = download_model(session.client("s3"), desc, dest)
    if as_json:
        _print_json({"job": job, "model": desc["ModelArtifacts"]["S3ModelArtifacts"], "dest": dest, "files": count})
    else:
        print(f"{plural(count, 'file')} unpacked into {dest}")
    return 0


def best_of_tuning(sm, name: str):
    """The best trial of tuning job `name`, or None if there is no such tuning job."""
    from botocore.exceptions import ClientError

    try:
        desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    except ClientError as err:
        if error_code(err) in ("ResourceNotFound", "ValidationException"):
            return None
        raise
    best = (desc.get("BestTrainingJob") or {}).get("TrainingJobName")
    if not best:
        raise UsageError("JOB", name, "a tuning job with no best trial yet (it is "
                         f"{desc['HyperParameterTuningJobStatus']})", "wait for a trial to complete")
    return best


def cmd_role(session, args, region: str) -> int:
    from ..aws.roles import create_execution_role
    from ..plan.request import default_bucket
    from .sagemaker import account_id

    account = account_id(session)
    bucket = args.bucket or default_bucket(region, account)
    arn, created = create_execution_role(session.client("iam"), args.name, bucket)
    print(f"{'created' if created else 'exists, unchanged:'} {arn}"
          + (f" (may use s3://{bucket} only)" if created else ""))
    print(f"use it: export AWS_TRAIN_REMOTE_ROLE={arn}   (or --sagemaker-role {args.name})")
    return 0


def cmd_gc(session, args, region: str) -> int:
    from ..spec.values import parse_duration
    from .sagemaker import account_id
    from .store_gc import check_cutoff, run_gc

    try:
        seconds = parse_duration(args.older_than)
    except ValueError as err:
        raise UsageError("--older-than", args.older_than, str(err), "e.g. --older-than 30d") from None
    check_cutoff(seconds, args.older_than)
    cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    from ..aws.s3 import check_bucket
    from ..plan.request import default_bucket

    account = account_id(session)
    bucket = args.bucket or default_bucket(region, account)
    s3 = session.client("s3")
    if not check_bucket(s3, bucket, account, "--bucket", may_create=args.bucket is None):
        print(f"gc: there is no bucket {bucket}, so nothing was uploaded there; nothing to delete")
        return 0
    return run_gc(s3, session.client("sagemaker"), bucket, args.prefix, cutoff, args.dry_run, sys.stdout)
