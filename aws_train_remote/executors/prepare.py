"""The read-only checks and the writes before CreateTrainingJob: the account, the role, the
buckets, a taken job name, the experiment; then the plan's uploads (prepare, its Prepared).

Nothing is created, locally or in AWS, before every read-only check has passed.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ..aws.jobs import plural
from ..aws.session import error_code
from ..contract import split_s3
from ..errors import AwsError, UsageError
from ..paths import cache_root


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


@dataclass
class Prepared:
    plan: object
    report: object
    account: str
    bucket: str
    role_arn: str
    git: object


def prepare(spec, session, environ, out, costed=None) -> Prepared:
    """Everything before CreateTrainingJob: read-only checks first, then the writes and uploads.
    `costed`: the specs whose worst case is printed and held to --sagemaker-budget (None: not again)."""
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
    if spec.explicit_job_name and not _pending_name(spec.job_name, environ):
        refuse_taken_name(sm, spec.job_name)
    if spec.mlflow:
        from .tracking import check_tracking

        check_tracking(spec)
    if costed:  # read-only too (pricing:GetProducts): an over-budget launch has created nothing
        from .cost import PriceBook, check_launch_cost

        check_launch_cost(costed, PriceBook(session, environ, warn=lambda text: None), out)  # its line says why

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


def _pending_name(name: str, environ) -> bool:
    """A pending create of an interrupted launch from this folder holds `name` (create.py)."""
    from ..launches import pending_creates

    return any(r["name"] == name for r in pending_creates(environ))


def other_buckets(spec, bucket: str) -> list:
    """(flag, bucket) of every other bucket the job writes to: each must be this account's."""
    from ..plan.request import checkpoint_uri, neuron_cache_uri, output_uri, tensorboard_uri

    found = []
    for flag, uri in (("--sagemaker-output-s3", output_uri(spec, bucket)),
                      ("--sagemaker-checkpoint-s3", checkpoint_uri(spec, bucket)),
                      ("--sagemaker-neuron-cache", neuron_cache_uri(spec, bucket)),
                      ("--sagemaker-tensorboard", tensorboard_uri(spec, bucket))):
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
