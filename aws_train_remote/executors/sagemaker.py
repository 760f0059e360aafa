"""--sagemaker-run yes: upload what changed, create the training job, follow it to its end.

Every look-up happens once per launch (account, bucket, role); every AWS call goes through
botocore's standard retry mode; nothing is created before the spec and the plan are valid.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from ..aws.jobs import plural
from ..aws.session import error_code
from ..contract import split_s3
from ..errors import AwsError, JobFailed, UsageError
from ..paths import cache_root

MAX_NAME_ATTEMPTS = 3


@dataclass
class Launched:
    job_name: str
    request: dict
    report: object
    region: str
    batch_job_id: str = None  # --sagemaker-queue: the AWS Batch service job that will create it
    mlflow_run_id: str = None  # --sagemaker-mlflow: the launch's run


def account_id(session) -> str:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return session.client("sts").get_caller_identity()["Account"]
    except NoCredentialsError:
        raise AwsError("no AWS credentials found; run `aws configure`, set AWS_PROFILE, or pass "
                       "--sagemaker-profile") from None
    except (ClientError, BotoCoreError) as err:
        raise AwsError(f"sts:GetCallerIdentity failed ({err}); check your credentials and region") from None


def resolve_role(session, role: str, account: str) -> str:
    """A role ARN as given (no IAM client is made for it: loading its model costs tens of ms);
    a role name looked up (it may live under a path) or, without iam:GetRole permission, assumed
    to be at the root path. Never created."""
    from botocore.exceptions import ClientError

    if role.startswith("arn:"):
        return role
    try:
        return session.client("iam").get_role(RoleName=role)["Role"]["Arn"]
    except ClientError as err:
        if error_code(err) == "NoSuchEntity":
            raise UsageError("--sagemaker-role", role, f"no such IAM role in account {account}",
                             f"create one with: aws-train-remote role create {role}, or pass the ARN "
                             "of an existing one") from None
        if error_code(err) in ("AccessDenied", "AccessDeniedException"):
            return f"arn:aws:iam::{account}:role/{role}"
        raise


INTERRUPTED_BEFORE_CREATE = ("\ninterrupted: no job was created; what was uploaded is kept and nothing partial is "
                             "marked complete, so a relaunch sends only what is missing")


def launch(spec, session, environ, *, out=None, rand=None) -> Launched:
    """Upload and create the job; return as soon as CreateTrainingJob succeeded."""
    from ..aws.models import resolve_model_job
    from ..spec.job import JOB_MODEL

    if any(i.model_init and i.location.startswith(JOB_MODEL) for i in spec.inputs):
        spec = resolve_model_job(spec, session.client("sagemaker"))
    try:
        prepared = prepare(spec, session, environ, out if out is not None else sys.stdout)
    except KeyboardInterrupt:
        print(INTERRUPTED_BEFORE_CREATE, file=sys.stderr)
        raise SystemExit(130) from None
    if spec.mlflow:
        import dataclasses

        from .tracking import start_run

        spec = dataclasses.replace(spec, mlflow_run_id=start_run(spec, prepared.git))
        print(f"MLflow: run {spec.mlflow_run_id} in experiment {spec.mlflow_experiment} ({spec.mlflow})",
              file=out if out is not None else sys.stdout)
    if spec.queue:
        launched = submit_to_queue(spec, session, prepared, out if out is not None else sys.stdout)
    else:
        launched = submit(spec, session, prepared, out if out is not None else sys.stdout, rand)
    launched.mlflow_run_id = spec.mlflow_run_id
    return launched


def submit_to_queue(spec, session, prepared, out) -> Launched:
    """SubmitServiceJob: the request waits in the queue; its client token makes a retry after a
    lost reply return the same job."""
    from botocore.exceptions import ClientError

    from ..plan.request import build_request, service_job_request

    request = build_request(spec, prepared.plan, account=prepared.account, bucket=prepared.bucket,
                            git=prepared.git, role=prepared.role_arn)
    try:
        answer = session.client("batch").submit_service_job(**service_job_request(spec, request))
    except ClientError as err:
        if error_code(err) in ("ClientException", "ValidationException") and "queue" in str(err).lower():
            raise UsageError("--sagemaker-queue", spec.queue, f"AWS Batch refused it ({err})",
                             "check the queue's name and that it serves SageMaker training") from None
        raise AwsError(f"SubmitServiceJob failed: {err}") from None
    print(f"queued: {request['TrainingJobName']} in {spec.queue} (AWS Batch job {answer['jobId']})", file=out)
    return Launched(request["TrainingJobName"], request, prepared.report, spec.region, batch_job_id=answer["jobId"])


QUEUED = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED")


def follow_queue(batch, launched: Launched, out, sleep=time.sleep, fast=1.0, slow=10.0) -> str:
    """Print the service job's queue states until SageMaker has the training job; its name (Batch
    may give a retried attempt a new one). A job that fails in the queue is JobFailed."""
    seen, poll = None, fast
    try:
        while True:
            job = batch.describe_service_job(jobId=launched.batch_job_id)
            status = job.get("status")
            reason = f" - {job['statusReason']}" if job.get("statusReason") and status in QUEUED else ""
            poll = fast if (status, reason) != seen else min(poll * 1.5, slow)  # quick after a change, then back off
            if (status, reason) != seen:
                print(f"queue: {status}{reason}", file=out)
                out.flush()
                seen = (status, reason)
            arn = ((job.get("latestAttempt") or {}).get("serviceResourceId") or {}).get("value")
            if arn and status not in QUEUED:
                return arn.rsplit("/", 1)[-1]
            if status in ("FAILED", "SUCCEEDED"):
                raise JobFailed(f"queued job {launched.job_name} ended {status} in the queue"
                                + (f": {job['statusReason']}" if job.get("statusReason") else ""),
                                exit_code=1)
            sleep(poll)
    except KeyboardInterrupt:
        print(f"\ndetached; {launched.job_name} stays queued and runs when its turn comes. Cancel it: aws batch "
              f"terminate-service-job --job-id {launched.batch_job_id} --reason cancelled", file=sys.stderr)
        raise SystemExit(130) from None


@dataclass
class Prepared:
    plan: object
    report: object
    account: str
    bucket: str
    role_arn: str
    git: object


def prepare(spec, session, environ, out) -> Prepared:
    """Everything before CreateTrainingJob: read-only checks first, then the writes and uploads."""
    from ..aws import s3 as s3mod
    from ..plan.hashcache import HashCache
    from ..plan.request import build_request, default_bucket, neuron_cache_uri
    from ..plan.uploads import scan, write_plan

    cache = cache_root(environ)
    hashes = HashCache(os.path.join(cache, "hashes.json"))
    scanned = scan(spec, cache, hash_file=hashes)  # reads only: a bad file costs no AWS call, writes nothing

    # read-only checks against AWS; nothing is created (locally or in AWS) before all of them pass
    account = account_id(session)
    role_arn = resolve_role(session, spec.role, account)
    bucket = spec.bucket or default_bucket(spec.region, account)
    s3 = session.client("s3")
    bucket_exists = s3mod.check_bucket(s3, bucket, account, "--sagemaker-bucket", may_create=spec.bucket is None)
    for flag, other in other_buckets(spec, bucket):
        s3mod.check_bucket(s3, other, account, flag, may_create=False)
    sm = session.client("sagemaker")
    if spec.explicit_job_name:
        refuse_taken_name(sm, spec.job_name)

    plan = write_plan(spec, scanned, cache)
    hashes.save()
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    from ..spec.images import distribution_note
    from .tracking import requirements_note

    for note in (distribution_note(spec), requirements_note(spec)):
        if note:
            print(f"note: {note}", file=out)
    if not bucket_exists:
        s3mod.create_bucket(s3, bucket, spec.region)
    index = s3mod.ObjectIndex(os.path.join(cache, "objects", f"{bucket}.json"))
    uploader = s3mod.Uploader(s3, bucket, kms_key=spec.kms_key, index=index, owner=account)
    try:
        report = uploader.upload_plan(plan)
    finally:
        index.save()
    print(f"uploads: {plural(report.files_uploaded, 'object')} sent ({report.bytes_uploaded / 1e6:.1f} MB), "
          f"{report.files_copied} copied in S3, {report.files_present} already there", file=out)

    from ..gitinfo import read_git_info

    git = read_git_info(spec.source_dir)
    request = build_request(spec, plan, account=account, bucket=bucket, git=git, role=role_arn)
    checkpoint = (request.get("CheckpointConfig") or {}).get("S3Uri")
    if spec.fresh_start and checkpoint:
        import datetime

        from ..plan.request import archive_uri

        archive = archive_uri(checkpoint, datetime.datetime.now(datetime.timezone.utc))
        src_bucket, src = split_s3(checkpoint)
        moved = s3mod.archive_prefix(s3, src_bucket, src, split_s3(archive)[1], spec.kms_key)
        print(f"fresh start: {moved} earlier checkpoint files moved to {archive}", file=out)
    if spec.checkpoint_initial and checkpoint:
        dest_bucket, dest = split_s3(checkpoint)
        count = s3mod.seed_prefix(s3, dest_bucket, dest, spec.checkpoint_initial, spec.kms_key)
        print(f"checkpoint location seeded with {plural(count, 'file')} from {spec.checkpoint_initial}", file=out)
    if spec.experiment_name:
        ensure_experiment(sm, spec.experiment_name, spec.trial_name, out)
    cache_uri = neuron_cache_uri(spec, bucket)
    if cache_uri:
        cache_bucket, cache_key = split_s3(cache_uri)
        s3mod.put_marker(s3, cache_bucket, cache_key + ".atr-cache-marker", spec.kms_key)
    return Prepared(plan, report, account, bucket, role_arn, git)


def submit(spec, session, prepared: Prepared, out, rand=None) -> Launched:
    """CreateTrainingJob, idempotent; a generated name that is taken is replaced by a fresh one."""
    import dataclasses
    import datetime
    import secrets

    from ..plan.request import build_request
    from ..spec.naming import unique_job_name

    rand = rand or (lambda: secrets.token_hex(3))
    sm = session.client("sagemaker")

    def request_for(spec):
        return build_request(spec, prepared.plan, account=prepared.account, bucket=prepared.bucket,
                             git=prepared.git, role=prepared.role_arn)

    request = request_for(spec)
    for attempt in range(MAX_NAME_ATTEMPTS):
        name = request["TrainingJobName"]
        try:
            outcome = create_or_adopt(sm, request, spec.launch_token)
        except KeyboardInterrupt:
            report_interrupted_create(sm, name, spec.launch_token, spec.region)
            raise SystemExit(130) from None
        if outcome == "adopted":
            print(f"CreateTrainingJob's reply was lost; {name} carries this launch's token, so it is this "
                  "launch's job (no second job was created)", file=out)
        if outcome != "taken":
            break
        if spec.explicit_job_name:
            raise UsageError("--sagemaker-job-name", name, "a training job of this name already exists in "
                             "this account and region", "choose another name, or drop the flag for a generated one")
        if attempt + 1 == MAX_NAME_ATTEMPTS:
            raise AwsError(f"CreateTrainingJob: {MAX_NAME_ATTEMPTS} generated names were all taken; "
                           "pass --sagemaker-job-name")
        name = unique_job_name(spec.base_job_name, datetime.datetime.now(datetime.timezone.utc), rand())
        request = request_for(dataclasses.replace(spec, job_name=name))  # a fresh name; the rest unchanged
    return Launched(request["TrainingJobName"], request, prepared.report, spec.region)


def other_buckets(spec, bucket: str) -> list:
    """(flag, bucket) of every other bucket the job writes to: each must be this account's."""
    from ..plan.request import checkpoint_uri, neuron_cache_uri, output_uri

    found = []
    for flag, uri in (("--sagemaker-output-s3", output_uri(spec, bucket)),
                      ("--sagemaker-checkpoint-s3", checkpoint_uri(spec, bucket)),
                      ("--sagemaker-neuron-cache", neuron_cache_uri(spec, bucket))):
        if uri:
            name = split_s3(uri)[0]
            if name != bucket and name not in [b for _, b in found]:
                found.append((flag, name))
    return found


