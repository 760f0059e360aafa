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


def job_instances(sm, jobs, workers: int = 8) -> dict:
    """Job name -> its DescribeTrainingJob answer (None if it could not be read), for the `list`
    column of instances: ListTrainingJobs does not say what a job runs on, nor which type SageMaker
    selected from an instance list. One call per job, a few at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import BotoCoreError, ClientError

    def one(name):
        try:
            return sm.describe_training_job(TrainingJobName=name)
        except (ClientError, BotoCoreError):
            return None

    names = [job["TrainingJobName"] for job in jobs]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        return dict(zip(names, pool.map(one, names)))


def format_job_rows(jobs, color: bool = False, described: dict = None) -> list:
    """The `list` table; `color`: each status coloured by its meaning (style.py); `described`: job
    name -> its description, for the INSTANCES column (job_instances)."""
    from ..aws.instances import instances_short
    from .style import paint, status_color

    described = described or {}
    rows = [f"{'CREATED (UTC)':<19}  {'STATUS':<10}  {'ENDED (UTC)':<19}  {'INSTANCES':<22}  NAME"]
    for job in jobs:
        created = job["CreationTime"].astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        ended = job.get("TrainingEndTime") if job["TrainingJobStatus"] in TERMINAL else None
        ended = ended.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ended else "-"
        status = paint(f"{job['TrainingJobStatus']:<10}", status_color(job["TrainingJobStatus"]), color)
        desc = described.get(job["TrainingJobName"])
        instances = instances_short(desc) if desc else "-"
        rows.append(f"{created:<19}  {status}  {ended:<19}  {instances:<22}  {job['TrainingJobName']}")
    return rows


def status_lines(sm, job: str, now=None, blocks: bool = True):
    """(lines for people, the description): the summary, then the phases as a table (`now`: the
    time the current phase of a running job is measured to; `blocks`: bars of block characters)."""
    from ..aws.jobs import timeline_lines

    desc = describe(sm, job)
    lines = summary_lines(desc, full_reason=True, with_phases=False)
    lines.insert(1, f"secondary status: {desc.get('SecondaryStatus')}")
    from ..aws.instances import capacity_notes, describe_plan_or_none, instances_text

    if not any(line.startswith("instances: ") for line in lines):  # the summary names SageMaker's choice
        lines.insert(2, f"instances: {instances_text(desc)}")
    said = {("selected", (desc.get("ResourceConfig") or {}).get("SelectedInstanceType"))}  # the line above says it
    lines[3:3] = capacity_notes(desc, said, lambda arn: describe_plan_or_none(sm, arn))  # a job waiting for its plan
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return lines + timeline_lines(desc, now, blocks), desc


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
    """--since AGE as the datetime that long ago (UTC); an age past the calendar is one line."""
    from ..spec.values import parse_duration

    if raw is None:
        return None
    try:
        seconds = parse_duration(raw)
        return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    except ValueError as err:
        raise UsageError(flag, raw, str(err), "e.g. --since 10m or --since 2d") from None
    except OverflowError:
        raise UsageError(flag, raw, "reaches back past the year 1", "e.g. --since 10m or --since 2d") from None


def _print_json(data) -> None:
    import json

    print(json.dumps(data, indent=2, sort_keys=False))


def cmd_list(session, args) -> int:
    from ..aws.jobs import summary_record

    if args.limit < 0:
        raise UsageError("--limit", args.limit, "must be 0 (all) or more", "e.g. --limit 50")
    sm = session.client("sagemaker")
    jobs = list_jobs(sm, args.limit, args.name_contains, args.status, _age("--since", args.since))
    described = job_instances(sm, jobs)
    costs = job_costs(session, described, warn=None if args.json else lambda text: print(text, file=sys.stderr))
    if args.json:
        from ..aws.instances import selected

        def record(job):
            kind, count = selected(described.get(job["TrainingJobName"]) or {})
            cost = costs.get(job["TrainingJobName"])
            return {**summary_record(job), "instance_type": kind, "instance_count": count,
                    "cost": cost.record() if cost else None}

        _print_json([record(j) for j in jobs])
    else:
        from .cost import cost_column
        from .style import use_color

        rows = format_job_rows(jobs, use_color(sys.stdout), described)
        print("\n".join(cost_column(rows, jobs, costs)))
    return 0


def job_costs(session, described: dict, warn=None) -> dict:
    """Job name -> its JobCost (cost.py), for the jobs that could be described; prices once each.
    `warn`: where a price look-up that failed is said, once (a JobCost says why itself)."""
    import os

    from .cost import PriceBook, job_cost, region_of

    book = PriceBook(session, os.environ, warn=warn or (lambda text: None))
    return {name: job_cost(desc, book, region_of(desc, session.region)) for name, desc in described.items() if desc}


def cmd_status(session, job: str, as_json: bool) -> int:
    from ..aws.jobs import exit_status, job_record

    sm = session.client("sagemaker")
    if as_json:
        desc = describe(sm, job)
        _print_json({**job_record(desc), "cost": job_costs(session, {job: desc})[job].record()})
    else:
        from .style import blocks_ok, paint_status_line, use_color

        lines, desc = status_lines(sm, job, blocks=blocks_ok(sys.stdout))
        summary_end = next((i for i, line in enumerate(lines) if line.startswith("phases")), len(lines))
        lines.insert(summary_end, job_costs(session, {job: desc})[job].line())  # after the summary, before phases
        color = use_color(sys.stdout)
        print("\n".join(paint_status_line(line, color) for line in lines))
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


def cmd_attach(session, job: str, region: str, args) -> int:
    """Follow `job` to its end; with --tail N only the log's last N lines come before the new ones."""
    from ..aws.jobs import exit_status
    from ..aws.logs import LogTail
    from .sagemaker import follow_job

    if args.tail is not None and args.tail < 0:
        raise UsageError("--tail", args.tail, "must be 0 or more", "e.g. --tail 100")
    describe(session.client("sagemaker"), job)
    tail = LogTail(session.client("logs"), job, keep_last=args.tail)
    desc = follow_job(session, job, region, stop_on_interrupt=args.stop_on_interrupt, tail=tail)
    import os

    from .cost import print_job_cost
    from .notify import ring

    print_job_cost(desc, session, os.environ, region, sys.stdout)
    ring(job, desc["TrainingJobStatus"], sys.stdout)
    return exit_status(desc["TrainingJobStatus"])


