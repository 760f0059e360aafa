"""Training-job facts from DescribeTrainingJob: links, the end-of-job summary, terminal states,
and whose launch a job belongs to (its launch token tag)."""
from __future__ import annotations

import urllib.parse

from .session import error_code

TERMINAL = ("Completed", "Failed", "Stopped")
# Exit status by job status, for the launch, `attach` and `status` alike (2 is bad input).
STATUS_EXIT = {"Completed": 0, "Failed": 1, "Stopped": 3, "Stopping": 4, "InProgress": 4}


def exit_status(status: str) -> int:
    return STATUS_EXIT.get(status, 1)


def console_url(region: str, job: str) -> str:
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{job}"


def logs_url(region: str, job: str) -> str:
    def enc(text):  # the CloudWatch console double-encodes with '$' in place of '%'
        return urllib.parse.quote(urllib.parse.quote(text, safe=""), safe="").replace("%", "$")

    group = enc("/aws/sagemaker/TrainingJobs")
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/"
            f"log-group/{group}$3FlogStreamNameFilter$3D{enc(job + '/')}")


def where_lines(job: str, region: str, environ) -> list:
    """Where to watch a job: console links on AWS; the equivalent commands when AWS_ENDPOINT_URL
    points elsewhere (the sandbox), whose jobs the AWS console does not know."""
    if environ.get("AWS_ENDPOINT_URL"):
        return [f"status: aws-train-remote status {job}", f"logs: aws-train-remote logs {job}"]
    return [f"console: {console_url(region, job)}", f"logs: {logs_url(region, job)}"]


def _iso(when):
    return when.isoformat() if hasattr(when, "isoformat") else None


def _identity(job: dict) -> dict:
    """The keys a ListTrainingJobs entry and a DescribeTrainingJob answer share."""
    return {"name": job.get("TrainingJobName"), "arn": job.get("TrainingJobArn"),
            "status": job.get("TrainingJobStatus"), "secondary_status": job.get("SecondaryStatus")}