def ensure_experiment(sm, experiment: str, trial, out) -> None:
    """The experiment and trial a job's ExperimentConfig names must exist: create them, and take
    "already exists" as success (as aws-sagemaker-remote did; creating first also spares a
    Describe that moto cannot answer for a missing experiment)."""
    from botocore.exceptions import ClientError

    steps = [("experiment", sm.create_experiment, {"ExperimentName": experiment})]
    if trial:
        steps.append(("trial", sm.create_trial, {"TrialName": trial, "ExperimentName": experiment}))
    for kind, create, names in steps:
        try:
            create(**names)
        except ClientError as err:
            message = str(err.response.get("Error", {}).get("Message", "")).lower()
            if error_code(err) == "ResourceInUse" or "exist" in message:
                continue
            raise AwsError(f"Create{kind.title()} failed: {err}") from None
        print(f"SageMaker {kind}: {names.get('TrialName') or experiment}", file=out)


def refuse_taken_name(sm, name: str) -> None:
    """An explicit job name already in use is bad input, found before anything is uploaded."""
    from ..aws.jobs import describe_or_none

    if describe_or_none(sm, name) is not None:
        raise UsageError("--sagemaker-job-name", name, "a training job of this name already exists in this "
                         "account and region", "choose another name, or drop the flag for a generated one")


