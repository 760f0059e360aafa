"""--sagemaker-run yes: upload what changed, create the training job, follow it to its end.

Every look-up happens once per launch (account, bucket, role); every AWS call goes through
botocore's standard retry mode; nothing is created before the spec and the plan are valid.
Everything before the create is prepare.py's; creating exactly once (lost replies, Ctrl-C, an
interrupted launch's job) create.py's; the capacity choices and their rule capacity.py's; queues
queue.py's; tuning jobs tuning.py's.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from ..aws.jobs import plural
from ..errors import AwsError, JobFailed, UsageError

# prepare() and its checks live in prepare.py; their names stay importable from here (`as`: re-exported)
from .prepare import Prepared, prepare
from .prepare import account_id as account_id
from .prepare import ensure_experiment as ensure_experiment
from .prepare import other_buckets as other_buckets
from .prepare import refuse_taken_name as refuse_taken_name
from .prepare import resolve_role as resolve_role

MAX_NAME_ATTEMPTS = 3


@dataclass
class Launched:
    job_name: str
    request: dict
    report: object
    region: str
    batch_job_id: str = None  # --sagemaker-queue: the AWS Batch service job that will create it
    mlflow_run_id: str = None  # --sagemaker-mlflow: the launch's run


INTERRUPTED_BEFORE_CREATE = ("\ninterrupted: no job was created; what was uploaded is kept and nothing partial is "
                             "marked complete, so a relaunch sends only what is missing")


def launch(spec, session, environ, *, out=None, rand=None, plan=None) -> Launched:
    """Upload and create the job, or take over the one an interrupted launch of the same request
    was creating (create.py); return as soon as it exists. `plan`: where the launch stands in its
    capacity choices (capacity.Attempts; one choice by default)."""
    from ..aws.models import resolve_model_job
    from ..spec.job import JOB_MODEL
    from .capacity import Attempts

    out = out if out is not None else sys.stdout
    plan = plan or Attempts([spec])
    if any(i.model_init and i.location.startswith(JOB_MODEL) for i in spec.inputs):
        spec = resolve_model_job(spec, session.client("sagemaker"))
    try:
        # the worst case and the budget on the launch's first choice, over all its choices (cost.py)
        prepared = prepare(spec, session, environ, out, costed=plan.tries if plan.identity is None else None)
        spec, resumed = _resume(spec, session, environ, prepared, plan, out)
        if spec.mlflow and not spec.mlflow_run_id:
            import dataclasses

            from .tracking import start_run

            spec = dataclasses.replace(spec, mlflow_run_id=start_run(spec, prepared.git))
            print(f"MLflow: run {spec.mlflow_run_id} in experiment {spec.mlflow_experiment} ({spec.mlflow})",
                  file=out)
    except KeyboardInterrupt:
        print(INTERRUPTED_BEFORE_CREATE, file=sys.stderr)
        raise SystemExit(130) from None
    if spec.queue:
        from .queue import submit_to_queue

        launched = submit_to_queue(spec, session, prepared, out, environ, plan.identity, resumed)
    else:
        launched = submit(spec, session, prepared, out, environ, plan, rand, resumed)
    launched.mlflow_run_id = spec.mlflow_run_id
    return launched


def _resume(spec, session, environ, prepared, plan, out):
    """On the launch's first choice: its identity, and the interrupted launch it repeats, if any
    ((Target, Found or None), create.resume_pending); the spec then takes that launch's choice,
    name, launch token and MLflow run. Later choices keep the identity of the first."""
    import dataclasses

    from ..plan.request import build_request
    from .capacity import as_choice
    from .create import request_identity, resume_pending

    if plan.identity is not None:
        return spec, None
    kind = "queue" if spec.queue else "training"
    request = build_request(spec, prepared.plan, account=prepared.account, bucket=prepared.bucket,
                            git=prepared.git, role=prepared.role_arn)
    choices = [(t.instance_type, t.image, t.spot) for t in plan.tries]
    plan.identity = request_identity(kind, {"request": request, "queue": spec.queue, "choices": choices},
                                     [] if spec.explicit_job_name else [spec.job_name])  # a given name is asked for
    resumed = resume_pending(session, environ, kind, plan.identity, spec.region, out)
    if not resumed:
        return spec, None
    target = resumed[0]
    plan.number = min(target.attempt, len(plan.tries) - 1)
    spec = dataclasses.replace(as_choice(spec, plan.tries[plan.number]), job_name=target.name,
                               launch_token=target.token, mlflow_run_id=target.mlflow_run_id,
                               explicit_job_name=spec.explicit_job_name and plan.number == 0)
    return spec, resumed


def submit(spec, session, prepared: Prepared, out, environ, plan, rand=None, resumed=None) -> Launched:
    """CreateTrainingJob, exactly once (create.py); a generated name that is taken is replaced by a
    fresh one. `resumed`: (Target, Found or None) of the interrupted launch this one repeats: its
    running job is followed, or created under its name and token."""
    import dataclasses
    import datetime
    import secrets

    from ..plan.request import build_request
    from ..spec.naming import unique_job_name
    from .create import Target, create_once, create_or_adopt

    rand = rand or (lambda: secrets.token_hex(3))
    sm = session.client("sagemaker")

    def request_for(spec):
        return build_request(spec, prepared.plan, account=prepared.account, bucket=prepared.bucket,
                             git=prepared.git, role=prepared.role_arn)

    request = request_for(spec)
    if resumed and resumed[1] is not None:
        return Launched(request["TrainingJobName"], request, prepared.report, spec.region)
    for attempt in range(MAX_NAME_ATTEMPTS):
        name = request["TrainingJobName"]
        target = Target("training", name, spec.launch_token, spec.region, plan.identity, plan.number,
                        mlflow_run_id=spec.mlflow_run_id)
        outcome = create_once(session, sm, target, lambda r=request: create_or_adopt(sm, r, spec.launch_token), environ)
        if outcome.how == "adopted" and not resumed:
            print(f"CreateTrainingJob's reply was lost; {name} carries this launch's token, so it is this "
                  "launch's job (no second job was created)", file=out)
        if outcome.how != "taken":
            break
        if spec.explicit_job_name:
            raise UsageError("--sagemaker-job-name", name, "a training job of this name already exists in "
                             "this account and region", "choose another name, or drop the flag for a generated one")
        if attempt + 1 == MAX_NAME_ATTEMPTS:
            raise AwsError(f"CreateTrainingJob: {MAX_NAME_ATTEMPTS} generated names were all taken; "
                           "pass --sagemaker-job-name")
        name = unique_job_name(spec.base_job_name, datetime.datetime.now(datetime.timezone.utc), rand())
        spec = dataclasses.replace(spec, job_name=name)
        request = request_for(spec)  # a fresh name; the rest unchanged
    return Launched(request["TrainingJobName"], request, prepared.report, spec.region)


def print_started(job: str, region: str, out, environ) -> None:
    from ..aws.jobs import where_lines

    print(f"job: {job}", file=out)
    for line in where_lines(job, region, environ):
        print(line, file=out)
    out.flush()


def reattach_hint(job: str, region: str, again: bool = False) -> str:
    """`again`: after a follow (Ctrl-C detached it); a job never followed is followed, not again."""
    return (f"the job keeps running. Follow it{' again' if again else ''}: aws-train-remote attach {job} "
            f"--region {region}\n"
            f"stop it: aws-train-remote stop {job} --region {region}")


def follow_job(session, job: str, region: str, *, stop_on_interrupt=False, out=None, sleep=time.sleep,
               clock=time.monotonic, patience=None, tail=None, printer=None):
    """Follow with the Ctrl-C policy: detach (default) or stop; a second Ctrl-C always exits.
    AWS out of reach for `patience` seconds (default: follow.PATIENCE) or credentials refused end
    the follow with FollowLost (exit 4): one line, the job goes on, how to re-attach."""
    from ..errors import FollowLost
    from .follow import PATIENCE, LostContact, Printer, follow

    out = out if out is not None else sys.stdout
    sm, logs = session.client("sagemaker"), session.client("logs")
    from ..aws.logs import LogTail

    printer = printer or Printer(out)
    tail = tail if tail is not None else LogTail(logs, job)  # one reader: after a stop, nothing is printed twice

    def follow_on():
        try:
            return follow(sm, logs, job, printer, sleep=sleep, clock=clock, tail=tail,
                          patience=PATIENCE if patience is None else patience)
        except LostContact as lost:
            going = "which keeps running" if lost.status in (None, "InProgress") else \
                f"which was {lost.status} at the last answer"
            raise FollowLost(f"{lost.reason}: stopped following {job}, {going}; {lost.advice}follow it again: "
                             f"aws-train-remote attach {job} --region {region}") from None

    try:
        return follow_on()
    except KeyboardInterrupt:
        if not stop_on_interrupt:
            print(f"\ndetached from {job}; {reattach_hint(job, region, again=True)}", file=sys.stderr)
            raise SystemExit(130) from None
    print(f"\nstopping {job} (Ctrl-C again to detach)", file=sys.stderr)
    try:
        sm.stop_training_job(TrainingJobName=job)
    except Exception as err:  # noqa: BLE001 - any failure here means the job was not told to stop
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(err, (BotoCoreError, ClientError)):
            raise
        raise FollowLost(f"StopTrainingJob failed ({str(err).splitlines()[0][:160]}): {job} may still be "
                         f"running; stop it: aws-train-remote stop {job} --region {region}") from None
    try:
        return follow_on()
    except KeyboardInterrupt:
        print(f"\ndetached from {job} while it stops", file=sys.stderr)
        raise SystemExit(130) from None


def download_model(s3, desc: dict, model_dir: str) -> int:
    """--sagemaker-download: fetch model.tar.gz and unpack it (safely) into the script's --model-dir,
    where its files replace those of the same name as the script's own run there would, and nothing
    else is deleted (docs/remote.md, "Archives"); returns the file count."""
    from .model_download import fetch_model, skipped_line

    unpacked = fetch_model(s3, desc, model_dir, overwrite=True, flag="--model-dir")
    if unpacked.skipped:
        print(skipped_line(unpacked, model_dir), file=sys.stderr)
    return unpacked.files


def write_description(sm, job: str, path: str) -> None:
    """--sagemaker-output-json: the job's DescribeTrainingJob answer as JSON (aws-sagemaker-remote's
    meaning), written when the job is created and again when it ends."""
    import json

    from ..paths import write_json_atomic

    desc = sm.describe_training_job(TrainingJobName=job)
    desc.pop("ResponseMetadata", None)
    write_json_atomic(os.path.abspath(path), json.loads(json.dumps(desc, default=str)))


def launch_and_follow(spec, environ, *, session=None, out=None, sleep=time.sleep) -> int:
    from ..aws.session import AwsSession, aws_failures_as_errors, check_region

    check_region(spec.region, environ, "--sagemaker-region")
    from ..aws.api_fields import check_launch

    check_launch(spec)  # a member this boto3 is too old for: one line, before anything is created (issue 19.7)
    with aws_failures_as_errors():
        return _launch_and_follow(spec, environ, session or AwsSession(profile=spec.profile, region=spec.region),
                                  out if out is not None else sys.stdout, sleep)


def _launch_and_follow(spec, environ, session, out, sleep) -> int:
    if spec.queue:  # the queue's scheduling policy against the share flags, before anything is created
        from .queue import check_queue_policy

        check_queue_policy(session.client("batch"), spec)
    if spec.tune:
        from .tuning import launch_tuning

        return launch_tuning(spec, environ, session, out, sleep)
    from .capacity import with_fallback

    return with_fallback(spec, lambda attempt, plan: _launch_one(attempt, environ, session, out, sleep, plan), out)


def _launch_one(spec, environ, session, out, sleep, plan):
    """One launch and its follow: the exit status, or None when it failed for capacity and another
    choice remains (capacity.py)."""
    from ..launches import last_launch, record_launch
    from .capacity import is_capacity_failure

    earlier = (last_launch(environ) or (None, None))[0] if spec.keep_alive else None
    launched = launch(spec, session, environ, out=out, plan=plan)
    if launched.batch_job_id:
        from .queue import follow_queue

        if not spec.wait:
            print(f"follow the queue: aws batch describe-service-job --job-id {launched.batch_job_id}", file=out)
            return 0
        launched.job_name = follow_queue(session.client("batch"), launched, out, sleep)
    record_launch(launched.job_name, spec.region, environ)
    print_started(launched.job_name, spec.region, out, environ)
    if spec.output_json:
        write_description(session.client("sagemaker"), launched.job_name, spec.output_json)
    if not spec.wait:
        print(reattach_hint(launched.job_name, spec.region), file=out)
        return 0
    desc = follow_job(session, launched.job_name, spec.region, stop_on_interrupt=spec.stop_on_interrupt,
                      out=out, sleep=sleep)
    from .cost import print_job_cost
    from .notify import ring

    print_job_cost(desc, session, environ, spec.region, out)
    ring(launched.job_name, desc["TrainingJobStatus"], out)
    if spec.output_json:
        write_description(session.client("sagemaker"), launched.job_name, spec.output_json)
    if launched.mlflow_run_id:
        from .tracking import end_run

        end_run(spec, launched.mlflow_run_id, desc["TrainingJobStatus"])
    if earlier:
        from ..aws.jobs import reused_pool_of

        if reused_pool_of(session.client("sagemaker"), launched.job_name, earlier):
            print(f"warm pool: this job reused the instances kept by {earlier}", file=out)
    status = desc["TrainingJobStatus"]
    if status == "Failed" and not plan.last and is_capacity_failure(desc.get("FailureReason")):
        return None
    if status != "Completed":
        from ..aws.jobs import exit_status, first_line

        raise JobFailed(f"job {launched.job_name} ended {status}"
                        + (f": {first_line(desc['FailureReason'])}" if desc.get("FailureReason") else ""),
                        exit_code=exit_status(status))
    if spec.download:
        count = download_model(session.client("s3"), desc, spec.model_dir)
        print(f"model: {plural(count, 'file')} unpacked into {spec.model_dir}", file=out)
    return 0
