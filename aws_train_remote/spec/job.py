"""JobSpec: everything the user asked for, as one frozen validated value.

build_job_spec checks each case of design.md section 6 that can be judged without AWS and
raises UsageError naming the flag, the value and the fix. Nothing here touches the network.
The checks live by area, each a small pure function that owns its options (checks.py says how):
compute.py (compute and capacity), storage.py, security.py (network and security), tracking.py,
source.py, data.py, debugging.py, tuning.py and cost.py (budget and notice); this module judges the
run control and the job names, and puts the parts together.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .. import contract
from . import compute, cost, data, debugging, naming, security, source, storage, tracking, tuning
from .checks import area_values, need
from .data import JOB_MODEL, MODEL_CHANNEL, InputSpec, model_input  # noqa: F401 (their home was here)
from .source import DependencySpec  # noqa: F401
from .storage import BUCKET  # noqa: F401

# the options this module judges itself: run control and the job's names
KEYS = ("run", "wait", "dry_run", "config", "profile", "region", "output_json", "stop_on_interrupt", "job_name",
        "base_job_name")

REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")


@dataclass(frozen=True)
class JobSpec:
    run: str
    wait: bool
    dry_run: bool
    stop_on_interrupt: bool
    region: str
    profile: str
    job_name: str
    base_job_name: str
    explicit_job_name: bool  # given by the user: a collision is an error, not a reason to rename
    role: str  # name or ARN as given; the launcher turns a name into an ARN
    image: str
    instance_type: str
    instance_count: int
    volume_size: int
    max_run: int
    spot: bool
    max_wait: int  # None unless spot
    max_retries: int
    keep_alive: int
    environment: tuple  # ((key, value), ...)
    tags: tuple
    metrics: tuple
    distribution: str
    nproc_per_node: int
    neuron_parallel_compile: bool
    simulate_interruption: tuple  # seconds after each (re)start of the script, local mode only; () none
    bucket: str  # None: sagemaker-<region>-<account>, known only after an STS call
    prefix: str
    output_s3: str  # None: derived from bucket/prefix
    checkpoint_s3: str  # "auto", "none" or s3 URI
    checkpoint_container: str
    checkpoint_initial: str
    fresh_start: bool
    neuron_cache: str  # "auto", "none" or s3 URI
    download: bool
    kms_key: str
    volume_kms_key: str
    subnets: tuple
    security_groups: tuple
    network_isolation: bool
    encrypt_inter_container: bool
    source_dir: str
    script: str  # relative to source_dir, posix
    requirements: str  # relative to source_dir, posix, or None
    inputs: tuple  # InputSpec, ...
    dependencies: tuple  # DependencySpec, ...
    container_argv: tuple  # the user's argv minus the flags the container replaces
    hyperparameters: tuple  # ((name, json text), ...) readable copies of the script's own args
    path_flags: dict = field(default_factory=dict)  # how the runtime re-adds the path flags
    launch_token: str = ""  # unique to this launch; tagged on the job so a retried create adopts it
    image_given: bool = False  # --sagemaker-image, not a default from the table
    model_dir: str = None
    local_output_dir: str = None
    local_checkpoint_dir: str = None
    output_json: str = None  # --sagemaker-output-json FILE, absolute
    instance_fallbacks: tuple = ()  # ((type, image, count or None), ...): the rest of a spot list, in order
    instance_preferences: tuple = ()  # ((type, count or None), ...): an on-demand list, SageMaker's to choose from
    training_plan: str = None  # ResourceConfig.TrainingPlanArn
    max_pending: int = None  # StoppingCondition.MaxPendingTimeInSeconds
    queue: str = None  # an AWS Batch job queue (name or ARN): SubmitServiceJob instead of CreateTrainingJob
    tune: object = None  # spec.tuning.TuneSpec: a hyperparameter tuning job instead of one training job
    mlflow: str = None  # tracking URI or managed MLflow ARN
    mlflow_experiment: str = None
    mlflow_run_id: str = None  # the launch's run, known only once the launcher created it
    tuning_job_name: str = None
    instance_groups: tuple = ()  # ((name, type, count), ...): a heterogeneous cluster
    distribution_group: str = None  # the group torchrun runs on (instance_type is its type)
    spot_fallback: bool = False
    experiment_name: str = None
    trial_name: str = None
    experiment_run: str = None  # ExperimentConfig.RunName
    queue_share: str = None  # SubmitServiceJob's shareIdentifier (a fair-share queue)
    queue_priority: int = None  # SubmitServiceJob's schedulingPriority
    queue_quota_share: str = None  # SubmitServiceJob's quotaShareName (a quota-share queue)
    infra_check: bool = False  # InfraCheckConfig.EnableInfraCheck
    session_chaining: bool = False  # SessionChainingConfig.EnableSessionTagChaining
    output_compression: str = "gzip"  # OutputDataConfig.CompressionType, lower case: gzip or none
    tensorboard: str = None  # TensorBoardOutputConfig: None (off), "auto" or an s3:// URI ending in /
    local_tensorboard_dir: str = None  # --tensorboard-dir, absolute
    debug: bool = False  # RemoteDebugConfig.EnableRemoteDebug: `aws-train-remote shell` may open a shell
    keep_on_failure: int = 0  # seconds the runtime keeps a failed script's container up (never past max_run)
    budget: float = None  # --sagemaker-budget: the most a launch's worst case may cost, USD
    budget_unknown_ok: bool = False  # the budget lets a launch of unknown price go on
    notify: bool = False  # tagged for `aws-train-remote notify setup`'s rule

    @property
    def trainium(self) -> bool:
        return contract.is_trainium(self.instance_type)


def resolve_region(explicit, environ, aws_config_text: str = None, profile: str = None):
    """Region without boto3: flag/config, AWS_REGION, AWS_DEFAULT_REGION, then ~/.aws/config."""
    if explicit:
        return explicit
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if environ.get(name):
            return environ[name]
    if aws_config_text:
        import configparser

        parser = configparser.ConfigParser()
        try:
            parser.read_string(aws_config_text)
        except configparser.Error:
            return None
        name = profile or environ.get("AWS_PROFILE") or "default"
        section = "default" if name == "default" else f"profile {name}"
        if parser.has_option(section, "region"):
            return parser.get(section, "region")
    return None


def build_job_spec(values_by_key: dict, definition, namespace, *, container_argv, user_dests,
                   path_flags, cwd, environ, now, token, launch_token="", aws_config_text=None,
                   tunable=None) -> JobSpec:
    """Validate everything judgeable offline and return the frozen spec.

    values_by_key: final option values (every layer merged); namespace: the parsed args, for
    inputs/dependencies/the script's own flags; now/token/launch_token: clock and randomness,
    passed in (token: the job name's suffix; launch_token: the tag that makes creation idempotent).
    The areas are judged in this order, so of two mistakes the earlier area's is the one reported.
    """
    def own(area):
        return area_values(values_by_key, area.KEYS)

    v = area_values(values_by_key, KEYS)
    local = v["run"] == "local" and not v["dry_run"]
    region = _region(v, environ, aws_config_text, local)
    tune = bool(values_by_key.get("tune"))  # a tuning job's trials take fewer settings: areas refuse the rest
    capacity = compute.compute_fields(own(compute), region, tune=tune)
    debug = debugging.debugging_fields(own(debugging), run=v["run"], network_isolation=bool(
        values_by_key.get("network_isolation")), tune=bool(values_by_key.get("tune")))
    stored = storage.storage_fields(own(storage), spot=capacity["spot"], cwd=cwd, tune=tune)
    names = _names(v, definition.script, now, token)
    secured = security.security_fields(own(security), local=local, tune=tune)
    tracked = tracking.tracking_fields(own(tracking), cwd=cwd, base_job_name=names["base_job_name"], tune=tune)
    tuned = tuning.tuning_fields(  # instance: --sagemaker-instance as given, for its one-line refusal
        own(tuning), cwd=cwd, tunable=tunable, metrics=tracked["metrics"], instance=values_by_key["instance"],
        queue=capacity["queue"], instance_fallbacks=capacity["instance_fallbacks"],
        instance_groups=capacity["instance_groups"], spot_fallback=capacity["spot_fallback"],
        simulate_interruption=debug["simulate_interruption"], base_job_name=names["base_job_name"], now=now,
        token=token)
    code = source.source_fields(own(source), definition, namespace, cwd=cwd)
    budgeted = cost.cost_fields(own(cost))
    inputs = data.data_fields(own(data), definition, namespace, cwd=cwd, run=v["run"],
                              instance_groups=capacity["instance_groups"], subnets=secured["subnets"],
                              source_dir=code["source_dir"], instance_type=capacity["instance_type"],
                              neuron_cache=stored["neuron_cache"])
    # readable copies only (the exact argv travels apart): one too long for SageMaker is left out
    # when the request is built, never refused (plan.request.hyperparameters)
    hyperparameters = [(dest, contract.encode_hyperparameter(getattr(namespace, dest, None))) for dest in user_dests]
    return JobSpec(
        run=v["run"], wait=v["wait"], dry_run=v["dry_run"], stop_on_interrupt=v["stop_on_interrupt"],
        region=region, profile=v.get("profile"),
        output_json=os.path.abspath(os.path.join(cwd, v["output_json"])) if v.get("output_json") else None,
        container_argv=tuple(container_argv), hyperparameters=tuple(hyperparameters), path_flags=path_flags,
        launch_token=launch_token, **names, **capacity, **debug, **stored, **secured, **tracked, **tuned, **code,
        **inputs, **budgeted,
    )


def _region(v, environ, aws_config_text, local: bool) -> str:
    region = resolve_region(v.get("region"), environ, aws_config_text, v.get("profile"))
    if local and region is None:
        region = "us-east-1"  # only names the default image; nothing leaves this machine
    need(region is not None, "--sagemaker-region", None, "no AWS region set",
         "pass --sagemaker-region us-east-1 or set AWS_REGION")
    need(bool(REGION.match(region)), "--sagemaker-region", region, "not an AWS region name",
         "use a name such as us-east-1 or eu-west-1")
    return region


def _names(v, script: str, now, token) -> dict:
    """The base job name (default: the script's name) and the job's name (default: unique)."""
    base = v.get("base_job_name")
    if base:
        need(naming.is_valid_job_name(base), "--sagemaker-base-job-name", base,
             "only letters, digits and single hyphens are allowed", "e.g. --sagemaker-base-job-name my-model")
    else:
        base = naming.sanitize_base(os.path.splitext(os.path.basename(script))[0])
    job_name = v.get("job_name")
    if job_name:
        need(len(job_name) <= naming.JOB_NAME_LIMIT, "--sagemaker-job-name", job_name,
             f"longer than {naming.JOB_NAME_LIMIT} characters", "shorten it or use --sagemaker-base-job-name")
        need(naming.is_valid_job_name(job_name), "--sagemaker-job-name", job_name,
             "only letters, digits and hyphens, starting with a letter or digit",
             "e.g. --sagemaker-job-name my-model-2")
    else:
        job_name = naming.unique_job_name(base, now, token)
    return dict(base_job_name=base, job_name=job_name, explicit_job_name=bool(v.get("job_name")))
