"""Compute and capacity: the instance type or its ordered list, a heterogeneous cluster's groups,
counts and run limits, spot and its fallback, the AWS Batch queue, a training plan and how long a job
may wait for capacity, the image and the process launch. Pure: judged from the option values alone.

An instance list takes one of two paths (docs: guide/capacity.md):
- on demand, one job: ResourceConfig.InstancePreferences, and SageMaker starts the job on the first
  type that has capacity ("SageMaker AI launches the job on the first type in the list that has
  capacity", train-instance-preferences.html). At most 5 types, one image for them all.
- spot (and spot falling back to on demand): one job per choice in turn, relaunched by the client
  (executors/capacity.py), because InstancePreferences "is mutually exclusive with ...
  EnableManagedSpotTraining" (API_ResourceConfig.html).
"""
from __future__ import annotations

import re

from ..errors import UsageError
from . import images
from .checks import need

KEYS = ("instance", "instance_count", "instance_group", "distribution_group", "volume_size", "max_run",
        "max_retries", "nproc_per_node", "keep_alive", "spot", "spot_fallback", "max_wait", "queue", "image",
        "framework", "framework_version", "training_image_path", "training_image_accounts", "distribution",
        "neuron_parallel_compile", "queue_share", "queue_priority", "queue_quota_share", "infra_check",
        "training_plan", "max_pending")

INSTANCE_TYPE = re.compile(r"^ml\.[a-z][a-z0-9]*(-[a-z0-9]+)?\.(\d*xlarge|large|medium|small|metal)$")
QUEUE = re.compile(r"^([a-zA-Z0-9][\w-]{0,127}|arn:aws[a-z-]*:batch:[a-z0-9-]+:\d{12}:job-queue/[\w-]{1,128})$")
# CreateQuotaShare: "up to 128 characters ... letters, numbers, hyphens (-), and underscores (_)"
QUOTA_SHARE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
SHARE_LIMIT = 255  # SubmitJob's shareIdentifier: "limited to 255 alphanumeric characters" (Batch API reference)
PRIORITY_LIMIT = 9999  # SubmitServiceJob's schedulingPriority: "integers between 0 and 9999"
# registry host (with a dot or a port, or localhost) / repository [:tag | @sha256:digest]
IMAGE_URI = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+(?::\d+)?|localhost(?::\d+)?)"
                       r"/[a-z0-9]+(?:[._\-/][a-z0-9]+)*(?::[\w][\w.\-]{0,127}|@sha256:[0-9a-f]{64})?$")
GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,63}$")
GROUP_LIMIT = 5
INSTANCE_LIMIT = 100
MAX_RUN_LIMIT = 28 * 86400
GROUP_FLAG = "--sagemaker-instance-group"
PREFERENCE_LIMIT = 5  # InstancePreferenceList: 1 to 5 members (botocore's sagemaker model)
# MaxPendingTimeInSeconds: 1800 to 2419200 (botocore's sagemaker model)
MAX_PENDING_MIN, MAX_PENDING_LIMIT = 1800, 28 * 86400
# TrainingPlanArn: 50 to 2048 characters of this pattern (botocore's sagemaker model)
TRAINING_PLAN = re.compile(r"^arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]*):[0-9]{12}:training-plan/.+$")
PLAN_FLAG = "--sagemaker-training-plan"