class NoCapacity(AwsError):
    """SageMaker could not provide the instances asked for (on creation)."""


CAPACITY_MARKERS = ("CapacityError", "InsufficientCapacity", "ResourceLimitExceeded",
                    "Unable to provision requested ML compute capacity")


def is_capacity_failure(text: str) -> bool:
    return any(marker in (text or "") for marker in CAPACITY_MARKERS)


def attempts(spec) -> list:
    """The specs to try in order: each instance type of --sagemaker-instance's list, and with
    --sagemaker-spot-fallback the same again on demand. Same data, same checkpoint prefix."""
    import dataclasses

    choices = [(spec.instance_type, spec.image), *spec.instance_fallbacks]
    modes = [spec.spot] + ([False] if spec.spot and spec.spot_fallback else [])
    return [dataclasses.replace(spec, instance_type=kind, image=image, spot=spot,
                                max_wait=spec.max_wait if spot else None, instance_fallbacks=(), spot_fallback=False)
            for spot in modes for kind, image in choices]


def create_or_adopt(sm, request: dict, token: str) -> str:
    """CreateTrainingJob, made idempotent by the launch token: "created"; "adopted" when the
    name is in use by the job this very launch created (its first reply was lost and botocore's
    retry met ResourceInUse); "taken" when another launch's job holds the name."""
    from botocore.exceptions import ClientError

    from ..aws.jobs import launch_token_of
    from ..plan.request import LAUNCH_TAG

    try:
        sm.create_training_job(**request)
        return "created"
    except ClientError as err:
        if is_capacity_failure(f"{error_code(err)} {err}"):
            raise NoCapacity(f"CreateTrainingJob failed: {err}") from None
        if error_code(err) != "ResourceInUse":
            raise AwsError(f"CreateTrainingJob failed: {err}") from None
    owner = launch_token_of(sm, request["TrainingJobName"], LAUNCH_TAG)
    return "adopted" if token and owner == token else "taken"


