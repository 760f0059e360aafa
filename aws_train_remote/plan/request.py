"""JobSpec + UploadPlan -> the exact keyword arguments of sagemaker.create_training_job.

Pure: the account id, bucket and git facts are passed in. The dry run prints this dict and
the launcher sends this dict; nothing is re-derived in between.
"""
from __future__ import annotations

import os

from .. import contract
from .._version import __version__
from ..contract import encode_hyperparameter as encode
from ..errors import UsageError
from ..spec.options import INPUT_DISTRIBUTIONS
from ..spec.values import parse_fs_uri
from .store import StoreInput
from .uploads import uses_store

ACCOUNT_PLACEHOLDER = "<account>"
LAUNCH_TAG = "aws-train-remote:launch"  # the launch token: a job carrying ours is ours to adopt



def role_arn(role: str, account: str) -> str:
    if role.startswith("arn:"):
        return role
    return f"arn:aws:iam::{account}:role/{role}"


def account_from_role(role: str):
    """The account id inside a role ARN, so a dry run can name the default bucket offline."""
    parts = role.split(":") if role and role.startswith("arn:") else []
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else None


def default_bucket(region: str, account: str) -> str:
    return f"sagemaker-{region}-{account}"


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _join(prefix: str, *parts: str) -> str:
    return "/".join(p.strip("/") for p in (prefix, *parts) if p and p.strip("/"))


def checkpoint_uri(spec, bucket: str):
    if spec.checkpoint_s3 == "none":
        return None
    if spec.checkpoint_s3 == "auto":
        return _uri(bucket, _join(spec.prefix, "checkpoints", spec.base_job_name)) + "/"
    return spec.checkpoint_s3


def archive_uri(checkpoint: str, now) -> str:
    """Where --sagemaker-fresh-start moves the earlier checkpoints: beside the location, dated."""
    return checkpoint.rstrip("/") + f"-archived-{now.strftime('%Y%m%d-%H%M%S')}/"


def neuron_cache_uri(spec, bucket: str):
    if not spec.trainium or spec.neuron_cache == "none":
        return None
    if spec.neuron_cache == "auto":
        return _uri(bucket, _join(spec.prefix, "neuron-cache", spec.base_job_name)) + "/"
    return spec.neuron_cache.rstrip("/") + "/"


def output_uri(spec, bucket: str) -> str:
    return spec.output_s3 or _uri(bucket, _join(spec.prefix, "output"))


def tensorboard_uri(spec, bucket: str):
    """--sagemaker-tensorboard: where the job's TensorBoard files go; default beside its output."""
    if not spec.tensorboard:
        return None
    if spec.tensorboard == "auto":
        return f"{output_uri(spec, bucket).rstrip('/')}/{spec.job_name}/tensorboard/"
    return spec.tensorboard


def _channel(name: str, uri: str, mode: str = "File", distribution: str = "FullyReplicated",
             data_type: str = "S3Prefix") -> dict:
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": uri,
                                        "S3DataDistributionType": distribution}},
        "InputMode": mode,
    }


def path_flags(spec) -> dict:
    """What the runtime needs to re-add the path flags, pointing at container paths.

    A local input that is a single file travels as a one-file channel; `file` names it so the
    flag points at the file, as it did on the user's machine.
    """
    def single(i):  # --<input>-suffix (aws-sagemaker-remote's) names a path inside the channel
        return i.suffix or (os.path.basename(i.location) if i.single_file else None)

    def entry(i):
        if i.model_init:  # unpacked by the runtime; args.model_init points at the result
            return {"flag": i.flag, "mode": i.mode, "file": single(i), "unpack": True}
        return {"flag": i.flag, "mode": i.mode, "file": single(i), "distribution": i.distribution}

    return {
        "inputs": {i.name: entry(i) for i in spec.inputs},
        "model": spec.path_flags.get("model"),
        "output": spec.path_flags.get("output"),
        "checkpoint": spec.path_flags.get("checkpoint"),
        "checkpoint_path": spec.checkpoint_container,
        "tensorboard": spec.path_flags.get("tensorboard"),
        "tensorboard_path": contract.DEFAULT_TENSORBOARD_PATH,
        "run": spec.path_flags.get("run"),
        "dependencies": {d.flag: d.bundle_path for d in spec.dependencies},
    }


