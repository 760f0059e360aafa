"""Creating a job exactly once — a training job, a tuning job or a queued (AWS Batch) job — when a
reply is lost, and when the user presses Ctrl-C while the create call is in flight.

For every create call (each capacity-fallback attempt included):
1. The call is idempotent: a retry whose first reply was lost adopts what the first attempt created,
   found by name and the launch token the job is tagged with (Batch: also the client token).
2. Before the call, a pending create (kind, name, launch token, identity, region) goes into the
   folder's launch record (launches.py); a definite answer settles it.
3. Ctrl-C does not cut the call short: it runs in a worker thread and gets GRACE_SECONDS more to
   answer. The launch then prints what is true — created (with the attach and stop commands), not
   created, or not known — looking the job up by name and launch token when the call's own answer
   is missing (CONFIRM_SECONDS at most), and exits 130.
4. "The same launch" is the next launch from the same folder (and AWS endpoint) that makes the same
   request: same code, data, flags and settings, with only what each launch draws afresh left out
   (the generated name, the launch token, the MLflow run): request_identity. It resumes the pending
   create under its name and token: it follows the job while it runs, or creates it when it never
   arrived (name and token make that create idempotent too), so it never makes a second. A job of
   the interrupted launch that has ended is reported and a new one is made; a launch with another
   request is another launch: it names the interrupted launch's job if it runs (with the stop
   command) and goes its own way. The record is then settled either way.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

from ..errors import AwsError

GRACE_SECONDS = 30.0  # after a Ctrl-C, how long the create call may still take to answer
CONFIRM_SECONDS = 10.0  # without its answer, how long the job is looked for by name and token
VOLATILE_TAGS = ("aws-train-remote:launch", "aws-train-remote:mlflow-run")
LABELS = {"training": "job", "tuning": "tuning job", "queue": "queued job"}
OPERATIONS = {"training": "CreateTrainingJob", "tuning": "CreateHyperParameterTuningJob",
              "queue": "SubmitServiceJob"}


def request_identity(kind: str, request: dict, names) -> str:
    """What makes two launches the same launch: the request they send, less what each launch draws
    afresh — the generated `names` (wherever they appear), the launch token and the MLflow run."""
    import hashlib
    import json

    def stable(value):
        if isinstance(value, dict):
            return {k: stable(v) for k, v in value.items() if k not in ("MLFLOW_RUN_ID", "clientToken")}
        if isinstance(value, list):
            return [stable(v) for v in value if not (isinstance(v, dict) and v.get("Key") in VOLATILE_TAGS)]
        return value

    text = json.dumps([kind, stable(request)], sort_keys=True, default=str)
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        text = text.replace(name, "<name>")
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Target:
    """What one create call makes, and how the launch record remembers it."""
    kind: str  # training, tuning, queue
    name: str
    token: str
    region: str
    identity: str
    attempt: int = 0  # its place in the capacity choices
    queue: str = None
    mlflow_run_id: str = None

    @property
    def label(self) -> str:
        return f"{LABELS[self.kind]} {self.name}"

    def record(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_record(cls, record: dict):
        fields = ("kind", "name", "token", "region", "identity", "attempt", "queue", "mlflow_run_id")
        return cls(**{k: record[k] for k in fields if k in record})


@dataclass(frozen=True)
class Created:
    """A create call's answer: `how` is created, adopted (its first reply was lost) or taken (a job
    of another launch holds the name); `ref` the AWS Batch job id of a queued job."""
    how: str
    ref: str = None

    @property
    def ours(self) -> bool:
        return self.how in ("created", "adopted")


@dataclass(frozen=True)
class Found:
    status: str
    ref: str = None  # the AWS Batch job id of a queued job

    def running(self, kind: str) -> bool:
        if kind == "queue":
            return self.status not in ("SUCCEEDED", "FAILED")
        return self.status == "InProgress"


def _tagged(sm, arn: str, token: str) -> bool:
    from ..aws.jobs import tag_value
    from ..plan.request import LAUNCH_TAG

    return tag_value(sm, arn, LAUNCH_TAG, missing=None) == token  # no tag never matches an empty token


def look(session, target: Target):
    """The job `target` names, if it exists and carries its launch token: Found, else None."""
    from ..aws.jobs import describe_or_none, describe_tuning_or_none

    if target.kind == "queue":
        from .queue import find_service_job

        job = find_service_job(session.client("batch"), target.queue, target.name, target.token)
        return Found(job["status"], job["jobId"]) if job else None
    sm = session.client("sagemaker")
    if target.kind == "training":
        desc = describe_or_none(sm, target.name)
        if desc is None or not _tagged(sm, desc["TrainingJobArn"], target.token):
            return None
        return Found(desc["TrainingJobStatus"])
    desc = describe_tuning_or_none(sm, target.name)
    if desc is None or not _tagged(sm, desc["HyperParameterTuningJobArn"], target.token):
        return None
    return Found(desc["HyperParameterTuningJobStatus"])


def hint(target: Target, ref: str = None) -> str:
    """How to follow and stop what `target` made."""
    if target.kind == "training":
        from .sagemaker import reattach_hint

        return reattach_hint(target.name, target.region)
    if target.kind == "tuning":
        return (f"stop it: aws sagemaker stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name "
                f"{target.name} --region {target.region}")
    job = ref or "JOB_ID"
    return (f"it runs when its turn in {target.queue} comes; cancel it: aws batch terminate-service-job "
            f"--job-id {job} --reason cancelled --region {target.region}")


def check_command(target: Target) -> str:
    if target.kind == "training":
        return f"aws-train-remote status {target.name} --region {target.region}"
    if target.kind == "tuning":
        return (f"aws sagemaker describe-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name "
                f"{target.name} --region {target.region}")
    return (f"aws batch list-service-jobs --job-queue {target.queue} --filters name=JOB_NAME,values={target.name} "
            f"--region {target.region}")


# -- the next launch: resume what an interrupted one was creating ----------------------------------

def resume_pending(session, environ, kind: str, identity: str, region: str, out):
    """The pending create this launch repeats, as (Target, Found or None), or None. Every other
    pending create of this folder and region is settled here: named when its job runs on, then
    forgotten (module docstring, point 4)."""
    from ..launches import forget_pending, pending_creates

    match = None
    for record in pending_creates(environ):
        if record.get("region") != region:
            continue  # looked at by a launch in its own region
        target = Target.from_record(record)
        found = look(session, target)
        same = target.kind == kind and target.identity == identity
        if same and match is None and (found is None or found.running(kind)):
            match = (target, found)
            continue
        if found is not None and found.running(target.kind):
            print(f"note: {target.label}, made by a launch from this folder that was interrupted while creating "
                  f"it, runs on with other settings; {hint(target, found.ref).splitlines()[-1]}", file=out)
        elif found is not None and same:
            print(f"note: {target.label}, made by the launch from this folder that was interrupted while creating "
                  f"it, has ended ({found.status}); this launch makes a new one", file=out)
        forget_pending(target.name, environ)
    if match:
        target, found = match
        if found is not None:
            forget_pending(target.name, environ)  # this launch's job now, settled as if it had made it
            print(f"adopting {target.label}: the launch from this folder that was interrupted while creating it "
                  "sent this same request, and it runs on (no second one is made)", file=out)
        else:
            print(f"resuming the launch from this folder that was interrupted while creating {target.label}: "
                  "same request, so the same name and launch token (should the first request have arrived "
                  "after all, its job is adopted, not repeated)", file=out)
    return match


# -- one create call, with the Ctrl-C policy ----------------------------------------------------------

def create_once(session, client, target: Target, call, environ, *, grace=None, confirm=None,
                sleep=time.sleep, clock=time.monotonic) -> Created:
    """call() -> Created: the create and its adopt check, run in a worker thread so that Ctrl-C
    lets it finish (module docstring, point 3). The worker records the pending create first (so a
    Ctrl-C cannot fall between the record and the call); any definite answer settles it."""
    from botocore.exceptions import BotoCoreError

    from ..launches import forget_pending, record_pending

    sent = []
    event = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{OPERATIONS[target.kind]}"

    def on_send(**_):  # registered last: it runs only when the request really leaves
        sent.append(1)

    box, done = {}, threading.Event()

    def work():
        try:
            record_pending(target.record(), environ)
            box["value"] = call()
        except BaseException as err:  # noqa: BLE001 - handed to the launch's own thread as it is
            box["error"] = err
        finally:
            done.set()

    client.meta.events.register_last(event, on_send)
    try:
        threading.Thread(target=work, daemon=True, name=f"create-{target.name}").start()
        try:
            done.wait()
        except KeyboardInterrupt:
            _interrupted(session, target, box, done, sent, grace, confirm, sleep, clock, environ)
        if isinstance(box.get("error"), KeyboardInterrupt):  # raised inside the call itself
            _interrupted(session, target, box, done, sent, grace, confirm, sleep, clock, environ)
    finally:
        client.meta.events.unregister(event, on_send)
    error = box.get("error")
    if error is None or not (sent and isinstance(error, BotoCoreError)):
        forget_pending(target.name, environ)  # an answer: created, adopted, taken or refused
    if error is not None:
        raise error
    return box["value"]


def _interrupted(session, target, box, done, sent, grace, confirm, sleep, clock, environ):
    """Ctrl-C during a create call: wait for its answer (bounded), else look the job up; say
    what is true; exit 130."""
    from botocore.exceptions import BotoCoreError

    from ..launches import forget_pending

    grace = GRACE_SECONDS if grace is None else grace
    confirm = CONFIRM_SECONDS if confirm is None else confirm
    operation = OPERATIONS[target.kind]
    if not done.is_set():
        print(f"\nCtrl-C: letting {operation} answer (up to {grace:.0f} s) to tell you whether {target.label} "
              "exists; Ctrl-C again to stop waiting", file=sys.stderr)
        try:
            done.wait(grace)
        except KeyboardInterrupt:
            pass
    exists, ref = None, None  # None: not known
    if done.is_set():
        value, error = box.get("value"), box.get("error")
        if value is not None:
            exists, ref = value.ours, value.ref
        elif not sent or not isinstance(error, (KeyboardInterrupt, BotoCoreError)):
            exists = False  # nothing left this machine, or AWS answered with a refusal
    if exists is None:
        found = _look_until(session, target, confirm, sleep, clock)
        exists, ref = (True, found.ref) if found else (None, None)
    if exists:
        became = "queued" if target.kind == "queue" else "created and is running"
        print(f"\ninterrupted, but {target.label} was {became}; {hint(target, ref)}\nlaunching again from this "
              "folder with the same settings follows it instead of making another", file=sys.stderr)
    elif exists is False:
        forget_pending(target.name, environ)
        print(f"\ninterrupted: no {target.label} was created; the uploads are kept, so a relaunch sends nothing "
              "again", file=sys.stderr)
    else:
        service = "AWS Batch" if target.kind == "queue" else "SageMaker"
        print(f"\ninterrupted while creating {target.label}: {service} shows none of that name and launch token "
              f"{confirm:.0f} s later, but the request may still arrive. Launching again from this folder with the "
              f"same settings reuses that name and token, so it cannot make a second; check: {check_command(target)}",
              file=sys.stderr)
    raise SystemExit(130)


def _look_until(session, target, seconds, sleep, clock):
    """look() until the job shows or `seconds` pass (a Ctrl-C ends the wait); Found or None."""
    deadline = clock() + seconds
    while True:
        try:
            found = look(session, target)
        except KeyboardInterrupt:
            return None
        except Exception:  # noqa: BLE001 - a failed look-up only means we cannot tell
            found = None
        if found is not None or clock() >= deadline:
            return found
        try:
            sleep(1.0)
        except KeyboardInterrupt:
            return None


# -- the three create calls -----------------------------------------------------------------------

def create_or_adopt(sm, request: dict, token: str) -> Created:
    """CreateTrainingJob, made idempotent by the launch token: created; adopted when the name is in
    use by the job this very launch created (its first reply was lost and botocore's retry met
    ResourceInUse); taken when another launch's job holds the name. SageMaker's capacity verdict
    is NoCapacity (capacity.py)."""
    from botocore.exceptions import ClientError

    from ..aws.session import error_code
    from .capacity import NoCapacity, is_capacity_refusal

    try:
        sm.create_training_job(**request)
        return Created("created")
    except ClientError as err:
        if is_capacity_refusal(err):
            raise NoCapacity(f"CreateTrainingJob failed: {err}") from None
        if error_code(err) != "ResourceInUse":
            raise AwsError(f"CreateTrainingJob failed: {err}") from None
    return Created("adopted" if token and _tagged_job(sm, request["TrainingJobName"], token) else "taken")


def _tagged_job(sm, name: str, token: str) -> bool:
    from ..aws.jobs import launch_token_of
    from ..plan.request import LAUNCH_TAG

    return launch_token_of(sm, name, LAUNCH_TAG) == token


def create_tuning_or_adopt(sm, tuning: dict, token: str) -> Created:
    """CreateHyperParameterTuningJob, idempotent as create_or_adopt."""
    from botocore.exceptions import ClientError

    from ..aws.session import error_code

    try:
        sm.create_hyper_parameter_tuning_job(**tuning)
        return Created("created")
    except ClientError as err:
        name = tuning["HyperParameterTuningJobName"]
        if error_code(err) == "ResourceInUse" and token:
            try:
                arn = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
                    "HyperParameterTuningJobArn"]
                if _tagged(sm, arn, token):
                    return Created("adopted")
            except ClientError:
                pass
        raise AwsError(f"CreateHyperParameterTuningJob failed: {err}") from None