def job_record(desc: dict) -> dict:
    """A job as `status --json` prints it: stable snake_case keys, times in ISO 8601."""
    resources = desc.get("ResourceConfig") or {}
    return {
        **_identity(desc),
        "failure_reason": desc.get("FailureReason"),
        "created": _iso(desc.get("CreationTime")),
        "started": _iso(desc.get("TrainingStartTime")),
        "ended": _iso(desc.get("TrainingEndTime")),
        "training_seconds": desc.get("TrainingTimeInSeconds"),
        "billable_seconds": desc.get("BillableTimeInSeconds"),
        **_instances_record(desc),
        "instance_groups": [{"name": g.get("InstanceGroupName"), "instance_type": g.get("InstanceType"),
                             "instance_count": g.get("InstanceCount")} for g in resources.get("InstanceGroups") or []],
        "spot": bool(desc.get("EnableManagedSpotTraining")),
        "image": (desc.get("AlgorithmSpecification") or {}).get("TrainingImage"),
        "model_artifacts": (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        "output_path": (desc.get("OutputDataConfig") or {}).get("S3OutputPath"),
        "checkpoint_s3": (desc.get("CheckpointConfig") or {}).get("S3Uri"),
        "exit_status": exit_status(desc.get("TrainingJobStatus")),
    }


def _instances_record(desc: dict) -> dict:
    """What the job runs on: SageMaker's choice of an InstancePreferences list (None before it
    chose), the list itself, and the training plan (aws/instances.py)."""
    from .instances import selected

    kind, count = selected(desc)
    resources = desc.get("ResourceConfig") or {}
    return {"instance_type": kind, "instance_count": count,
            "instance_preferences": [{"instance_type": p.get("InstanceType"), "instance_count": p.get("InstanceCount")}
                                     for p in resources.get("InstancePreferences") or []],
            "training_plan": resources.get("TrainingPlanArn")}


def summary_record(summary: dict) -> dict:
    """A ListTrainingJobs entry as `list --json` prints it."""
    return {
        **_identity(summary),
        "created": _iso(summary.get("CreationTime")),
        "ended": _iso(summary.get("TrainingEndTime")),
        "modified": _iso(summary.get("LastModifiedTime")),
    }


def summary_lines(desc: dict, full_reason: bool = False, with_phases: bool = True) -> list:
    """The end-of-job summary, its phases on one line unless not `with_phases`. The failure reason
    is one line unless `full_reason`: its traceback tail was already in the log, and a user should
    see a traceback once."""
    status = desc.get("TrainingJobStatus", "?")
    parts = [f"{status}: {desc.get('TrainingJobName')}"]
    training = desc.get("TrainingTimeInSeconds")
    billable = desc.get("BillableTimeInSeconds")
    if training is not None:
        parts.append(f"training {training} s")
    if billable is not None:
        parts.append(f"billable {billable} s")
    if desc.get("EnableManagedSpotTraining") and training and billable is not None:
        parts.append(f"spot savings {100.0 * (1 - billable / training):.0f}%")
    provisioning = provisioning_seconds(desc)
    if provisioning is not None:
        parts.append(f"provisioning {provisioning} s")
    lines = [", ".join(parts)]
    from .instances import instances_text, wants_summary_line

    if wants_summary_line(desc):  # SageMaker chose the type, or a plan gave it: say which (issue 19.3)
        lines.append(f"instances: {instances_text(desc)}")
    steps = timeline(desc) if with_phases else None
    if steps:
        lines.append(steps)
    warm = warm_pool_line(desc)
    if warm:
        lines.append(warm)
    artifacts = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if artifacts and status == "Completed":
        lines.append(f"model: {artifacts}")
    if desc.get("FailureReason"):
        reason = desc["FailureReason"] if full_reason else first_line(desc["FailureReason"])
        lines.append(f"failure reason: {reason}")
    return lines


ENDS = ("Completed", "Failed", "Stopped", "MaxRuntimeExceeded", "MaxWaitTimeExceeded")  # phases that last no time


def duration(seconds) -> str:
    """65 -> '1 min 5 s', 7260 -> '2 h 1 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(seconds // 60, 60)
    return f"{hours} h" + (f" {rest} min" if rest else "")


def phases(desc: dict, now=None) -> list:
    """(status, start, seconds, message) for each of the job's SecondaryStatusTransitions, in order:
    a phase lasts to its EndTime, else to the next one's start, else (the current phase of a job
    still running) to `now`, a datetime; None for an end state or a time not known."""
    transitions = desc.get("SecondaryStatusTransitions") or []
    out = []
    for i, t in enumerate(transitions):
        status, start = t.get("Status"), t.get("StartTime")
        end = t.get("EndTime") or (transitions[i + 1].get("StartTime") if i + 1 < len(transitions) else None)
        if end is None and desc.get("TrainingJobStatus") not in TERMINAL:
            end = now
        seconds = None
        if status not in ENDS and start is not None and end is not None:
            seconds = max(0.0, (end - start).total_seconds())
        out.append((status, start, seconds, t.get("StatusMessage") or ""))
    return out


def timeline(desc: dict):
    """The job's phases on one line ('phases: Starting 1 min 5 s -> Training 10 min -> Uploading
    2 s -> Completed'), or None before the first."""
    steps = [status + ("" if seconds is None else f" {duration(seconds)}") for status, _, seconds, _ in phases(desc)]
    return "phases: " + " -> ".join(steps) if steps else None


