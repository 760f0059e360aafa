"""The sandbox's emulation of how SageMaker finds a job its capacity, which moto lacks:

- InstancePreferences: SageMaker "launches the job on the first type in the list that has capacity"
  (train-instance-preferences.html). The sandbox takes the first type not marked out of capacity
  (LoopbackAws.no_capacity), answers it as ResourceConfig.SelectedInstanceType and
  SelectedInstanceCount, and runs the job as that type (its resourceconfig.json says so); with every
  type marked, the job fails with SageMaker's CapacityError, as a job of one such type does here.
- Training plans (moto knows none): add_plan makes one that becomes Active after a delay.
  CreateTrainingJob refuses an unknown plan or one of another instance type (the job's InstanceType
  "must match the InstanceType of your training plan", use-training-plan-for-training-jobs); a job
  on a plan not yet Active waits InProgress/Pending with a message naming the plan ("Training jobs
  associated with the plan remain in Pending status until the plan becomes Active",
  training-plan-details-using-api-cli-sdk.html), then runs; StopTrainingJob ends the wait.
  DescribeTrainingPlan answers the plan. The wording of the refusals and of the Pending message is
  the sandbox's own (SageMaker's exact text is not documented); the codes are SageMaker's.
  MaxPendingTimeInSeconds is not enforced: its minimum is 30 minutes, and the wait on a Scheduled
  plan does not count against it (API_StoppingCondition.html).
"""
from __future__ import annotations

import datetime
import json
import threading
import time

ACCOUNT, REGION = "123456789012", "us-east-1"
TICK = 0.05


def _refuse(message: str):
    return 400, {"__type": "ValidationException", "message": message}


def select(resources: dict, no_capacity) -> tuple:
    """(type, count) SageMaker would select from InstancePreferences: the first with capacity, or
    (None, None) when none has."""
    for preference in resources.get("InstancePreferences") or []:
        if preference["InstanceType"] not in no_capacity:
            return preference["InstanceType"], preference.get("InstanceCount") or resources.get("InstanceCount")
    return None, None


class TrainingPlans:
    def __init__(self):
        self.plans = {}  # arn -> {"name", "instance_type", "count", "active_at" (time.time())}
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.plans.clear()

    def add(self, name: str, instance_type: str, count: int = 1, active_after: float = 0.0) -> str:
        """A plan of `count` instances of `instance_type`, Scheduled now and Active `active_after`
        seconds from now; returns its ARN."""
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-plan/{name}"
        with self.lock:
            self.plans[arn] = {"name": name, "instance_type": instance_type, "count": count,
                               "active_at": time.time() + active_after}
        return arn

    def activate(self, name_or_arn: str) -> None:
        """The plan's start comes now (a test moves the clock of a plan made with a long delay)."""
        with self.lock:
            plan = self.plans.get(name_or_arn) or next(p for p in self.plans.values() if p["name"] == name_or_arn)
            plan["active_at"] = min(plan["active_at"], time.time())

    def find(self, name_or_arn: str):
        with self.lock:
            return self.plans.get(name_or_arn) or next(
                (p for p in self.plans.values() if p["name"] == name_or_arn), None)

    def active(self, arn: str) -> bool:
        plan = self.find(arn)
        return plan is not None and time.time() >= plan["active_at"]

    def refusal(self, body: bytes):
        """CreateTrainingJob's answer for a request whose plan cannot take it, else None."""
        request = json.loads(body or b"{}")
        resources = request.get("ResourceConfig") or {}
        arn = resources.get("TrainingPlanArn")
        if not arn:
            return None
        plan = self.find(arn)
        if plan is None:
            return _refuse(f"Training plan {arn} does not exist.")
        if resources.get("InstanceType") != plan["instance_type"]:
            return _refuse(f"The instance type {resources.get('InstanceType')} of the training job does not match "
                           f"the instance type {plan['instance_type']} of training plan {plan['name']}.")
        if int(resources.get("InstanceCount") or 0) > plan["count"]:
            return _refuse(f"The training job asks for {resources.get('InstanceCount')} instances; training plan "
                           f"{plan['name']} reserves {plan['count']}.")
        return None

    def wait_message(self, arn: str) -> str:
        return f"Waiting for the capacity of training plan {self.find(arn)['name']}, which is not Active yet"

    def describe(self, body: bytes):
        """DescribeTrainingPlan (by name or ARN)."""
        wanted = json.loads(body or b"{}").get("TrainingPlanName", "")
        plan = self.find(wanted)
        if plan is None:
            return 400, {"__type": "ResourceNotFound", "message": f"Training plan {wanted} does not exist."}
        arn = next(a for a, p in self.plans.items() if p is plan)
        start = plan["active_at"]
        return 200, {"TrainingPlanArn": arn, "TrainingPlanName": plan["name"],
                     "Status": "Active" if time.time() >= start else "Scheduled", "StartTime": start,
                     "EndTime": start + 7 * 86400, "DurationHours": 168, "DurationMinutes": 0,
                     "TotalInstanceCount": plan["count"], "AvailableInstanceCount": plan["count"],
                     "InUseInstanceCount": 0, "TargetResources": ["training-job"],
                     "ReservedCapacitySummaries": [{
                         "ReservedCapacityArn": arn.replace(":training-plan/", ":reserved-capacity/") + "-rc1",
                         "InstanceType": plan["instance_type"], "TotalInstanceCount": plan["count"],
                         "Status": "Active" if time.time() >= start else "Scheduled",
                         "StartTime": start, "EndTime": start + 7 * 86400}]}


class PlanWait:
    """A job created on a plan that is not Active yet: InProgress/Pending until it is, then run as
    any sandbox job (start_job); a StopTrainingJob meanwhile ends it Stopped. Registered as the
    job's runner until then, so the sandbox's stop and wait_for_jobs reach it."""

    def __init__(self, sandbox, request: dict, start_job):
        self.sandbox, self.request, self.start_job = sandbox, request, start_job
        self.name = request["TrainingJobName"]
        self.stopped = threading.Event()
        self.runner = None
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"sandbox-plan-{self.name}")

    def start(self) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        self.pending = {"Status": "Pending", "StartTime": now, "StatusMessage": self.sandbox.plans.wait_message(
            self.request["ResourceConfig"]["TrainingPlanArn"])}
        self.sandbox.set_job(self.name, training_job_status="InProgress", secondary_status="Pending",
                             secondary_status_transitions=[dict(self.pending)], training_end_time=None)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.runner is not None:
            self.runner.stop()

    def _run(self) -> None:
        arn = self.request["ResourceConfig"]["TrainingPlanArn"]
        while not self.sandbox.plans.active(arn):
            if self.stopped.wait(TICK):
                now = datetime.datetime.now(datetime.timezone.utc)
                ended = [dict(self.pending, EndTime=now), {"Status": "Stopped", "StartTime": now,
                                                          "StatusMessage": "Stopped while waiting for its plan"}]
                self.sandbox.set_job(self.name, training_job_status="Stopped", secondary_status="Stopped",
                                     secondary_status_transitions=ended, training_end_time=now)
                return
        self.runner = self.start_job(self.request, [dict(self.pending)])
        if self.runner is not None:
            if self.stopped.is_set():  # stopped in the moment the plan became Active
                self.runner.stop()
            self.runner.thread.join()