def report_interrupted_create(sm, name: str, token: str, region: str) -> None:
    """Ctrl-C while CreateTrainingJob was in flight: say whether the job exists after all."""
    from ..aws.jobs import launch_token_of
    from ..plan.request import LAUNCH_TAG

    try:
        owner = launch_token_of(sm, name, LAUNCH_TAG)
    except Exception:  # noqa: BLE001 - any failure here only means we cannot tell
        owner = "?"
    if token and owner == token:
        print(f"\ninterrupted, but job {name} was created and is running; {reattach_hint(name, region)}",
              file=sys.stderr)
    elif owner is None:
        print(f"\ninterrupted: no job {name} was created; the uploads are kept, so a relaunch sends "
              "nothing again", file=sys.stderr)
    else:
        print(f"\ninterrupted while creating {name}; whether it was created is unknown. Check: "
              f"aws-train-remote status {name} --region {region}", file=sys.stderr)


def print_started(job: str, region: str, out, environ) -> None:
    from ..aws.jobs import where_lines

    print(f"job: {job}", file=out)
    for line in where_lines(job, region, environ):
        print(line, file=out)
    out.flush()


def reattach_hint(job: str, region: str) -> str:
    return (f"the job keeps running. Follow it again: aws-train-remote attach {job} --region {region}\n"
            f"stop it: aws-train-remote stop {job} --region {region}")