def job_settings(spec) -> dict:
    """The job's own --sagemaker-* settings, as option key -> text the option parses, so that inside
    the job `args.sagemaker_instance` and friends are what the job runs with, not the built-in
    defaults. Only what means something there; trimmed to fit one hyperparameter."""
    def yes(value):
        return "yes" if value else "no"

    settings = {
        "region": spec.region, "job_name": spec.job_name, "base_job_name": spec.base_job_name,
        "instance": instance_setting(spec), "instance_count": str(spec.instance_count),
        "volume_size": str(spec.volume_size), "max_run": str(spec.max_run), "spot": yes(spec.spot),
        "max_retries": str(spec.max_retries), "keep_alive": str(spec.keep_alive),
        "distribution": spec.distribution, "checkpoint_container": spec.checkpoint_container,
        "network_isolation": yes(spec.network_isolation),
        "encrypt_inter_container": yes(spec.encrypt_inter_container), "prefix": spec.prefix,
        "image": spec.image, "role": spec.role, "checkpoint_s3": spec.checkpoint_s3,
        "neuron_cache": spec.neuron_cache,
    }
    if spec.debug:  # the runtime says how to connect when it keeps a failed script's container up
        settings["debug"] = "yes"
    optional = {"keep_on_failure": spec.keep_on_failure,
                "max_wait": spec.max_wait, "nproc_per_node": spec.nproc_per_node, "bucket": spec.bucket,
                "output_s3": spec.output_s3, "kms_key": spec.kms_key, "volume_kms_key": spec.volume_kms_key}
    settings.update({k: str(v) for k, v in optional.items() if v})
    settings = {k: v for k, v in settings.items() if v not in (None, "")}
    while len(encode(settings, compact=True)) > contract.HP_VALUE_LIMIT:  # long ARNs and URIs go first
        del settings[max(settings, key=lambda k: len(settings[k]))]
    return settings


def instance_setting(spec) -> str:
    """args.sagemaker_instance inside the job: the type; for an on-demand list, the list as given,
    which the runtime replaces by the type SageMaker selected (runtime/bootstrap.py)."""
    if not spec.instance_preferences:
        return spec.instance_type
    return ",".join(kind + ("" if count is None else f":{count}") for kind, count in spec.instance_preferences)


def hyperparameters(spec, trees: dict = None) -> dict:
    """Every hyperparameter of the job; raises UsageError past SageMaker's limits. Pure, so the
    launcher checks it before the first file is read or written. `trees`: input name -> the
    sha256 of its version's tree object (File channels of the input store)."""
    ours = {
        contract.HP_PROGRAM: encode(spec.script),
        contract.HP_REGION: encode(spec.region),
        contract.HP_JOB_NAME: encode(spec.job_name),
        contract.HP_DISTRIBUTION: encode(spec.distribution),
        contract.HP_PATHS: encode(path_flags(spec), compact=True),
        contract.HP_SETTINGS: encode(job_settings(spec), compact=True),
        contract.HP_DEPENDENCIES: encode([d.bundle_path.rsplit("/", 1)[0] for d in spec.dependencies]),
    }
    if trees is None:  # the check before planning: a tree's name is as long as any other
        trees = {i.name: "0" * 64 for i in spec.inputs
                 if not i.is_remote and i.mode == "File" and uses_store(i.mode, i.distribution)}
    if trees:
        ours[contract.HP_TREES] = encode(trees, compact=True)
    if spec.requirements:
        ours[contract.HP_REQUIREMENTS] = encode(spec.requirements)
    if spec.nproc_per_node:
        ours[contract.HP_NPROC] = encode(spec.nproc_per_node)
    if spec.distribution == "torchrun":
        ours[contract.HP_TORCH_DISTRIBUTED] = "true"
    if spec.instance_groups:  # the toolkit's key: the groups the distribution runs on
        ours["sagemaker_distribution_instance_groups"] = encode([spec.distribution_group])
    too_long = contract.argv_too_long(spec.container_argv)
    if too_long is not None:  # the job would pass SageMaker's checks, then fail at the script's exec
        i, size = too_long
        flag = spec.container_argv[i - 1] if i and spec.container_argv[i - 1].startswith("-") else f"argument {i + 1}"
        raise UsageError(flag, spec.container_argv[i], f"{size} bytes; Linux starts no program with an argument "
                         f"over {contract.ARG_STRLEN_LIMIT - 1} bytes", "pass it in a file instead")
    ours.update(contract.encode_argv(spec.container_argv))
    for name, _ in spec.hyperparameters:
        if name in ours:
            raise UsageError(f"--{name}", None, "clashes with a hyperparameter aws-train-remote sets",
                             "rename the script's flag")
    if len(ours) > contract.HP_COUNT_LIMIT:
        raise UsageError("hyperparameters", len(ours), f"more than SageMaker's {contract.HP_COUNT_LIMIT}",
                         "pass some settings in a config file shipped with the code")
    for key, value in ours.items():
        if len(value) > contract.HP_VALUE_LIMIT:
            raise UsageError(f"--{key}", value, f"longer than {contract.HP_VALUE_LIMIT} characters",
                             "pass it in a file instead")
    readable = dict(kept_readable(spec.hyperparameters, room=contract.HP_COUNT_LIMIT - len(ours)))
    return {**readable, **ours}


