"""What a training job runs on, read from DescribeTrainingJob: the instance type and count (SageMaker's
choice when the request gave InstancePreferences), and the wait of a job on its training plan.

SageMaker answers the choice in ResourceConfig.SelectedInstanceType and SelectedInstanceCount
"after an instance type is selected" (botocore's sagemaker model, ResourceConfig); before that the
job has no one type. A job on a training plan "remain[s] in Pending status until the plan becomes
Active" (training-plan-details-using-api-cli-sdk.html).
"""
from __future__ import annotations

# SageMaker's own limit for a job waiting for capacity when MaxPendingTimeInSeconds is not set:
# "If a job has been pending for 2 days, it is terminated with an InsufficientCapacityError"
# (training-plan-utilization-for-training-jobs.html)
DEFAULT_PENDING_LIMIT = "2 days"


def resources(desc: dict) -> dict:
    return desc.get("ResourceConfig") or {}


def selected(desc: dict) -> tuple:
    """(instance type, count) the job runs on: SageMaker's selection from InstancePreferences once
    made ((None, None) before), else the request's own; (None, None) for a heterogeneous cluster."""
    found = resources(desc)
    if found.get("InstancePreferences"):
        return found.get("SelectedInstanceType"), found.get("SelectedInstanceCount")
    return found.get("InstanceType"), found.get("InstanceCount")


def preference_list(desc: dict) -> str:
    """'ml.g5.xlarge:2, ml.g6.xlarge:4' (counts when the request gave one per type), or ''."""
    return ", ".join(p.get("InstanceType", "?") + (f":{p['InstanceCount']}" if p.get("InstanceCount") else "")
                     for p in resources(desc).get("InstancePreferences") or [])


def plan_name(arn: str) -> str:
    """The plan's name: the part of its ARN after training-plan/."""
    return (arn or "").split(":training-plan/", 1)[-1]


def instances_text(desc: dict) -> str:
    """The `status` line's words: '2 x ml.g6.xlarge (SageMaker's choice from ml.g5.xlarge:2,
    ml.g6.xlarge:4)', 'gpu 1 x ml.g5.xlarge, cpu 2 x ml.c5.xlarge', '1 x ml.p5.48xlarge on training
    plan NAME'."""
    found = resources(desc)
    if found.get("InstanceGroups"):
        text = ", ".join(f"{g.get('InstanceGroupName')} {g.get('InstanceCount')} x {g.get('InstanceType')}"
                         for g in found["InstanceGroups"])
    else:
        kind, count = selected(desc)
        listed = preference_list(desc)
        if listed and kind:
            text = f"{count} x {kind} (SageMaker's choice from {listed})"
        elif listed:
            text = f"one of {listed} (SageMaker has not chosen yet)"
        else:
            text = f"{count} x {kind}"
    if found.get("TrainingPlanArn"):
        text += f" on training plan {plan_name(found['TrainingPlanArn'])}"
    return text


def instances_short(desc: dict) -> str:
    """The `list` column: '2 x ml.g6.xlarge', 'one of 2 types' before SageMaker chose, '3 in 2 groups'."""
    found = resources(desc)
    groups = found.get("InstanceGroups")
    if groups:
        return f"{sum(int(g.get('InstanceCount') or 0) for g in groups)} in {len(groups)} groups"
    kind, count = selected(desc)
    if kind is None:
        return f"one of {len(found.get('InstancePreferences') or [])} types"
    return f"{count} x {kind}"


def wants_summary_line(desc: dict) -> bool:
    """Whether the end-of-job summary names the instances: when SageMaker chose them, or a plan gave them."""
    found = resources(desc)
    return bool(found.get("InstancePreferences") or found.get("TrainingPlanArn"))


def plan_wait_line(desc: dict, plan: dict = None) -> str:
    """What a job Pending on its training plan waits for and how long it may wait. `plan`: the
    plan's DescribeTrainingPlan answer, when it could be read (its status and start)."""
    import datetime

    from .jobs import duration

    arn = resources(desc).get("TrainingPlanArn")
    state = ""
    if plan and plan.get("Status"):
        start = plan.get("StartTime")
        if plan["Status"] == "Scheduled" and hasattr(start, "astimezone"):
            when = start.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
            state = f" (Scheduled: its capacity starts {when} UTC)"
        else:
            state = f" ({plan['Status']})"
    pending = (desc.get("StoppingCondition") or {}).get("MaxPendingTimeInSeconds")
    limit = (f"SageMaker stops it after {duration(pending)} pending on the Active plan (--sagemaker-max-pending)"
             if pending else f"without --sagemaker-max-pending, SageMaker ends a job pending for capacity after "
                             f"{DEFAULT_PENDING_LIMIT}")
    return (f"waiting for training plan {plan_name(arn)}{state}: the job starts when the plan's capacity is free; "
            f"{limit}")


def capacity_notes(desc: dict, said: set, describe_plan=None) -> list:
    """The lines a follow prints once each: the type SageMaker selected, and the wait of a job on its
    plan. `said` holds what was printed (a second follow prints nothing again); describe_plan(arn)
    returns the plan's description or None (it is only worth a call when the line is printed)."""
    found, lines = resources(desc), []
    kind, count = selected(desc)
    if found.get("InstancePreferences") and kind and ("selected", kind) not in said:
        said.add(("selected", kind))
        lines.append(f"SageMaker selected {count} x {kind}, the first with capacity of {preference_list(desc)}")
    if found.get("TrainingPlanArn") and desc.get("SecondaryStatus") == "Pending" and ("plan", "Pending") not in said:
        said.add(("plan", "Pending"))
        lines.append(plan_wait_line(desc, describe_plan(found["TrainingPlanArn"]) if describe_plan else None))
    return lines


def describe_plan_or_none(sm, arn: str):
    """DescribeTrainingPlan, or None when it cannot be read (no permission, say): the line says less."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return sm.describe_training_plan(TrainingPlanName=arn)
    except (ClientError, BotoCoreError):
        return None