def compute_fields(v, region: str, *, tune: bool = False) -> dict:
    """The JobSpec fields of compute and capacity, or UsageError for the first flag that is wrong.
    tune: whether the tuning area has a tuning job (its trials take fewer settings)."""
    choices, counts = instance_choices(v["instance"])
    groups = instance_groups(v.get("instance_group") or ())
    instance, count, distribution_group = placement(v, choices, groups, counts)
    _check_limits(v, count)
    spot, max_wait = spot_fields(v)
    for key in ("training_image_path", "training_image_accounts"):
        need(not v.get(key), f"--sagemaker-{key.replace('_', '-')}", v.get(key),
             "building the training image from a Dockerfile is not supported",
             "build and push it yourself (docker build, docker push), then pass --sagemaker-image URI")
    queue = v.get("queue")
    need(not queue or bool(QUEUE.match(queue)), "--sagemaker-queue", queue, "not a job queue name or ARN",
         "use the queue's name (letters, digits, - and _) or its arn:aws:batch:...:job-queue/NAME")
    need(not (queue and len(choices) > 1), "--sagemaker-queue", queue, "a queue schedules capacity itself",
         "drop the instance list, or the queue")
    # the tuning area refuses a client-side list; an on-demand list has none, so the same line here
    need(not (tune and len(choices) > 1), "--sagemaker-instance", v["instance"], "a tuning job runs on one instance "
         "type", "give one --sagemaker-instance and no instance groups")
    share, priority, quota_share = queue_shares(v, queue)
    need(not (v["infra_check"] and tune), "--sagemaker-infra-check", "yes",
         "a tuning job's trials take no InfraCheckConfig", "drop it, or --sagemaker-tune")
    preferences = instance_preferences(v, choices, counts, spot)
    image, fallbacks = job_images(v, choices, groups, distribution_group, region, counts, bool(preferences))
    plan = training_plan(v, region, choices, groups, spot)
    return dict(
        image=image, image_given=bool(v.get("image")), instance_type=instance, instance_count=count,
        instance_fallbacks=fallbacks, instance_preferences=preferences, training_plan=plan,
        max_pending=max_pending(v, choices, groups), instance_groups=groups, distribution_group=distribution_group,
        volume_size=v["volume_size"], max_run=v["max_run"], max_retries=v["max_retries"],
        keep_alive=v["keep_alive"], spot=spot, max_wait=max_wait, spot_fallback=v["spot_fallback"], queue=queue,
        queue_share=share, queue_priority=priority, queue_quota_share=quota_share, infra_check=v["infra_check"],
        distribution=v["distribution"], nproc_per_node=v.get("nproc_per_node"),
        neuron_parallel_compile=v["neuron_parallel_compile"],
    )


def queue_shares(v, queue):
    """(share identifier, scheduling priority, quota share) of a queued job. Whether the queue wants
    a share identifier or a quota share depends on its scheduling policy, which only AWS knows: the
    launch asks (executors/queue.py), so here only the forms and that there is a queue."""
    share, priority, quota = v.get("queue_share"), v.get("queue_priority"), v.get("queue_quota_share")
    for flag, value in (("--sagemaker-queue-share", share), ("--sagemaker-queue-priority", priority),
                        ("--sagemaker-queue-quota-share", quota)):
        need(value is None or bool(queue), flag, value, "only applies to a job submitted to a queue",
             "add --sagemaker-queue QUEUE, or drop it")
    need(share is None or (0 < len(share) <= SHARE_LIMIT and not any(c.isspace() for c in share)),
         "--sagemaker-queue-share", share, f"not a share identifier (1-{SHARE_LIMIT} characters, no spaces)",
         "use the identifier the queue's fair-share policy names, e.g. --sagemaker-queue-share teamA")
    need(priority is None or 0 <= priority <= PRIORITY_LIMIT, "--sagemaker-queue-priority", priority,
         "out of range", f"use 0 to {PRIORITY_LIMIT} (higher goes first)")
    need(quota is None or bool(QUOTA_SHARE.match(quota)), "--sagemaker-queue-quota-share", quota,
         "not a quota share name", "use up to 128 letters, digits, - and _, as the queue's quota share is named")
    return share, priority, quota


