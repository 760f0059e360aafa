"""--sagemaker-queue: the training request handed to an AWS Batch job queue for SageMaker training
(SubmitServiceJob), and the queue states followed until SageMaker has the training job."""
from __future__ import annotations

import sys
import time

from ..errors import AwsError, JobFailed, UsageError

QUEUED = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED")


def find_service_job(batch, queue: str, name: str, token: str):
    """The service job of `queue` named `name` that carries launch token `token` (a tag, as the
    client token is not returned by Batch), as DescribeServiceJob answers it; None without one.
    ListServiceJobs filters by name (any status with a filter); the tag tells launches apart."""
    from ..plan.request import LAUNCH_TAG

    kwargs = {"jobQueue": queue, "filters": [{"name": "JOB_NAME", "values": [name]}]}
    while True:
        page = batch.list_service_jobs(**kwargs)
        for summary in page.get("jobSummaryList", []):
            if summary.get("jobName") != name:
                continue  # the filter ignores case and takes a trailing * as a wildcard
            job = batch.describe_service_job(jobId=summary["jobId"])
            if (job.get("tags") or {}).get(LAUNCH_TAG) == token:
                return job
        if not page.get("nextToken"):
            return None
        kwargs["nextToken"] = page["nextToken"]


def submit_or_adopt(batch, submit: dict, token: str):
    """SubmitServiceJob, made idempotent: its client token makes Batch treat a retry as the same
    request, which Batch documents as "rejected" rather than answered with the first job, so a
    refused submit whose job exists under this name and launch token is that job (adopted)."""
    from botocore.exceptions import ClientError

    from ..aws.session import error_code
    from .create import Created

    try:
        return Created("created", batch.submit_service_job(**submit)["jobId"])
    except ClientError as err:
        refusal = err
    if token:
        try:
            job = find_service_job(batch, submit["jobQueue"], submit["jobName"], token)
        except ClientError:
            job = None
        if job:
            return Created("adopted", job["jobId"])
    if error_code(refusal) in ("ClientException", "ValidationException"):
        flag, fix = refused_flag(str(refusal))
        if flag:
            value = submit["jobQueue"] if flag == "--sagemaker-queue" else submit.get(SUBMIT_KEYS[flag])
            raise UsageError(flag, value, f"AWS Batch refused it ({_message(refusal)})", fix) from None
    raise AwsError(f"SubmitServiceJob failed: {refusal}") from None


# a share flag -> its SubmitServiceJob key, for the value its refusal line shows
SUBMIT_KEYS = {"--sagemaker-queue-share": "shareIdentifier", "--sagemaker-queue-quota-share": "quotaShareName",
               "--sagemaker-queue-priority": "schedulingPriority"}


def refused_flag(message: str):
    """(the flag a refused SubmitServiceJob is about, the fix), from the refusal's words; (None,
    None) when it names none of ours. The quota share first: its words hold "share" too."""
    text = message.lower()
    if "quota" in text:
        return "--sagemaker-queue-quota-share", ("pass the quota share of the queue's quota-share policy with "
                                                 "--sagemaker-queue-quota-share NAME, or drop it for another queue")
    if "share" in text:
        return "--sagemaker-queue-share", ("pass a share identifier with --sagemaker-queue-share SHARE for a "
                                           "fair-share queue, or drop it for another queue")
    if "priority" in text:
        return "--sagemaker-queue-priority", "use 0 to 9999"
    if "queue" in text:
        return "--sagemaker-queue", "check the queue's name and that it serves SageMaker training"
    return None, None


def _message(err) -> str:
    return (getattr(err, "response", {}).get("Error") or {}).get("Message") or str(err)