def kept_readable(pairs, room: int) -> list:
    """The script's readable (name, value) copies that fit: at most `room` of them, each within
    SageMaker's characters per value. They are for people reading the console; the script gets
    its exact argv either way, so one that does not fit is left out, never refused."""
    fitting = [(name, text) for name, text in pairs if len(text) <= contract.HP_VALUE_LIMIT]
    return fitting[:max(0, room)]


def readable_left_out(spec, hps: dict) -> list:
    """Notes for the dry run and the launch: each readable copy the request leaves out, and why."""
    notes = []
    for name, text in spec.hyperparameters:
        if name not in hps:
            why = (f"{len(text)} characters; SageMaker allows {contract.HP_VALUE_LIMIT} per hyperparameter"
                   if len(text) > contract.HP_VALUE_LIMIT else f"SageMaker allows {contract.HP_COUNT_LIMIT} "
                   "hyperparameters")
            notes.append(f"--{name.replace('_', '-')} is not shown among the job's hyperparameters ({why}); "
                         "the script still receives its exact value")
    return notes


def store_trees(plan) -> dict:
    """Input name -> its tree object's sha256, for the File channels the runtime lays out."""
    return {i.name: i.tree.sha256 for i in plan.inputs if isinstance(i, StoreInput) and i.mode == "File"}


def build_tags(spec, git) -> list:
    tags = [{"Key": k, "Value": v} for k, v in spec.tags]
    tags.append({"Key": "aws-train-remote:version", "Value": __version__})
    if spec.launch_token:
        tags.append({"Key": LAUNCH_TAG, "Value": spec.launch_token})
    if spec.mlflow_run_id:
        tags.append({"Key": "aws-train-remote:mlflow-run", "Value": spec.mlflow_run_id})
    if getattr(spec, "notify", False):  # --sagemaker-notify: `notify setup`'s rule matches this tag
        from ..spec.cost import NOTIFY_TAG

        tags.append({"Key": NOTIFY_TAG, "Value": "yes"})
    if git is not None and git.commit:
        tags.append({"Key": "aws-train-remote:git-commit", "Value": git.commit})
        tags.append({"Key": "aws-train-remote:git-dirty", "Value": "true" if git.dirty else "false"})
    return tags