def timeline_lines(desc: dict, now, blocks: bool = True, width: int = 30) -> list:
    """The phases as a table for `status`: start time (UTC), phase, how long, and a bar in
    proportion to the longest; the current phase of a running job says 'so far'."""
    import datetime

    found = phases(desc, now)
    if not found:
        return []
    longest = max((s for _, _, s, _ in found if s), default=0)
    running = desc.get("TrainingJobStatus") not in TERMINAL
    lines = ["phases (UTC):"]
    for i, (status, start, seconds, _) in enumerate(found):
        when = start.astimezone(datetime.timezone.utc).strftime("%H:%M:%S") if hasattr(start, "astimezone") else "?"
        took = "" if seconds is None else duration(seconds) + (" so far" if running and i == len(found) - 1 else "")
        bar = ""
        if seconds is not None and longest:
            cells = max(1, round(width * seconds / longest))
            bar = ("█" if blocks else "#") * cells
        lines.append(f"  {when}  {status:<12} {took:<16} {bar}".rstrip())
    return lines


def provisioning_seconds(desc: dict):
    """How long the job spent Starting (getting and preparing its instances), from its secondary
    status transitions; None before it has left Starting."""
    transitions = desc.get("SecondaryStatusTransitions") or []
    for i, t in enumerate(transitions):
        if t.get("Status") == "Starting":
            end = t.get("EndTime") or (transitions[i + 1].get("StartTime") if i + 1 < len(transitions) else None)
            if end is not None and t.get("StartTime") is not None:
                return max(0, round((end - t["StartTime"]).total_seconds()))
    return None


def warm_pool_line(desc: dict):
    """What became of the job's warm pool (--sagemaker-keep-alive), or None without one."""
    pool = desc.get("WarmPoolStatus") or {}
    status = pool.get("Status")
    if not status:
        return None
    billed = pool.get("ResourceRetainedBillableTimeInSeconds")
    billed = f"; kept {billed} s billable" if billed else ""
    keep = (desc.get("ResourceConfig") or {}).get("KeepAlivePeriodInSeconds")
    return {"Available": f"warm pool: the instances are kept {keep} s for a matching job{billed}",
            "InUse": f"warm pool: in use{billed}",
            "Reused": f"warm pool: reused by job {pool.get('ReusedByJob')}{billed}",
            "Terminated": f"warm pool: terminated{billed}"}.get(status, f"warm pool: {status}{billed}")


def reused_pool_of(sm, job: str, earlier: str):
    """`earlier` if its warm pool went to `job` (AWS records reuse on the pool's own job), else None."""
    desc = describe_or_none(sm, earlier) if earlier and earlier != job else None
    pool = (desc or {}).get("WarmPoolStatus") or {}
    return earlier if pool.get("Status") == "Reused" and pool.get("ReusedByJob") == job else None


def plural(count: int, noun: str) -> str:
    """'1 file', '2 files'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def describe_or_none(sm, name: str):
    """DescribeTrainingJob, or None when there is no such job (SageMaker says ValidationException)."""
    from botocore.exceptions import ClientError

    try:
        return sm.describe_training_job(TrainingJobName=name)
    except ClientError as err:
        if error_code(err) in ("ValidationException", "ResourceNotFound"):
            return None
        raise


def describe_tuning_or_none(sm, name: str):
    """DescribeHyperParameterTuningJob, or None when there is no such tuning job."""
    from botocore.exceptions import ClientError

    try:
        return sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    except ClientError as err:
        if error_code(err) in ("ResourceNotFound", "ValidationException"):
            return None
        raise


def tag_value(sm, arn: str, tag_key: str, missing=""):
    """The value of tag `tag_key` on SageMaker resource `arn` (`missing` if it has none), every page read."""
    kwargs = {"ResourceArn": arn, "MaxResults": 100}
    while True:
        page = sm.list_tags(**kwargs)
        for tag in page.get("Tags", []):
            if tag.get("Key") == tag_key:
                return tag.get("Value", "")
        if not page.get("NextToken"):
            return missing
        kwargs["NextToken"] = page["NextToken"]


def launch_token_of(sm, name: str, tag_key: str):
    """The launch token tagged on job `name`: None if the job does not exist, "" if it has none."""
    desc = describe_or_none(sm, name)
    return None if desc is None else tag_value(sm, desc["TrainingJobArn"], tag_key)
