"""Issue 19.7: a request field the installed botocore does not know is one line naming the flag that
set it and the botocore release that knows it, before anything is created.

botocore validates a request against its own service model when the call is made: a member newer
than the user's boto3 fails there (ParamValidationError, "Unknown parameter"), after the uploads. So
the launch builds the request it will send (with a stand-in upload plan: the member names do not
depend on the uploads), walks it against the installed model's input shape, and names the first
member that model lacks. The walk is pure; loading the model is the caller's (passed in).
"""
from __future__ import annotations

from ..errors import UsageError

UPGRADE = "pip install -U boto3 (it brings the botocore it needs)"

# (service, operation, member path) -> (the flag that sets it, the first botocore release whose
# model has it). The releases were read from botocore's own history: the first release tag whose
# botocore/data/<service>/*/service-2.json holds the member (boto/botocore, binary search over tags;
# InstancePreferences: absent from 1.43.67, present in 1.44.0). Members older than the floor in
# setup.cfg (botocore 1.34.0) never fail but keep their flag, so the line still names it.
SAGEMAKER = "sagemaker", "CreateTrainingJob"
TUNING = "sagemaker", "CreateHyperParameterTuningJob"
QUEUE = "batch", "SubmitServiceJob"
FIELDS = {
    (*SAGEMAKER, "AlgorithmSpecification.ContainerEntrypoint"): (None, "1.28.3"),  # every job: the default request
    (*SAGEMAKER, "ResourceConfig.InstanceGroups"): ("--sagemaker-instance-group", "1.27.25"),
    (*SAGEMAKER, "InputDataConfig.DataSource.S3DataSource.InstanceGroupNames"): ("--<input>-instance-groups",
                                                                                "1.27.25"),
    (*SAGEMAKER, "ResourceConfig.KeepAlivePeriodInSeconds"): ("--sagemaker-keep-alive", "1.27.83"),
    (*SAGEMAKER, "ResourceConfig.InstancePreferences"): ("--sagemaker-instance", "1.44.0"),
    (*SAGEMAKER, "ResourceConfig.TrainingPlanArn"): ("--sagemaker-training-plan", "1.35.75"),
    (*SAGEMAKER, "StoppingCondition.MaxPendingTimeInSeconds"): ("--sagemaker-max-pending", "1.32.2"),
    (*SAGEMAKER, "RemoteDebugConfig"): ("--sagemaker-debug", "1.34.6"),
    (*SAGEMAKER, "InfraCheckConfig"): ("--sagemaker-infra-check", "1.33.3"),
    (*SAGEMAKER, "SessionChainingConfig"): ("--sagemaker-session-chaining", "1.34.95"),
    (*SAGEMAKER, "OutputDataConfig.CompressionType"): ("--sagemaker-output-compression", "1.29.158"),
    (*SAGEMAKER, "TensorBoardOutputConfig"): ("--sagemaker-tensorboard", "1.13.32"),
    (*SAGEMAKER, "ExperimentConfig.RunName"): ("--sagemaker-experiment-run", "1.29.20"),
    (*SAGEMAKER, "RetryStrategy"): ("--sagemaker-max-retries", "1.20.65"),
    (*TUNING, "HyperParameterTuningJobConfig.RandomSeed"): ("--sagemaker-tune", "1.29.32"),
    (*TUNING, "TrainingJobDefinition.Environment"): ("--sagemaker-env", "1.29.53"),
    (*QUEUE, "shareIdentifier"): ("--sagemaker-queue-share", "1.39.16"),
    (*QUEUE, "schedulingPriority"): ("--sagemaker-queue-priority", "1.39.16"),
    (*QUEUE, "quotaShareName"): ("--sagemaker-queue-quota-share", "1.42.72"),
}
# An operation the installed botocore lacks altogether: its flag and the release that brought it
# (DescribeServiceJob and ListServiceJobs, which the follow uses, came in the same release).
OPERATIONS = {QUEUE: ("--sagemaker-queue", "1.39.16")}