def follow_job(session, job: str, region: str, *, stop_on_interrupt=False, out=None, sleep=time.sleep,
               tail=None, printer=None):
    """Follow with the Ctrl-C policy: detach (default) or stop; a second Ctrl-C always exits."""
    from .follow import Printer, follow

    out = out if out is not None else sys.stdout
    sm, logs = session.client("sagemaker"), session.client("logs")
    from ..aws.logs import LogTail

    printer = printer or Printer(out)
    tail = tail if tail is not None else LogTail(logs, job)  # one reader: after a stop, nothing is printed twice
    try:
        return follow(sm, logs, job, printer, sleep=sleep, tail=tail)
    except KeyboardInterrupt:
        if not stop_on_interrupt:
            print(f"\ndetached from {job}; {reattach_hint(job, region)}", file=sys.stderr)
            raise SystemExit(130) from None
    print(f"\nstopping {job} (Ctrl-C again to detach)", file=sys.stderr)
    sm.stop_training_job(TrainingJobName=job)
    try:
        return follow(sm, logs, job, printer, sleep=sleep, tail=tail)
    except KeyboardInterrupt:
        print(f"\ndetached from {job} while it stops", file=sys.stderr)
        raise SystemExit(130) from None


def download_model(s3, desc: dict, model_dir: str) -> int:
    """Fetch model.tar.gz and unpack it (safely) into model_dir; returns the file count."""
    import tempfile

    from ..runtime.safe_tar import UnsafeArchive, extract_into

    uri = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not uri:
        raise AwsError(f"{desc.get('TrainingJobName')}: no model artifacts recorded")
    bucket, key = split_s3(uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "model.tar.gz")
        s3.download_file(bucket, key, local)
        try:
            return extract_into(local, model_dir)
        except UnsafeArchive as err:
            raise AwsError(f"refusing to unpack {uri}: {err}; nothing was written to {model_dir}") from None


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
    with aws_failures_as_errors():
        return _launch_and_follow(spec, environ, session or AwsSession(profile=spec.profile, region=spec.region),
                                  out if out is not None else sys.stdout, sleep)


def _launch_and_follow(spec, environ, session, out, sleep) -> int:
    if spec.tune:
        return launch_tuning(spec, environ, session, out, sleep)
    tries = attempts(spec)
    for number, attempt in enumerate(tries):
        last = number + 1 == len(tries)
        if number:
            attempt = _renamed(attempt)
        try:
            result = _launch_one(attempt, environ, session, out, sleep, last)
        except NoCapacity as err:
            if last:
                raise
            _say_fallback(tries[number + 1], str(err), out)
            continue
        if result is not None:
            return result
        _say_fallback(tries[number + 1], "the job could not get capacity", out)
    return 1  # not reached: the last attempt returns or raises


