"""Capacity fallback: the order of the launch's choices (a spot --sagemaker-instance list, then on
demand after spot with --sagemaker-spot-fallback), and the rule that says a choice could not get capacity.

An on-demand list is not relaunched here: it travels as ResourceConfig.InstancePreferences, one job,
and SageMaker takes the first type with capacity (spec/compute.py). That job is one choice: what
SageMaker decides for it stands. Spot lists stay here because SageMaker refuses InstancePreferences
with EnableManagedSpotTraining (API_ResourceConfig.html).

The rule reads only what SageMaker itself decided, never text a training script wrote:
- CreateTrainingJob refused: the error *code* ResourceLimitExceeded, one of the three error shapes
  the SageMaker API model documents for CreateTrainingJob (botocore's sagemaker/2017-07-24
  service-2.json: ResourceInUse, ResourceLimitExceeded, ResourceNotFound); e.g. "The account-level
  service limit 'ml.p4d.24xlarge for training job usage' is 0 Instances". No job exists, nothing
  is billed. The message is not read.
- A created job Failed: its FailureReason *begins with* "CapacityError" ("CapacityError: Unable to
  provision requested ML compute capacity. Please retry using a different ML instance type.").
  AWS Batch applies the same rule to SageMaker training jobs ("failedReason begins with
  CapacityError", docs.aws.amazon.com/batch/latest/userguide/sm_job_stuck_in_runnable_capacity.html).
  A script cannot write that prefix: SageMaker puts what the script left in /opt/ml/output/failure
  after its own "AlgorithmError: ", so a script that raises RuntimeError("... CapacityError ...")
  fails once and is not relaunched.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import AwsError

CREATE_CAPACITY_CODES = ("ResourceLimitExceeded",)
CAPACITY_REASON_PREFIX = "CapacityError"


class NoCapacity(AwsError):
    """SageMaker could not provide the instances asked for (on creation)."""


def is_capacity_refusal(err) -> bool:
    """A ClientError of CreateTrainingJob that is SageMaker's capacity (or quota) verdict."""
    from ..aws.session import error_code

    return error_code(err) in CREATE_CAPACITY_CODES


def is_capacity_failure(reason) -> bool:
    """A FailureReason that SageMaker wrote for a job it could not give instances."""
    return (reason or "").lstrip().startswith(CAPACITY_REASON_PREFIX)


def attempts(spec) -> list:
    """The specs to try in order: each instance type of a spot --sagemaker-instance list (with its
    own count when the list gives counts), and with --sagemaker-spot-fallback the same again on
    demand. Same data, same checkpoint prefix. An on-demand list is one choice (InstancePreferences)."""
    choices = [(spec.instance_type, spec.image, spec.instance_count),
               *((kind, image, spec.instance_count if count is None else count)
                 for kind, image, count in spec.instance_fallbacks)]
    modes = [spec.spot] + ([False] if spec.spot and spec.spot_fallback else [])
    return [dataclasses.replace(spec, instance_type=kind, image=image, instance_count=count, spot=spot,
                                max_wait=spec.max_wait if spot else None, instance_fallbacks=(), spot_fallback=False)
            for spot in modes for kind, image, count in choices]


def capacity_notes(spec) -> list:
    """The dry run's lines on how the job gets capacity: the order of a client-side list, or the
    types SageMaker chooses from, and a training plan's wait."""
    notes = []
    if spec.instance_fallbacks or spec.spot_fallback:
        order = ", ".join(f"{a.instance_type} ({'spot' if a.spot else 'on demand'})" for a in attempts(spec))
        notes.append(f"capacity fallback: a job that cannot get capacity is relaunched in this order: {order}")
    if spec.instance_preferences:
        listed = ", ".join(kind + ("" if count is None else f" x {count}") for kind, count in spec.instance_preferences)
        notes.append(f"instance preferences: SageMaker starts the job on the first of {listed} that has capacity "
                     "(one job, no relaunch); the job runs as the type it selected, which `status` shows")
    if spec.training_plan:
        wait = f"at most {spec.max_pending} s once the plan is Active (--sagemaker-max-pending)" if spec.max_pending \
            else "until the plan's capacity is free"
        notes.append(f"training plan: the job waits, Pending, for the plan's reserved capacity, {wait}")
    return notes


@dataclass
class Attempts:
    """Where a launch stands in its choices. `identity` is the launch's (create.request_identity of
    the first choice's request), shared by every attempt, so that a relaunch of the same launch
    recognises an attempt that was being created when the user pressed Ctrl-C; `number` may jump
    forward when such an attempt is resumed."""
    tries: list
    number: int = 0
    identity: str = None

    @property
    def last(self) -> bool:
        return self.number + 1 >= len(self.tries)


def renamed(spec):
    """A relaunch needs a fresh job name and launch token (names are unique, tokens per create)."""
    import datetime
    import secrets

    from ..spec.naming import unique_job_name

    name = unique_job_name(spec.base_job_name, datetime.datetime.now(datetime.timezone.utc), secrets.token_hex(3))
    return dataclasses.replace(spec, job_name=name, explicit_job_name=False, launch_token=secrets.token_hex(16))


def say_fallback(next_spec, why: str, out) -> None:
    how = "on demand" if not next_spec.spot else "on spot capacity"
    print(f"no capacity ({why.splitlines()[0][:200]}); relaunching on {next_spec.instance_type} {how}, with the "
          "same data and checkpoints", file=out)
    out.flush()


def with_fallback(spec, launch_one, out) -> int:
    """Run launch_one(attempt_spec, attempts) for each choice in turn until one returns an exit
    status; None from it (the job failed for capacity) or NoCapacity (refused at creation) moves on
    to the next choice, and the last choice's failure stands."""
    plan = Attempts(attempts(spec))
    while True:
        current = plan.tries[plan.number]
        try:
            result = launch_one(current if plan.number == 0 else renamed(current), plan)
        except NoCapacity as err:
            if plan.last:
                raise
            why = str(err)
        else:
            if result is not None:
                return result
            why = "the job could not get capacity"
        plan.number += 1
        say_fallback(plan.tries[plan.number], why, out)


def as_choice(spec, choice):
    """`spec` (already resolved for this launch) on the instance type and market of `choice`, one of
    attempts(): the fields in which the choices differ."""
    return dataclasses.replace(spec, instance_type=choice.instance_type, image=choice.image, spot=choice.spot,
                               instance_count=choice.instance_count, max_wait=choice.max_wait, instance_fallbacks=(),
                               spot_fallback=False)