def build_request(spec, plan, *, account: str, bucket: str = None, git=None, role: str = None) -> dict:
    """The exact create_training_job(**kwargs) for this spec and upload plan. `role`: the ARN
    the launcher resolved (a role name may live under a path); default: built from the account."""
    bucket = bucket or spec.bucket or default_bucket(spec.region, account)
    entry = f"{contract.DEFAULT_ROOT}/input/data/{contract.DRIVER_CHANNEL}/{contract.DRIVER_FILE}"
    algorithm = {
        "TrainingImage": spec.image,
        "TrainingInputMode": "File",
        "ContainerEntrypoint": ["python3", entry],
    }
    if spec.metrics:
        algorithm["MetricDefinitions"] = [{"Name": n, "Regex": r} for n, r in spec.metrics]

    channels = [
        _channel(contract.DRIVER_CHANNEL, _uri(bucket, plan.driver.key.rsplit("/", 1)[0] + "/")),
        _channel(contract.CODE_CHANNEL, _uri(bucket, plan.code.key.rsplit("/", 1)[0] + "/")),
    ]
    uploaded = {item.name: item for item in plan.inputs}
    for item in spec.inputs:
        if item.is_fs:
            kind, fs_id, path = parse_fs_uri(item.location)
            channels.append({"ChannelName": item.name, "InputMode": "File", "DataSource": {"FileSystemDataSource": {
                "FileSystemId": fs_id, "FileSystemAccessMode": "ro", "FileSystemType": kind, "DirectoryPath": path}}})
            continue
        planned = uploaded.get(item.name)
        if isinstance(planned, StoreInput):
            uri, data_type = _uri(bucket, planned.manifest_key(bucket)), "ManifestFile"
        else:
            uri, data_type = (item.location if item.is_s3 else _uri(bucket, planned.prefix_key)), "S3Prefix"
        channels.append(_channel(item.name, uri, item.mode, INPUT_DISTRIBUTIONS[item.distribution], data_type))
        if item.instance_groups:
            channels[-1]["DataSource"]["S3DataSource"]["InstanceGroupNames"] = list(item.instance_groups)
    cache = neuron_cache_uri(spec, bucket)
    if cache:
        channels.append(_channel(contract.NEURON_CACHE_CHANNEL, cache))

    output = {"S3OutputPath": output_uri(spec, bucket)}
    if spec.kms_key:
        output["KmsKeyId"] = spec.kms_key
    if spec.output_compression == "none":  # the model's files under <output>/<job>/output/model/
        output["CompressionType"] = "NONE"
    if spec.instance_groups:  # a heterogeneous cluster: InstanceGroups instead of type and count
        resources = {"InstanceGroups": [{"InstanceType": kind, "InstanceCount": count, "InstanceGroupName": name}
                                        for name, kind, count in spec.instance_groups],
                     "VolumeSizeInGB": spec.volume_size}
    elif spec.instance_preferences:  # SageMaker starts the job on the first type with capacity
        resources = instance_preferences(spec)
    else:
        resources = {"InstanceType": spec.instance_type, "InstanceCount": spec.instance_count,
                     "VolumeSizeInGB": spec.volume_size}
    if spec.training_plan:  # the plan's reserved capacity (its instance type is the job's)
        resources["TrainingPlanArn"] = spec.training_plan
    if spec.volume_kms_key:
        resources["VolumeKmsKeyId"] = spec.volume_kms_key
    if spec.keep_alive:
        resources["KeepAlivePeriodInSeconds"] = spec.keep_alive
    stopping = {"MaxRuntimeInSeconds": spec.max_run}
    if spec.spot:
        stopping["MaxWaitTimeInSeconds"] = spec.max_wait
    if spec.max_pending:
        stopping["MaxPendingTimeInSeconds"] = spec.max_pending

    request = {
        "TrainingJobName": spec.job_name,
        "RoleArn": role or role_arn(spec.role, account),
        "AlgorithmSpecification": algorithm,
        "HyperParameters": hyperparameters(spec, store_trees(plan)),
        "InputDataConfig": channels,
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spec.spot,
        "EnableNetworkIsolation": spec.network_isolation,
        "EnableInterContainerTrafficEncryption": spec.encrypt_inter_container,
        "Tags": build_tags(spec, git),
    }
    checkpoint = checkpoint_uri(spec, bucket)
    if checkpoint:
        request["CheckpointConfig"] = {"S3Uri": checkpoint, "LocalPath": spec.checkpoint_container}
    environment = dict(spec.environment)
    if spec.neuron_parallel_compile:
        environment.setdefault("RUN_NEURON_PARALLEL_COMPILE", "1")
    if cache:
        environment.setdefault(contract.NEURON_CACHE_S3_ENV, cache)
    if spec.mlflow:  # the script's mlflow calls go to the launch's server, experiment and run
        environment.setdefault("MLFLOW_TRACKING_URI", spec.mlflow)
        environment.setdefault("MLFLOW_EXPERIMENT_NAME", spec.mlflow_experiment)
        if spec.mlflow_run_id:
            environment.setdefault("MLFLOW_RUN_ID", spec.mlflow_run_id)
    if environment:
        request["Environment"] = environment
    if spec.subnets:
        request["VpcConfig"] = {"Subnets": list(spec.subnets), "SecurityGroupIds": list(spec.security_groups)}
    if spec.max_retries:
        request["RetryStrategy"] = {"MaximumRetryAttempts": spec.max_retries}
    if spec.debug:  # SageMaker starts an SSM agent in the container (train-remote-debugging.html)
        request["RemoteDebugConfig"] = {"EnableRemoteDebug": True}
    if spec.experiment_name:
        request["ExperimentConfig"] = {"ExperimentName": spec.experiment_name,
                                       **({"TrialName": spec.trial_name} if spec.trial_name else {}),
                                       **({"RunName": spec.experiment_run} if spec.experiment_run else {})}
    request.update(job_options(spec, bucket))
    return request


def instance_preferences(spec) -> dict:
    """ResourceConfig for an on-demand instance list: InstancePreferences in place of InstanceType,
    the count either on every preference or once for all -- SageMaker "rejects requests that set
    InstanceCount on only some preferences, that set it both per preference and in ResourceConfig, or
    that omit it in both places" (API_InstancePreference.html)."""
    per_type = spec.instance_preferences[0][1] is not None
    resources = {"InstancePreferences": [{"InstanceType": kind, **({"InstanceCount": count} if per_type else {})}
                                         for kind, count in spec.instance_preferences]}
    if not per_type:
        resources["InstanceCount"] = spec.instance_count
    resources["VolumeSizeInGB"] = spec.volume_size
    return resources