def check_queue_policy(batch, spec) -> None:
    """Before anything is created: the queue's scheduling policy against the share flags, one line
    for a combination Batch would refuse. Read-only and cheap (DescribeJobQueues, then
    DescribeSchedulingPolicies when the queue has a policy); a queue the caller may not describe
    or cannot see is left to SubmitServiceJob, whose refusal is one line too (submit_or_adopt)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        queues = batch.describe_job_queues(jobQueues=[spec.queue]).get("jobQueues") or []
        arn = queues[0].get("schedulingPolicyArn") if queues else None
        policies = batch.describe_scheduling_policies(arns=[arn]).get("schedulingPolicies") if arn else []
    except (ClientError, BotoCoreError):
        return
    if not queues or (arn and not policies):
        return
    policy = policies[0] if policies else {}
    fair, quota = policy.get("fairsharePolicy") is not None, policy.get("quotaSharePolicy") is not None
    named = f"its scheduling policy {policy.get('name') or arn}"
    if fair and not spec.queue_share:
        raise UsageError("--sagemaker-queue", spec.queue, f"{named} is fair-share, and AWS Batch refuses a job "
                         "without a share identifier", "add --sagemaker-queue-share SHARE (e.g. your team's name)")
    if quota and not spec.queue_quota_share:
        raise UsageError("--sagemaker-queue", spec.queue, f"{named} is quota-share, and AWS Batch refuses a job "
                         "without a quota share", "add --sagemaker-queue-quota-share NAME (aws batch "
                         f"list-quota-shares --job-queue {spec.queue} names them)")
    if spec.queue_share and not fair:
        raise UsageError("--sagemaker-queue-share", spec.queue_share, f"queue {spec.queue} has no fair-share "
                         "scheduling policy, and AWS Batch refuses a share identifier there", "drop it")
    if spec.queue_quota_share and not quota:
        raise UsageError("--sagemaker-queue-quota-share", spec.queue_quota_share, f"queue {spec.queue} has no "
                         "quota-share scheduling policy, and AWS Batch refuses a quota share there", "drop it")


def submit_to_queue(spec, session, prepared, out, environ, identity: str, resumed=None):
    """Queue the job; its Launched. `resumed`: (Target, Found) of the interrupted launch this one
    repeats (create.resume_pending): its queued job is adopted, or submitted under its name and token."""
    from ..plan.request import build_request, service_job_request
    from .create import Target, create_once
    from .sagemaker import Launched

    request = build_request(spec, prepared.plan, account=prepared.account, bucket=prepared.bucket,
                            git=prepared.git, role=prepared.role_arn)
    name = request["TrainingJobName"]
    if resumed and resumed[1] is not None:
        job_id = resumed[1].ref
    else:
        target = Target("queue", name, spec.launch_token, spec.region, identity, queue=spec.queue,
                        mlflow_run_id=spec.mlflow_run_id)
        batch = session.client("batch")
        outcome = create_once(session, batch, target,
                              lambda: submit_or_adopt(batch, service_job_request(spec, request), spec.launch_token),
                              environ)
        if outcome.how == "adopted" and not resumed:
            print(f"SubmitServiceJob's reply was lost; the queued job {name} carries this launch's token, so it is "
                  "this launch's (nothing was queued twice)", file=out)
        job_id = outcome.ref
    print(f"queued: {name} in {spec.queue} (AWS Batch job {job_id})", file=out)
    return Launched(name, request, prepared.report, spec.region, batch_job_id=job_id)


def follow_queue(batch, launched, out, sleep=time.sleep, fast=1.0, slow=10.0) -> str:
    """Print the service job's queue states until SageMaker has the training job; its name (Batch
    may give a retried attempt a new one). A job that fails in the queue is JobFailed."""
    seen, poll = None, fast
    try:
        while True:
            job = batch.describe_service_job(jobId=launched.batch_job_id)
            status = job.get("status")
            reason = f" - {job['statusReason']}" if job.get("statusReason") and status in QUEUED else ""
            poll = fast if (status, reason) != seen else min(poll * 1.5, slow)  # quick after a change, then back off
            if (status, reason) != seen:
                print(f"queue: {status}{reason}", file=out)
                out.flush()
                seen = (status, reason)
            arn = ((job.get("latestAttempt") or {}).get("serviceResourceId") or {}).get("value")
            if arn and status not in QUEUED:
                return arn.rsplit("/", 1)[-1]
            if status in ("FAILED", "SUCCEEDED"):
                raise JobFailed(f"queued job {launched.job_name} ended {status} in the queue"
                                + (f": {job['statusReason']}" if job.get("statusReason") else ""),
                                exit_code=1)
            sleep(poll)
    except KeyboardInterrupt:
        print(f"\ndetached; {launched.job_name} stays queued and runs when its turn comes. Cancel it: aws batch "
              f"terminate-service-job --job-id {launched.batch_job_id} --reason cancelled", file=sys.stderr)
        raise SystemExit(130) from None