def instance_choices(raw) -> tuple:
    """--sagemaker-instance: one type, or an ordered list of types to try, each TYPE or TYPE:COUNT.
    Returns (types, counts): counts is None, or one count per type (every type has one, or none:
    SageMaker "rejects requests that set InstanceCount on only some preferences", API_InstancePreference)."""
    entries = [t.strip() for t in str(raw).split(",") if t.strip()] or [""]
    choices, counts = [], []
    for entry in entries:
        choice, sep, count = entry.partition(":")
        need(bool(INSTANCE_TYPE.match(choice)), "--sagemaker-instance", entry if sep else choice,
             "not a SageMaker instance type", "use a type such as ml.m5.large, ml.g5.xlarge or ml.trn1.32xlarge")
        need(not sep or (count.isdigit() and 1 <= int(count) <= INSTANCE_LIMIT), "--sagemaker-instance", entry,
             "expected TYPE or TYPE:COUNT", f"give a count of 1 to {INSTANCE_LIMIT}, e.g. ml.p5.48xlarge:2")
        choices.append(choice)
        counts.append(int(count) if sep else None)
    need(len(set(choices)) == len(choices), "--sagemaker-instance", raw, "lists a type twice",
         "list each instance type once, in order of preference")
    need(len(set(c is None for c in counts)) == 1, "--sagemaker-instance", raw, "gives a count to some types only",
         "give every type its count (ml.p5.48xlarge:2,ml.p4d.24xlarge:4), or none and --sagemaker-instance-count")
    return choices, (None if counts[0] is None else counts)


def instance_preferences(v, choices: list, counts, spot: bool) -> tuple:
    """((type, count or None), ...) for ResourceConfig.InstancePreferences: an on-demand list of two
    or more types, which SageMaker itself chooses from; () for one type, or spot (relaunched by the
    client: InstancePreferences "is mutually exclusive with ... EnableManagedSpotTraining")."""
    if len(choices) < 2 or spot:
        return ()
    need(len(choices) <= PREFERENCE_LIMIT, "--sagemaker-instance", v["instance"],
         f"SageMaker chooses among at most {PREFERENCE_LIMIT} instance types",
         f"list at most {PREFERENCE_LIMIT}, in order of preference")
    return tuple(zip(choices, counts or [None] * len(choices)))


def instance_groups(pairs) -> tuple:
    """--sagemaker-instance-group NAME=TYPE:COUNT pairs as ((name, type, count), ...)."""
    groups = []
    for name, spec in pairs:
        kind, _, count = spec.partition(":")
        need(bool(GROUP_NAME.match(name)), GROUP_FLAG, f"{name}={spec}", "not a valid instance group name",
             "use letters, digits and hyphens, e.g. --sagemaker-instance-group gpus=ml.g5.xlarge:2")
        need(bool(INSTANCE_TYPE.match(kind)) and count.isdigit() and int(count) >= 1, GROUP_FLAG, f"{name}={spec}",
             "expected NAME=TYPE:COUNT", "e.g. --sagemaker-instance-group gpus=ml.g5.xlarge:2")
        groups.append((name, kind, int(count)))
    need(len(groups) <= GROUP_LIMIT, GROUP_FLAG, len(groups), "too many instance groups",
         f"SageMaker allows {GROUP_LIMIT}")
    return tuple(groups)


def placement(v, choices: list, groups: tuple, counts=None):
    """(instance type, instance count, distribution group). A heterogeneous cluster replaces
    --sagemaker-instance and --sagemaker-instance-count: the type is the distribution group's
    (torchrun runs there), the count every group's instances together. With per-type counts (counts),
    the first type's count stands for the job's until SageMaker has chosen."""
    distribution_group = v.get("distribution_group")
    need(not distribution_group or bool(groups), "--sagemaker-distribution-group", distribution_group,
         "only applies to a heterogeneous cluster", "add --sagemaker-instance-group NAME=TYPE:COUNT flags")
    if not groups:
        count = v["instance_count"]
        need(1 <= count <= INSTANCE_LIMIT, "--sagemaker-instance-count", count, "out of range",
             f"use 1 to {INSTANCE_LIMIT}")
        if counts:  # the built-in default 1 cannot be told from a given 1; any other count is a second answer
            need(count == 1, "--sagemaker-instance-count", count, "--sagemaker-instance gives each type its count",
                 "drop --sagemaker-instance-count, or the counts in the list")
            count = counts[0]
        return choices[0], count, distribution_group
    need(len(choices) == 1, "--sagemaker-instance", v["instance"], "an instance list does not combine with "
         "instance groups", "drop the list, or the --sagemaker-instance-group flags")
    names = [name for name, _, _ in groups]
    distribution_group = distribution_group or names[0]
    need(distribution_group in names, "--sagemaker-distribution-group", distribution_group,
         "is not one of the instance groups", "use one of: " + ", ".join(names))
    count = sum(n for _, _, n in groups)
    need(count <= INSTANCE_LIMIT, GROUP_FLAG, count, "more instances than a job may have in all",
         f"use at most {INSTANCE_LIMIT} across the groups")
    return next(kind for name, kind, _ in groups if name == distribution_group), count, distribution_group