def unknown_members(shape, params, path: str = "") -> list:
    """Dotted paths of the members of `params` that `shape` (a botocore input shape) lacks, in
    request order. A map's keys are data (hyperparameters, tags), never members."""
    kind = getattr(shape, "type_name", None)
    if kind == "structure" and isinstance(params, dict):
        found = []
        for name, value in params.items():
            where = f"{path}.{name}" if path else name
            if name not in shape.members:
                found.append(where)
            else:
                found += unknown_members(shape.members[name], value, where)
        return found
    if kind == "list" and isinstance(params, (list, tuple)):
        found = []
        for item in params:
            found += [p for p in unknown_members(shape.member, item, path) if p not in found]
        return found
    return []


def refusal(service: str, operation: str, path, installed: str) -> UsageError:
    """The one line for a member (or, with path None, an operation) this botocore lacks."""
    if path is None:
        flag, version = OPERATIONS.get((service, operation), (None, None))
        what = f"{service} {operation}"
    else:
        flag, version = FIELDS.get((service, operation, path), (None, None))
        what = f"{operation}'s {path}"
    needs = f"botocore {version} or later" if version else "a newer botocore"
    if flag is None:
        return UsageError("boto3", f"botocore {installed}", f"{what} needs {needs}", UPGRADE)
    return UsageError(flag, None, f"needs {needs} ({what}); this is botocore {installed}", UPGRADE)


def check_known(requests, service_model, installed: str) -> None:
    """Raise the one line for the first member or operation of `requests` ((service, operation,
    params), ...) that `service_model(service)` (a botocore ServiceModel) does not know."""
    for service, operation, params in requests:
        model = service_model(service)
        if operation not in model.operation_names:
            raise refusal(service, operation, None, installed)
        missing = unknown_members(model.operation_model(operation).input_shape, params)
        if missing:
            raise refusal(service, operation, missing[0], installed)


def launch_requests(spec) -> list:
    """(service, operation, params) of what a launch of `spec` creates, built as the launch builds
    it but with a stand-in upload plan and account (member names do not depend on them)."""
    from ..plan.request import build_request, service_job_request, tuning_request

    plan = stand_in_plan(spec)
    bucket = spec.bucket or "stand-in-bucket"
    request = build_request(spec, plan, account="000000000000", bucket=bucket)
    if spec.tune:
        return [(*TUNING, tuning_request(spec, request, plan, bucket))]
    if spec.queue:  # the payload is JSON text to botocore: only Batch's members are botocore's to know
        return [(*QUEUE, service_job_request(spec, request))]
    return [(*SAGEMAKER, request)]


def stand_in_plan(spec):
    """An UploadPlan with the shape of the real one and none of its work (no file is read)."""
    from ..plan.uploads import InputUpload, PlannedFile, UploadPlan

    def planned(name):
        return PlannedFile(local="", relpath=name, size=0, sha256="0" * 64, key=f"stand-in/{name}/{name}")

    inputs = tuple(InputUpload(i.name, "0" * 64, f"stand-in/{i.name}/", f"stand-in/{i.name}.manifest", b"", ())
                   for i in spec.inputs if not i.is_remote)
    return UploadPlan(code=planned("code"), driver=planned("driver"), inputs=inputs, entry=planned("entry"))


def check_launch(spec, service_model=None, installed: str = None) -> None:
    """The launch's check, against the installed botocore (its session's loader: AWS_DATA_PATH and
    ~/.aws/models count, as for the clients that will send the requests)."""
    if service_model is None or installed is None:
        from .session import _boto3

        _boto3()  # boto3 missing: the one line that says so
        import botocore
        import botocore.session

        session = botocore.session.get_session()
        service_model = service_model or session.get_service_model
        installed = installed or botocore.__version__
    check_known(launch_requests(spec), service_model, installed)
