"""Training-job facts from DescribeTrainingJob: links, the end-of-job summary, terminal states,
and whose launch a job belongs to (its launch token tag)."""
from __future__ import annotations

import urllib.parse

from .session import error_code

TERMINAL = ("Completed", "Failed", "Stopped")


def console_url(region: str, job: str) -> str:
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{job}"


def logs_url(region: str, job: str) -> str:
    def enc(text):  # the CloudWatch console double-encodes with '$' in place of '%'
        return urllib.parse.quote(urllib.parse.quote(text, safe=""), safe="").replace("%", "$")

    group = enc("/aws/sagemaker/TrainingJobs")
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/"
            f"log-group/{group}$3FlogStreamNameFilter$3D{enc(job + '/')}")


def summary_lines(desc: dict, full_reason: bool = False) -> list:
    """The end-of-job summary. The failure reason is one line unless `full_reason`: its traceback
    tail was already in the log, and a user should see a traceback once."""
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
    lines = [", ".join(parts)]
    artifacts = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if artifacts and status == "Completed":
        lines.append(f"model: {artifacts}")
    if desc.get("FailureReason"):
        reason = desc["FailureReason"] if full_reason else first_line(desc["FailureReason"])
        lines.append(f"failure reason: {reason}")
    return lines


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


def launch_token_of(sm, name: str, tag_key: str):
    """The launch token tagged on job `name`: None if the job does not exist, "" if it has none."""
    desc = describe_or_none(sm, name)
    if desc is None:
        return None
    kwargs = {"ResourceArn": desc["TrainingJobArn"], "MaxResults": 100}
    while True:
        page = sm.list_tags(**kwargs)
        for tag in page.get("Tags", []):
            if tag.get("Key") == tag_key:
                return tag.get("Value", "")
        if not page.get("NextToken"):
            return ""
        kwargs["NextToken"] = page["NextToken"]