def cmd_stop(session, job: str, named: bool) -> int:
    """Stop `job`; when JOB was left out (`named` false), the line says it was the last launched."""
    line = stop_job(session.client("sagemaker"), job)
    print(line + ("" if named else " (the last job launched from this folder)"))
    return 0


def cmd_download(session, job: str, dest: str, as_json: bool, overwrite: bool = False) -> int:
    """Unpack a completed job's model into `dest`. What is already there is kept: a path the
    archive would replace is refused in one line unless `overwrite` (issue 17.7)."""
    from ..aws.jobs import plural
    from ..runtime.safe_tar import shown
    from .model_download import check_dest, fetch_model, skipped_line

    check_dest("--dest", dest)
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
    unpacked = fetch_model(session.client("s3"), desc, dest, overwrite=overwrite)
    if unpacked.skipped:
        print(skipped_line(unpacked, dest), file=sys.stderr)
    if as_json:
        _print_json({"job": job, "model": desc["ModelArtifacts"]["S3ModelArtifacts"], "dest": dest,
                     "files": unpacked.files, "replaced": list(unpacked.replaced), "skipped": list(unpacked.skipped)})
    else:
        replaced = f" (replaced {shown(unpacked.replaced)})" if unpacked.replaced else ""
        print(f"{plural(unpacked.files, 'file')} unpacked into {dest}{replaced}")
    return 0


def best_of_tuning(sm, name: str):
    """The best trial of tuning job `name`, or None if there is no such tuning job."""
    from ..aws.jobs import describe_tuning_or_none

    desc = describe_tuning_or_none(sm, name)
    if desc is None:
        return None
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


def cmd_gc(session, args, region: str, clock=None, out=None) -> int:
    """Every value is checked before any AWS call; jobs are looked for in the bucket's own region,
    ages taken by S3's clock (`clock`, this machine's, only notes its skew)."""
    from ..spec.job import BUCKET
    from ..spec.values import parse_duration
    from .gc_jobs import bucket_region, client_in
    from .sagemaker import account_id
    from .store_gc import check_cutoff, run_gc

    try:
        seconds = parse_duration(args.older_than)
    except ValueError as err:
        raise UsageError("--older-than", args.older_than, str(err), "e.g. --older-than 30d") from None
    check_cutoff(seconds, args.older_than)
    if args.bucket is not None and not (BUCKET.match(args.bucket) and ".." not in args.bucket):
        name = args.bucket.removeprefix("s3://").split("/", 1)[0]
        raise UsageError("--bucket", args.bucket, "not a bucket name",
                         f"pass the name alone, e.g. --bucket {name or 'my-bucket'} (and the folder as --prefix)")
    if "://" in args.prefix:
        raise UsageError("--prefix", args.prefix, "not a prefix inside the bucket",
                         "pass the --sagemaker-prefix the launches used, e.g. --prefix aws-train-remote")
    from ..aws.s3 import check_bucket
    from ..plan.request import default_bucket

    account = account_id(session)
    bucket = args.bucket or default_bucket(region, account)
    s3 = session.client("s3")
    if not check_bucket(s3, bucket, account, "--bucket", may_create=args.bucket is None):
        out = out or sys.stdout
        out.write(f"gc: there is no bucket {bucket}, so nothing was uploaded there; nothing to delete\n")
        return 0
    where = bucket_region(s3, bucket)  # its jobs run there, whatever --region says
    return run_gc(client_in(session, "s3", where), client_in(session, "sagemaker", where), bucket, args.prefix,
                  seconds, args.dry_run, out or sys.stdout, clock, batch=client_in(session, "batch", where))
