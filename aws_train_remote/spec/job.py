"""JobSpec: everything the user asked for, as one frozen validated value.

build_job_spec checks each case of design.md section 6 that can be judged without AWS and
raises UsageError naming the flag, the value and the fix. Nothing here touches the network.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .. import contract
from ..errors import UsageError
from . import images, naming, values

INSTANCE_TYPE = re.compile(r"^ml\.[a-z][a-z0-9]*(-[a-z0-9]+)?\.(\d*xlarge|large|medium|small|metal)$")
REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@\-/]{1,512}$")
ROLE_NAME = re.compile(r"^[\w+=,.@\-]{1,64}$")
QUEUE = re.compile(r"^([a-zA-Z0-9][\w-]{0,127}|arn:aws[a-z-]*:batch:[a-z0-9-]+:\d{12}:job-queue/[\w-]{1,128})$")
EXPERIMENT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,119}$")
ENV_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,511}$")
SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
# registry host (with a dot or a port, or localhost) / repository [:tag | @sha256:digest]
IMAGE_URI = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+(?::\d+)?|localhost(?::\d+)?)"
                       r"/[a-z0-9]+(?:[._\-/][a-z0-9]+)*(?::[\w][\w.\-]{0,127}|@sha256:[0-9a-f]{64})?$")
CREDENTIAL_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "AWS_SECURITY_TOKEN")

ENV_LIMIT = 100  # CreateTrainingJob Environment: at most 100 entries, 512 characters each
TAG_LIMIT = 50
OWN_TAGS = 5  # version, launch token, git commit, git dirty, MLflow run
METRIC_LIMIT = 40
MAX_RUN_LIMIT = 28 * 86400


@dataclass(frozen=True)
class InputSpec:
    name: str
    location: str  # absolute local path or s3:// URI
    mode: str  # File, FastFile or Pipe
    flag: str
    single_file: bool = False  # a local file, not a folder: the channel holds just it
    distribution: str = "replicated"  # or "sharded": each instance gets about 1/N of the files
    suffix: str = ""  # a path inside the channel that args.<name> points at (aws-sagemaker-remote)
    model_init: bool = False  # the 'model' channel of --sagemaker-model-from: unpacked for args.model_init
    local: str = None  # efs:// or fsx:// inputs: the local folder that stands for it (--<input>-local)
    instance_groups: tuple = ()  # a heterogeneous cluster: only these groups get the input

    @property
    def is_s3(self) -> bool:
        return values.is_s3_uri(self.location)

    @property
    def is_fs(self) -> bool:
        return values.is_fs_uri(self.location)

    @property
    def is_remote(self) -> bool:
        """Read where it is (S3 or a file system), never uploaded."""
        return self.is_s3 or self.is_fs


@dataclass(frozen=True)
class DependencySpec:
    name: str
    folder: str  # absolute
    flag: str

    @property
    def bundle_path(self) -> str:
        """Where the folder lands inside the code bundle; its parent goes on PYTHONPATH."""
        return f"_atr_deps/{self.name}/{os.path.basename(self.folder.rstrip(os.sep))}"


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
    instance_fallbacks: tuple = ()  # ((type, image), ...): the rest of --sagemaker-instance's list, in order
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

    @property
    def trainium(self) -> bool:
        return contract.is_trainium(self.instance_type)


def _need(condition: bool, flag: str, value, problem: str, fix: str) -> None:
    if not condition:
        raise UsageError(flag, value, problem, fix)


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


def _location_or_s3(flag, raw, base_dir, must_exist=True) -> str:
    if values.is_s3_uri(raw):
        try:
            contract.split_s3(raw)
        except ValueError as err:
            raise UsageError(flag, raw, "malformed S3 URI", str(err)) from None
        return raw
    path = os.path.abspath(os.path.join(base_dir, os.path.expanduser(str(raw))))
    if must_exist:
        _need(os.path.exists(path), flag, raw, "no such local file or folder",
              "create it, fix the path, or give an s3:// URI")
    return path


MODEL_CHANNEL = "model"
JOB_MODEL = "job:"  # a model_from location still to be looked up: the model of this job


def model_input(raw: str, inputs, cwd: str) -> InputSpec:
    """--sagemaker-model-from as the 'model' channel: an s3:// URI, a local model.tar.gz or folder
    (uploaded like any input), or a job name (JOB_MODEL + name, looked up at launch)."""
    flag = "--sagemaker-model-from"
    _need(all(i.name != MODEL_CHANNEL for i in inputs), flag, raw, "the script already has an input named "
          f"{MODEL_CHANNEL!r}, the channel the earlier model travels in", "rename that input")
    if values.is_s3_uri(raw):
        location = _location_or_s3(flag, raw, cwd)
        single = not location.endswith("/")
    elif os.path.exists(os.path.join(cwd, os.path.expanduser(raw))):
        location = os.path.abspath(os.path.join(cwd, os.path.expanduser(raw)))
        single = os.path.isfile(location)
    elif naming.is_valid_job_name(raw) and "." not in raw:
        location, single = JOB_MODEL + raw, True
    else:
        raise UsageError(flag, raw, "neither a job name, an s3:// URI, nor a local model.tar.gz or folder",
                         "e.g. --sagemaker-model-from demo-20261123-101500-a1b2c3")
    return InputSpec(MODEL_CHANNEL, location, "File", "--model-init", single_file=single, model_init=True)


GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,63}$")
GROUP_LIMIT = 5


def _instance_groups(pairs) -> tuple:
    """--sagemaker-instance-group NAME=TYPE:COUNT pairs as ((name, type, count), ...)."""
    flag = "--sagemaker-instance-group"
    groups = []
    for name, spec in pairs:
        kind, _, count = spec.partition(":")
        _need(bool(GROUP_NAME.match(name)), flag, f"{name}={spec}", "not a valid instance group name",
              "use letters, digits and hyphens, e.g. --sagemaker-instance-group gpus=ml.g5.xlarge:2")
        _need(bool(INSTANCE_TYPE.match(kind)) and count.isdigit() and int(count) >= 1, flag, f"{name}={spec}",
              "expected NAME=TYPE:COUNT", "e.g. --sagemaker-instance-group gpus=ml.g5.xlarge:2")
        groups.append((name, kind, int(count)))
    _need(len(groups) <= GROUP_LIMIT, flag, len(groups), "too many instance groups",
          f"SageMaker allows {GROUP_LIMIT}")
    return tuple(groups)


MLFLOW_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-(tracking-server|app)/[\w-]+$")


def _mlflow_uri(raw, cwd: str):
    """--sagemaker-mlflow as the job will use it: a relative file: store made absolute."""
    if not raw:
        return None
    if raw.startswith("file:"):
        path = raw[len("file://"):] if raw.startswith("file://") else raw[len("file:"):]
        return "file://" + os.path.abspath(os.path.join(cwd, path))
    _need(raw.startswith(("http://", "https://", "databricks")) or bool(MLFLOW_ARN.match(raw)), "--sagemaker-mlflow",
          raw, "not an MLflow tracking URI or a SageMaker MLflow ARN",
          "use e.g. https://mlflow.example.com, file:/path/mlruns or arn:aws:sagemaker:...:mlflow-tracking-server/NAME")
    return raw


def _tune_spec(raw, cwd: str, tunable: dict, metrics):
    """--sagemaker-tune FILE (YAML) or the tune= mapping, parsed and checked."""
    from . import tuning

    if isinstance(raw, str):
        path = os.path.join(cwd, os.path.expanduser(raw))
        _need(os.path.isfile(path), tuning.FLAG, raw, "no such file", "give the tuning spec's YAML file")
        from .config import read_yaml

        raw = read_yaml(path)
    return tuning.parse_tune(raw, tunable, metrics)


def _default_image(v, instance: str, region: str) -> str:
    try:
        return images.default_image(v["framework"], v["framework_version"], instance, region)
    except images.UnknownFamily as err:
        raise UsageError("--sagemaker-instance", instance, str(err),
                         "pass --sagemaker-image URI with an image for it") from None
    except ValueError as err:
        raise UsageError("--sagemaker-framework-version", v["framework_version"], str(err),
                         "pick a listed version or pass --sagemaker-image URI") from None


def _auto_s3(flag, raw) -> str:
    text = str(raw)
    if text.lower() == "default":  # aws-sagemaker-remote's word for auto
        return "auto"
    if text.lower() in ("auto", "none"):
        return text.lower()
    try:
        contract.split_s3(text)
    except ValueError as err:
        raise UsageError(flag, raw, "expected auto, none or an s3:// URI", str(err)) from None
    return text


def build_job_spec(values_by_key: dict, definition, namespace, *, container_argv, user_dests,
                   path_flags, cwd, environ, now, token, launch_token="", aws_config_text=None,
                   tunable=None) -> JobSpec:
    """Validate everything judgeable offline and return the frozen spec.

    values_by_key: final option values (every layer merged); namespace: the parsed args, for
    inputs/dependencies/the script's own flags; now/token/launch_token: clock and randomness,
    passed in (token: the job name's suffix; launch_token: the tag that makes creation idempotent).
    """
    v = values_by_key
    script_dir = os.path.dirname(definition.script)

    local = v["run"] == "local" and not v["dry_run"]
    region = resolve_region(v.get("region"), environ, aws_config_text, v.get("profile"))
    if local and region is None:
        region = "us-east-1"  # only names the default image; nothing leaves this machine
    _need(region is not None, "--sagemaker-region", None, "no AWS region set",
          "pass --sagemaker-region us-east-1 or set AWS_REGION")
    _need(bool(REGION.match(region)), "--sagemaker-region", region, "not an AWS region name",
          "use a name such as us-east-1 or eu-west-1")

    choices = [t.strip() for t in str(v["instance"]).split(",") if t.strip()] or [""]
    for choice in choices:
        _need(bool(INSTANCE_TYPE.match(choice)), "--sagemaker-instance", choice,
              "not a SageMaker instance type", "use a type such as ml.m5.large, ml.g5.xlarge or ml.trn1.32xlarge")
    _need(len(set(choices)) == len(choices), "--sagemaker-instance", v["instance"], "lists a type twice",
          "list each instance type once, in order of preference")
    instance, fallbacks = choices[0], tuple(choices[1:])
    cluster_groups = _instance_groups(v.get("instance_group") or ())
    distribution_group = v.get("distribution_group")
    _need(not distribution_group or bool(cluster_groups), "--sagemaker-distribution-group", distribution_group,
          "only applies to a heterogeneous cluster", "add --sagemaker-instance-group NAME=TYPE:COUNT flags")
    if cluster_groups:
        _need(not fallbacks, "--sagemaker-instance", v["instance"], "an instance list does not combine with "
              "instance groups", "drop the list, or the --sagemaker-instance-group flags")
        names = [g[0] for g in cluster_groups]
        distribution_group = distribution_group or names[0]
        _need(distribution_group in names, "--sagemaker-distribution-group", distribution_group,
              "is not one of the instance groups", "use one of: " + ", ".join(names))
        instance = next(kind for name, kind, _ in cluster_groups if name == distribution_group)
        v = {**v, "instance_count": sum(count for _, _, count in cluster_groups)}
    count = v["instance_count"]
    _need(1 <= count <= 100, "--sagemaker-instance-count", count, "out of range", "use 1 to 100")
    _need(1 <= v["volume_size"] <= 16384, "--sagemaker-volume-size", v["volume_size"], "out of range",
          "use 1 to 16384 (GB)")
    max_run = v["max_run"]
    _need(1 <= max_run <= MAX_RUN_LIMIT, "--sagemaker-max-run", max_run, "out of range",
          f"use 1 to {MAX_RUN_LIMIT} seconds (28 days)")
    _need(0 <= v["max_retries"] <= 30, "--sagemaker-max-retries", v["max_retries"], "out of range", "use 0 to 30")
    nproc = v.get("nproc_per_node")
    _need(nproc is None or 1 <= nproc <= 1024, "--sagemaker-nproc-per-node", nproc, "out of range",
          "use 1 or more processes per instance, or leave it out to use one per GPU or NeuronCore")
    _need(0 <= v["keep_alive"] <= 3600, "--sagemaker-keep-alive", v["keep_alive"], "out of range",
          "use 0 to 3600 seconds")

    spot = v["spot"]
    _need(spot or not v["spot_fallback"], "--sagemaker-spot-fallback", "yes", "only applies to spot jobs",
          "add --sagemaker-spot or drop --sagemaker-spot-fallback")
    max_wait = v.get("max_wait")
    if max_wait is not None and not spot:
        raise UsageError("--sagemaker-max-wait", max_wait, "only applies to spot jobs",
                         "add --sagemaker-spot or drop --sagemaker-max-wait")
    if spot:
        max_wait = max_run + 3600 if max_wait is None else max_wait
        _need(max_wait >= max_run, "--sagemaker-max-wait", max_wait,
              f"must be at least --sagemaker-max-run ({max_run})",
              f"raise --sagemaker-max-wait to {max_run} or more, or lower --sagemaker-max-run")
        _need(max_wait <= 2 * MAX_RUN_LIMIT, "--sagemaker-max-wait", max_wait, "too long",
              f"use at most {2 * MAX_RUN_LIMIT} seconds")

    if v.get("simulate_interruption") is not None and v["run"] != "local":
        raise UsageError("--sagemaker-simulate-interruption", ",".join(map(str, v["simulate_interruption"])),
                         "only applies to --sagemaker-run local", "add --sagemaker-run local")
    checkpoint_s3 = _auto_s3("--sagemaker-checkpoint-s3", v["checkpoint_s3"])
    if spot and checkpoint_s3 == "none" and not v["spot_force"]:
        raise UsageError("--sagemaker-checkpoint-s3", "none", "a spot job without a checkpoint location "
                         "restarts from scratch after every interruption",
                         "keep the default (auto) or pass --sagemaker-spot-force to accept that")
    neuron_cache = _auto_s3("--sagemaker-neuron-cache", v["neuron_cache"])
    checkpoint_container = v["checkpoint_container"]
    _need(checkpoint_container.startswith("/"), "--sagemaker-checkpoint-container", checkpoint_container,
          "must be an absolute path in the container", "use e.g. /opt/ml/checkpoints")
    checkpoint_initial = v.get("checkpoint_initial")
    if checkpoint_initial:
        checkpoint_initial = _location_or_s3("--checkpoint-initial", checkpoint_initial, cwd)
        _need(checkpoint_s3 != "none", "--checkpoint-initial", v.get("checkpoint_initial"),
              "needs a checkpoint location to seed", "drop --sagemaker-checkpoint-s3 none")
    _need(not (v["fresh_start"] and checkpoint_s3 == "none"), "--sagemaker-fresh-start", "yes",
          "there is no checkpoint location to start fresh from", "drop --sagemaker-checkpoint-s3 none or this flag")

    # job and base names
    base = v.get("base_job_name")
    if base:
        _need(naming.is_valid_job_name(base), "--sagemaker-base-job-name", base,
              "only letters, digits and single hyphens are allowed", "e.g. --sagemaker-base-job-name my-model")
    else:
        base = naming.sanitize_base(os.path.splitext(os.path.basename(definition.script))[0])
    job_name = v.get("job_name")
    if job_name:
        _need(len(job_name) <= naming.JOB_NAME_LIMIT, "--sagemaker-job-name", job_name,
              f"longer than {naming.JOB_NAME_LIMIT} characters", "shorten it or use --sagemaker-base-job-name")
        _need(naming.is_valid_job_name(job_name), "--sagemaker-job-name", job_name,
              "only letters, digits and hyphens, starting with a letter or digit",
              "e.g. --sagemaker-job-name my-model-2")
    else:
        job_name = naming.unique_job_name(base, now, token)

    role = v.get("role") or ("arn:aws:iam::000000000000:role/local" if local else None)
    _need(bool(role), "--sagemaker-role", None, "no IAM role for the job",
          "pass --sagemaker-role NAME_OR_ARN (create one with: aws-train-remote role create), or set role: in "
          "aws-train-remote.yaml, or SageMaker.TrainingJob.RoleArn in ~/.config/sagemaker/config.yaml")
    _need(bool(ROLE_ARN.match(role) or ROLE_NAME.match(role)), "--sagemaker-role", role,
          "neither a role name nor a role ARN",
          "use e.g. MySageMakerRole or arn:aws:iam::123456789012:role/MySageMakerRole")

    for key in ("training_image_path", "training_image_accounts"):
        _need(not v.get(key), f"--sagemaker-{key.replace('_', '-')}", v.get(key),
              "building the training image from a Dockerfile is not supported",
              "build and push it yourself (docker build, docker push), then pass --sagemaker-image URI")
    mlflow = _mlflow_uri(v.get("mlflow"), cwd)
    _need(not v.get("mlflow_experiment") or bool(mlflow), "--sagemaker-mlflow-experiment", v.get("mlflow_experiment"),
          "names an experiment of an MLflow server that was not given", "add --sagemaker-mlflow URI_OR_ARN")
    queue = v.get("queue")
    _need(not queue or bool(QUEUE.match(queue)), "--sagemaker-queue", queue, "not a job queue name or ARN",
          "use the queue's name (letters, digits, - and _) or its arn:aws:batch:...:job-queue/NAME")
    _need(not (queue and fallbacks), "--sagemaker-queue", queue, "a queue schedules capacity itself",
          "drop the instance list, or the queue")
    experiment, trial = v.get("experiment_name"), v.get("trial_name")
    _need(not trial or bool(experiment), "--sagemaker-trial-name", trial, "a trial belongs to an experiment",
          "add --sagemaker-experiment-name NAME")
    for flag, name in (("--sagemaker-experiment-name", experiment), ("--sagemaker-trial-name", trial)):
        _need(not name or bool(EXPERIMENT_NAME.match(name)), flag, name, "not a valid SageMaker Experiments name",
              "use up to 120 letters, digits and hyphens, starting with a letter or digit")

    image = v.get("image")
    if image:
        _need(len(image) <= 255 and bool(IMAGE_URI.match(image)), "--sagemaker-image", image,
              "not a container image URI", "use e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/my-image:1.0")
    images_by_choice = {choice: image or _default_image(v, choice, region) for choice in choices}
    image = images_by_choice[instance]
    fallbacks = tuple((choice, images_by_choice[choice]) for choice in fallbacks)

    environment = tuple(v.get("env") or ())
    _need(len(environment) <= ENV_LIMIT, "--sagemaker-env", len(environment), "too many variables",
          f"SageMaker allows {ENV_LIMIT}")
    for key, value in environment:
        _need(bool(ENV_NAME.match(key)), "--sagemaker-env", key, "not a valid variable name",
              "use letters, digits and underscores, e.g. --sagemaker-env MY_VAR=1")
        _need(key.upper() not in CREDENTIAL_NAMES, "--sagemaker-env", key,
              "AWS credentials must never travel with a job (they are visible in DescribeTrainingJob)",
              "drop it; the job runs with --sagemaker-role")
        _need(len(value) <= 512, "--sagemaker-env", key, "value longer than 512 characters",
              "shorten it or ship it in a file with the code")
    tags = tuple(v.get("tag") or ())
    _need(len(tags) <= TAG_LIMIT - OWN_TAGS, "--sagemaker-tag", len(tags), "too many tags",
          f"SageMaker allows {TAG_LIMIT}, of which aws-train-remote uses {OWN_TAGS}")
    for key, value in tags:
        _need(0 < len(key) <= 128 and not key.lower().startswith("aws:"), "--sagemaker-tag", key,
              "tag keys must be 1-128 characters and not start with aws:", "rename the tag")
        _need(len(value) <= 256, "--sagemaker-tag", key, "value longer than 256 characters", "shorten it")
    metrics = tuple(v.get("metric") or ())
    _need(len(metrics) <= METRIC_LIMIT, "--sagemaker-metric", len(metrics), "too many metrics",
          f"SageMaker allows {METRIC_LIMIT}")
    for name, regex in metrics:
        _need(0 < len(name) <= 255 and 0 < len(regex) <= 500, "--sagemaker-metric", f"{name}={regex}",
              "name must be 1-255 and regex 1-500 characters", "e.g. --sagemaker-metric 'loss=loss: ([0-9.]+)'")
        try:
            re.compile(regex)
        except re.error as err:
            raise UsageError("--sagemaker-metric", f"{name}={regex}", f"bad regex ({err})",
                             "fix the regular expression") from None

    tune = _tune_spec(v.get("tune"), cwd, tunable or {}, metrics) if v.get("tune") else None
    _need(not (tune and queue), "--sagemaker-queue", queue, "a tuning job is not queued",
          "drop --sagemaker-queue or --sagemaker-tune")
    _need(not (tune and (fallbacks or cluster_groups)), "--sagemaker-instance", v["instance"],
          "a tuning job runs on one instance type", "give one --sagemaker-instance and no instance groups")
    _need(not (tune and v["run"] == "local" and v.get("simulate_interruption")),
          "--sagemaker-simulate-interruption", None, "does not combine with tuning", "drop one of them")

    subnets, groups = tuple(v.get("subnets") or ()), tuple(v.get("security_groups") or ())
    _need(bool(subnets) == bool(groups), "--sagemaker-subnets" if groups else "--sagemaker-security-groups",
          None, "a VPC needs both subnets and security groups", "pass both --sagemaker-subnets and "
          "--sagemaker-security-groups")
    for subnet in subnets:
        _need(bool(SUBNET.match(subnet)), "--sagemaker-subnets", subnet, "not a subnet id", "use e.g. subnet-0abc1234")
    for group in groups:
        _need(bool(SECURITY_GROUP.match(group)), "--sagemaker-security-groups", group,
              "not a security group id", "use e.g. sg-0abc1234")

    bucket = v.get("bucket")
    if bucket:
        _need(bool(BUCKET.match(bucket)) and ".." not in bucket, "--sagemaker-bucket", bucket,
              "not a valid bucket name", "use 3-63 lower-case letters, digits, dots and hyphens")
    prefix = (v.get("prefix") or "").strip("/")
    output_s3 = v.get("output_s3")

    # source, script, requirements
    source_raw = v.get("source") or script_dir
    source_dir = os.path.realpath(os.path.join(cwd, os.path.expanduser(source_raw)))
    _need(os.path.isdir(source_dir), "--sagemaker-source", source_raw, "no such folder",
          "give the folder that holds the training code")
    script_raw = v.get("script") or os.path.relpath(os.path.realpath(definition.script), source_dir)
    script_abs = os.path.realpath(os.path.join(source_dir, script_raw))
    _need(os.path.isfile(script_abs), "--sagemaker-script", script_raw, "no such file in the source folder",
          "give the script's path relative to --sagemaker-source")
    script = os.path.relpath(script_abs, source_dir)
    _need(not script.startswith(".."), "--sagemaker-script", script_raw, "lies outside the source folder",
          "move it, or pass a --sagemaker-source that contains it")
    requirements = v.get("requirements")
    if requirements:
        req_abs = os.path.realpath(os.path.join(source_dir, requirements))
        _need(os.path.isfile(req_abs), "--sagemaker-requirements", requirements, "no such file",
              "give a requirements file inside the source folder")
        requirements = os.path.relpath(req_abs, source_dir)
        _need(not requirements.startswith(".."), "--sagemaker-requirements", v.get("requirements"),
              "lies outside the source folder", "move it into the source folder")
    elif os.path.isfile(os.path.join(source_dir, "requirements.txt")):
        requirements = "requirements.txt"

    inputs = []
    for name, _default in definition.inputs:
        flag = definition.input_flag(name)
        raw = getattr(namespace, name)
        _need(raw not in (None, ""), flag, None, "no location for this input", f"pass {flag} PATH_OR_S3_URI")
        local_copy = getattr(namespace, f"{name}_local", None)
        if values.is_fs_uri(raw):
            try:
                values.parse_fs_uri(raw)
            except ValueError as err:
                raise UsageError(flag, raw, str(err), "e.g. efs://fs-0123abcd/datasets/train") from None
            _need(bool(subnets), flag, raw, "a file system input is mounted through the job's VPC",
                  "pass --sagemaker-subnets and --sagemaker-security-groups of the file system's VPC")
            _need(getattr(namespace, f"{name}_mode") == "File", f"{flag}-mode", getattr(namespace, f"{name}_mode"),
                  "a file system input is mounted, in File mode", f"drop {flag}-mode")
            if v["run"] == "local":
                _need(bool(local_copy), flag, raw, "local mode cannot mount a file system",
                      f"pass {flag}-local FOLDER with a local copy of it")
            inputs.append(InputSpec(name, raw, "File", flag, local=_location_or_s3(
                f"{flag}-local", local_copy, cwd) if local_copy else None))
            continue
        location = _location_or_s3(flag, raw, cwd)
        suffix = str(getattr(namespace, f"{name}_suffix", "") or "").strip("/")
        _need(not suffix or ".." not in suffix.split("/"), f"{flag}-suffix", suffix, "must stay inside the input",
              "give a relative path without ..")
        repeat = getattr(namespace, f"{name}_repeat", None)
        _need(repeat in (None, 0, 1), f"{flag}-repeat", repeat, "repeating an input is not supported",
              "loop over the data in the script (e.g. more epochs)")
        _need(not getattr(namespace, f"{name}_shuffle", False), f"{flag}-shuffle", "yes",
              "shuffling an input is not supported", "shuffle in the script's data loader")
        only = tuple(values.parse_list(getattr(namespace, f"{name}_instance_groups", None) or ()))
        _need(not only or bool(cluster_groups), f"{flag}-instance-groups", ",".join(only), "only applies to a "
              "heterogeneous cluster", "add --sagemaker-instance-group NAME=TYPE:COUNT flags")
        unknown = [g for g in only if g not in [n for n, _, _ in cluster_groups]]
        _need(not unknown, f"{flag}-instance-groups", ",".join(unknown), "is not one of the instance groups",
              "use the names given to --sagemaker-instance-group")
        inputs.append(InputSpec(name, location, getattr(namespace, f"{name}_mode"), flag,
                                single_file=not values.is_s3_uri(location) and not os.path.isdir(location),
                                distribution=getattr(namespace, f"{name}_distribution", "replicated"),
                                suffix=suffix, instance_groups=only))
    dependencies = []
    for name, _default in definition.dependencies:
        flag = definition.dependency_flag(name)
        raw = getattr(namespace, name)
        folder = os.path.realpath(os.path.join(cwd, os.path.expanduser(str(raw))))
        _need(os.path.isdir(folder), flag, raw, "no such folder", "give the folder of the Python package")
        dependencies.append(DependencySpec(name, folder, flag))
    model_from = v.get("model_from")
    if model_from:
        inputs.append(model_input(model_from, inputs, cwd))
    for item in inputs:
        real = os.path.realpath(item.location) if not item.is_remote else None
        if real and not item.single_file:
            _need(not (source_dir == real or source_dir.startswith(real.rstrip(os.sep) + os.sep)),
                  item.flag, item.location, "is the source folder or holds it (inputs are kept out of the code "
                  "bundle, so the code would not ship)", "put the data in a sub-folder of its own, or give an "
                  "s3:// URI")
    channel_count = len(inputs) + 2 + (1 if contract.is_trainium(instance) and neuron_cache != "none" else 0)
    room = contract.CHANNEL_LIMIT - channel_count + len(inputs)
    _need(channel_count <= contract.CHANNEL_LIMIT, "inputs", len(inputs), "too many input channels",
          f"SageMaker allows {contract.CHANNEL_LIMIT} channels, {room} of them for inputs")

    hyperparameters = []
    for dest in user_dests:
        value = getattr(namespace, dest, None)
        text = contract.encode_hyperparameter(value)
        _need(len(text) <= contract.HP_VALUE_LIMIT, f"--{dest.replace('_', '-')}", value,
              f"longer than SageMaker's {contract.HP_VALUE_LIMIT} characters per hyperparameter",
              "pass it in a file instead")
        hyperparameters.append((dest, text))

    return JobSpec(
        run=v["run"], wait=v["wait"], dry_run=v["dry_run"], stop_on_interrupt=v["stop_on_interrupt"],
        region=region, profile=v.get("profile"), job_name=job_name, base_job_name=base,
        explicit_job_name=bool(v.get("job_name")), role=role,
        image=image, instance_type=instance, instance_count=count, volume_size=v["volume_size"],
        max_run=max_run, spot=spot, max_wait=max_wait if spot else None, max_retries=v["max_retries"],
        keep_alive=v["keep_alive"], environment=environment, tags=tags, metrics=metrics,
        distribution=v["distribution"], nproc_per_node=v.get("nproc_per_node"),
        neuron_parallel_compile=v["neuron_parallel_compile"],
        simulate_interruption=tuple(v.get("simulate_interruption") or ()),
        bucket=bucket, prefix=prefix,
        output_s3=output_s3, checkpoint_s3=checkpoint_s3, checkpoint_container=checkpoint_container,
        checkpoint_initial=checkpoint_initial, fresh_start=v["fresh_start"], neuron_cache=neuron_cache,
        download=v["download"],
        kms_key=v.get("kms_key"), volume_kms_key=v.get("volume_kms_key"), subnets=subnets,
        security_groups=groups, network_isolation=v["network_isolation"],
        encrypt_inter_container=v["encrypt_inter_container"], source_dir=source_dir,
        script=script.replace(os.sep, "/"), requirements=requirements.replace(os.sep, "/") if requirements else None,
        inputs=tuple(inputs), dependencies=tuple(dependencies), container_argv=tuple(container_argv),
        hyperparameters=tuple(hyperparameters), path_flags=path_flags, launch_token=launch_token,
        image_given=bool(v.get("image")),
        model_dir=os.path.abspath(os.path.join(cwd, str(namespace.model_dir))),
        local_output_dir=os.path.abspath(os.path.join(cwd, str(namespace.output_dir))),
        local_checkpoint_dir=os.path.abspath(os.path.join(cwd, str(namespace.checkpoint_dir))),
        output_json=os.path.abspath(os.path.join(cwd, v["output_json"])) if v.get("output_json") else None,
        experiment_name=experiment, trial_name=trial, instance_fallbacks=fallbacks,
        instance_groups=cluster_groups, distribution_group=distribution_group, queue=queue,
        tune=tune, tuning_job_name=naming.tuning_job_name(base, now, token) if tune else None,
        mlflow=mlflow, mlflow_experiment=(v.get("mlflow_experiment") or base) if mlflow else None,
        spot_fallback=v["spot_fallback"],
    )