def _check_limits(v, count: int) -> None:
    need(1 <= v["volume_size"] <= 16384, "--sagemaker-volume-size", v["volume_size"], "out of range",
         "use 1 to 16384 (GB)")
    need(1 <= v["max_run"] <= MAX_RUN_LIMIT, "--sagemaker-max-run", v["max_run"], "out of range",
         f"use 1 to {MAX_RUN_LIMIT} seconds (28 days)")
    need(0 <= v["max_retries"] <= 30, "--sagemaker-max-retries", v["max_retries"], "out of range", "use 0 to 30")
    nproc = v.get("nproc_per_node")
    need(nproc is None or 1 <= nproc <= 1024, "--sagemaker-nproc-per-node", nproc, "out of range",
         "use 1 or more processes per instance, or leave it out to use one per GPU or NeuronCore")
    need(0 <= v["keep_alive"] <= 3600, "--sagemaker-keep-alive", v["keep_alive"], "out of range",
         "use 0 to 3600 seconds")


def spot_fields(v):
    """(spot, max_wait): max_wait is None unless spot, else at least max_run (default max_run + 1h)."""
    spot, max_run = v["spot"], v["max_run"]
    need(spot or not v["spot_fallback"], "--sagemaker-spot-fallback", "yes", "only applies to spot jobs",
         "add --sagemaker-spot or drop --sagemaker-spot-fallback")
    max_wait = v.get("max_wait")
    if max_wait is not None and not spot:
        raise UsageError("--sagemaker-max-wait", max_wait, "only applies to spot jobs",
                         "add --sagemaker-spot or drop --sagemaker-max-wait")
    if not spot:
        return False, None
    max_wait = max_run + 3600 if max_wait is None else max_wait
    need(max_wait >= max_run, "--sagemaker-max-wait", max_wait, f"must be at least --sagemaker-max-run ({max_run})",
         f"raise --sagemaker-max-wait to {max_run} or more, or lower --sagemaker-max-run")
    need(max_wait <= 2 * MAX_RUN_LIMIT, "--sagemaker-max-wait", max_wait, "too long",
         f"use at most {2 * MAX_RUN_LIMIT} seconds")
    return spot, max_wait


def job_images(v, choices: list, groups: tuple, distribution_group: str, region: str, counts=None,
               preferences: bool = False):
    """(image, ((type, image, count), ...) for the rest of a client-side instance list). A
    heterogeneous cluster runs one image: --sagemaker-image, or the default for the distribution
    group's type (the --sagemaker-instance value it replaces has no say). So does an on-demand list
    (one request, one TrainingImage): its types' default images must be one, else --sagemaker-image."""
    image = v.get("image")
    if image:
        need(len(image) <= 255 and bool(IMAGE_URI.match(image)), "--sagemaker-image", image,
             "not a container image URI", "use e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/my-image:1.0")
    if groups:
        kind, count = next((kind, n) for name, kind, n in groups if name == distribution_group)
        return image or default_image(v, kind, region, GROUP_FLAG, f"{distribution_group}={kind}:{count}"), ()
    by_choice = {choice: image or default_image(v, choice, region) for choice in choices}
    if preferences:
        label = {"gpu": "GPU image", "cpu": "CPU image", "trainium": "Neuron image"}
        kinds = {label.get(images.device_kind(c)): c for c in choices}
        need(len(set(by_choice.values())) == 1, "--sagemaker-instance", v["instance"],
             "one job runs one image, and these types need different default images ("
             + ", ".join(f"{c}: {k}" for k, c in kinds.items()) + ")",
             "list types of one kind (GPU, CPU or Trainium), or pass --sagemaker-image URI for them all")
        return by_choice[choices[0]], ()
    counts = counts or [None] * len(choices)
    return by_choice[choices[0]], tuple((c, by_choice[c], n) for c, n in zip(choices[1:], counts[1:]))