def job_options(spec, bucket: str) -> dict:
    """The settings of issue 19.5 that are one field each, set only when asked for."""
    options = {}
    board = tensorboard_uri(spec, bucket)
    if board:
        options["TensorBoardOutputConfig"] = {"LocalPath": contract.DEFAULT_TENSORBOARD_PATH, "S3OutputPath": board}
    if spec.infra_check:
        options["InfraCheckConfig"] = {"EnableInfraCheck": True}
    if spec.session_chaining:
        options["SessionChainingConfig"] = {"EnableSessionTagChaining": True}
    return options


def service_job_request(spec, request: dict) -> dict:
    """--sagemaker-queue: the AWS Batch SubmitServiceJob that queues `request` (CreateTrainingJob).
    The launch token is the client token, so a retried submit whose reply was lost queues nothing
    twice; the job's tags travel as Batch tags, as the SageMaker SDK sends them."""
    import json

    payload = {k: v for k, v in request.items() if k != "Tags"}
    submit = {"jobName": request["TrainingJobName"], "jobQueue": spec.queue, "serviceJobType": "SAGEMAKER_TRAINING",
              "serviceRequestPayload": json.dumps(payload, sort_keys=True)}
    if request.get("Tags"):
        submit["tags"] = {t["Key"]: t["Value"] for t in request["Tags"]}
    if spec.launch_token:
        submit["clientToken"] = spec.launch_token
    for key, value in (("shareIdentifier", spec.queue_share), ("schedulingPriority", spec.queue_priority),
                       ("quotaShareName", spec.queue_quota_share)):
        if value is not None:
            submit[key] = value
    return submit


def tuning_request(spec, request: dict, plan, bucket: str) -> dict:
    """--sagemaker-tune: the exact create_hyper_parameter_tuning_job(**kwargs). Its trials are the
    training `request` with the tuned values as hyperparameters: the script's own readable copies of
    those flags leave the static set, and the runtime hands each value to the script's flag
    (contract.HP_TUNED), so a trial sees exactly `--lr 0.05` as if typed. A trial has no
    ContainerEntrypoint, so the image's toolkit starts our entry archive. Trials do not share a
    checkpoint location (each would resume from the others' files), so there is none."""
    import copy

    from ..spec.tuning import parameter_ranges

    tune = spec.tune
    tuned = {p.name: p.flag for p in tune.params}
    static = {k: v for k, v in request["HyperParameters"].items() if k not in tuned}
    static.update({
        contract.HP_PROGRAM: encode(contract.ENTRY_FILE),
        "sagemaker_submit_directory": encode(_uri(bucket, plan.entry.key)),
        contract.HP_SCRIPT: encode(spec.script),
        contract.HP_TUNED: encode(tuned, compact=True),
    })
    algorithm = {k: v for k, v in request["AlgorithmSpecification"].items() if k != "ContainerEntrypoint"}
    definition = {"StaticHyperParameters": static, "AlgorithmSpecification": algorithm}
    for key in ("RoleArn", "InputDataConfig", "VpcConfig", "OutputDataConfig", "ResourceConfig", "StoppingCondition",
                "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining",
                "RetryStrategy", "Environment"):
        if key in request:
            definition[key] = copy.deepcopy(request[key])
    config = {
        "Strategy": tune.strategy,
        "HyperParameterTuningJobObjective": {"Type": tune.objective, "MetricName": tune.metric},
        "ResourceLimits": {"MaxParallelTrainingJobs": tune.parallel_jobs},
        "ParameterRanges": parameter_ranges(tune),
        "TrainingJobEarlyStoppingType": tune.early_stopping,
    }
    if tune.strategy != "Grid":  # Grid runs every combination; SageMaker refuses a maximum with it
        config["ResourceLimits"]["MaxNumberOfTrainingJobs"] = tune.max_jobs
    if tune.seed is not None:
        config["RandomSeed"] = tune.seed
    out = {"HyperParameterTuningJobName": spec.tuning_job_name, "HyperParameterTuningJobConfig": config,
           "TrainingJobDefinition": definition, "Tags": request["Tags"]}
    if tune.warm_start:
        out["WarmStartConfig"] = {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": name}
                                                                     for name in tune.warm_start],
                                  "WarmStartType": "IdenticalDataAndAlgorithm"}
    return out