def launch_tuning(spec, environ, session, out, sleep) -> int:
    """--sagemaker-tune: upload what changed, CreateHyperParameterTuningJob, then a table of the
    trials until it ends, the best trial and its model."""
    from botocore.exceptions import ClientError

    from ..aws.jobs import exit_status, plural
    from ..aws.models import resolve_model_job
    from ..launches import record_launch
    from ..plan.request import LAUNCH_TAG, build_request, tuning_request
    from .tuning import follow_tuning

    sm = session.client("sagemaker")
    spec = resolve_model_job(spec, sm)
    try:
        prepared = prepare(spec, session, environ, out)
    except KeyboardInterrupt:
        print(INTERRUPTED_BEFORE_CREATE, file=sys.stderr)
        raise SystemExit(130) from None
    request = build_request(spec, prepared.plan, account=prepared.account, bucket=prepared.bucket,
                            git=prepared.git, role=prepared.role_arn)
    tuning = tuning_request(spec, request, prepared.plan, prepared.bucket)
    name = tuning["HyperParameterTuningJobName"]
    try:
        sm.create_hyper_parameter_tuning_job(**tuning)
    except ClientError as err:
        if error_code(err) != "ResourceInUse" or not _tuning_is_ours(sm, name, spec.launch_token, LAUNCH_TAG):
            raise AwsError(f"CreateHyperParameterTuningJob failed: {err}") from None
        print(f"CreateHyperParameterTuningJob's reply was lost; {name} carries this launch's token, so it is "
              "this launch's tuning job", file=out)
    record_launch(name, spec.region, environ)
    print(f"tuning job: {name} ({spec.tune.max_jobs} trials, {spec.tune.parallel_jobs} at a time)", file=out)
    if not environ.get("AWS_ENDPOINT_URL"):
        print(f"console: https://{spec.region}.console.aws.amazon.com/sagemaker/home?region={spec.region}"
              f"#/hyper-tuning-jobs/{name}", file=out)
    stop = f"aws sagemaker stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name {name}"
    if not spec.wait:
        print(f"the tuning job runs on; stop it: {stop}", file=out)
        return 0
    try:
        desc = follow_tuning(sm, name, spec.tune, out, sleep)
    except KeyboardInterrupt:
        print(f"\ndetached from {name}; it runs on. Stop it: {stop}", file=sys.stderr)
        raise SystemExit(130) from None
    status = desc["HyperParameterTuningJobStatus"]
    counters = desc.get("TrainingJobStatusCounters") or {}
    print(f"{status}: {name}, " + ", ".join(f"{plural(v, 'trial')} {k}" for k, v in counters.items() if v), file=out)
    best = desc.get("BestTrainingJob") or {}
    if not best.get("TrainingJobName"):
        raise JobFailed(f"tuning job {name} ended {status} without a best trial"
                        + (f": {desc['FailureReason']}" if desc.get("FailureReason") else ""),
                        exit_code=exit_status(status) if status != "Completed" else 1)
    metric = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    values = ", ".join(f"{k}={v}" for k, v in (best.get("TunedHyperParameters") or {}).items())
    print(f"best: {best['TrainingJobName']} {metric.get('MetricName')}={metric.get('Value')} ({values})", file=out)
    trial = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    model = (trial.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if model:
        print(f"model: {model}", file=out)
    if spec.download and model:
        count = download_model(session.client("s3"), trial, spec.model_dir)
        print(f"model: {plural(count, 'file')} unpacked into {spec.model_dir}", file=out)
    return exit_status(status)


def _tuning_is_ours(sm, name: str, token: str, tag_key: str) -> bool:
    """A tuning job of this name that this very launch created (its create reply was lost)."""
    try:
        arn = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)["HyperParameterTuningJobArn"]
        tags = sm.list_tags(ResourceArn=arn).get("Tags", [])
    except Exception:  # noqa: BLE001 - when we cannot tell, it is not ours
        return False
    return bool(token) and any(t.get("Key") == tag_key and t.get("Value") == token for t in tags)


def _renamed(spec):
    """A relaunch needs a fresh job name and launch token (names are unique, tokens per create)."""
    import dataclasses
    import datetime
    import secrets

    from ..spec.naming import unique_job_name

    name = unique_job_name(spec.base_job_name, datetime.datetime.now(datetime.timezone.utc), secrets.token_hex(3))
    return dataclasses.replace(spec, job_name=name, explicit_job_name=False, launch_token=secrets.token_hex(16))


def _say_fallback(next_spec, why: str, out) -> None:
    how = "on demand" if not next_spec.spot else "on spot capacity"
    print(f"no capacity ({why.splitlines()[0][:200]}); relaunching on {next_spec.instance_type} {how}, with the "
          "same data and checkpoints", file=out)
    out.flush()


def _launch_one(spec, environ, session, out, sleep, last: bool):
    """One launch and its follow: the exit status, or None when it failed for capacity and another
    attempt remains."""
    from ..launches import last_launch, record_launch

    earlier = (last_launch(environ) or (None, None))[0] if spec.keep_alive else None
    launched = launch(spec, session, environ, out=out)
    if launched.batch_job_id:
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
    if status == "Failed" and not last and is_capacity_failure(desc.get("FailureReason")):
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