def training_plan(v, region: str, choices: list, groups: tuple, spot: bool):
    """--sagemaker-training-plan: ResourceConfig.TrainingPlanArn, checked offline. SageMaker's rules
    (use-training-plan-for-training-jobs-using-api-cli-sdk.html): "You can use exactly one plan per
    job", and "The InstanceType field ... must match the InstanceType of your training plan" -- so
    one instance type, not a list or groups. The plan's capacity is reserved and paid for: not
    spot. A queue's payload and a tuning job's trials carry it as they carry ResourceConfig
    (service-job-payload.html: "All parameters supported by CreateTrainingJob can be included")."""
    arn = v.get("training_plan")
    if not arn:
        return None
    match = TRAINING_PLAN.match(arn)
    need(bool(match) and 50 <= len(arn) <= 2048, PLAN_FLAG, arn, "not a training plan ARN",
         "use the plan's arn:aws:sagemaker:REGION:ACCOUNT:training-plan/NAME (aws sagemaker list-training-plans)")
    need(match.group(1) in ("", region), PLAN_FLAG, arn, f"the plan is in {match.group(1)}, the job in {region}",
         f"run the job in {match.group(1)} (--sagemaker-region), or use a plan of {region}")
    need(not groups, PLAN_FLAG, arn, "a training plan reserves one instance type, and a heterogeneous cluster has "
         "several", "drop the --sagemaker-instance-group flags, and give the plan's type as --sagemaker-instance")
    need(len(choices) == 1, PLAN_FLAG, arn, "a training plan reserves one instance type, which the job's must match",
         "give the plan's instance type alone as --sagemaker-instance")
    need(not spot, PLAN_FLAG, arn, "a training plan runs the job on its reserved capacity, not on spot",
         "drop --sagemaker-spot (and --sagemaker-spot-fallback), or the plan")
    return arn


def max_pending(v, choices: list, groups: tuple):
    """--sagemaker-max-pending: StoppingCondition.MaxPendingTimeInSeconds. It "takes effect only for
    jobs that request accelerated computing instance types, such as instances in the ml.p, ml.g, and
    ml.trn families", and for a list "only when the list includes at least one accelerated computing
    instance type" (API_StoppingCondition.html): a job of CPU types only is told so, not sent it."""
    seconds = v.get("max_pending")
    if seconds is None:
        return None
    need(MAX_PENDING_MIN <= seconds <= MAX_PENDING_LIMIT, "--sagemaker-max-pending", seconds, "out of range",
         f"use {MAX_PENDING_MIN} to {MAX_PENDING_LIMIT} seconds (30m to 28d)")
    kinds = [kind for _, kind, _ in groups] if groups else choices
    need(any(images.device_kind(k) in ("gpu", "trainium") for k in kinds), "--sagemaker-max-pending", seconds,
         "SageMaker bounds the pending time only of GPU and Trainium jobs (ml.p, ml.g, ml.trn), and "
         + ", ".join(kinds) + (" is" if len(kinds) == 1 else " are") + " CPU-only",
         "drop it, or use a GPU or Trainium instance type")
    return seconds


def default_image(v, instance: str, region: str, flag="--sagemaker-instance", value=None) -> str:
    try:
        return images.default_image(v["framework"], v["framework_version"], instance, region)
    except images.UnknownFamily as err:
        raise UsageError(flag, value or instance, str(err), "pass --sagemaker-image URI with an image for it") from None
    except ValueError as err:
        raise UsageError("--sagemaker-framework-version", v["framework_version"], str(err),
                         "pick a listed version or pass --sagemaker-image URI") from None
