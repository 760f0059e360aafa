"""--sagemaker-dry-run: the exact CreateTrainingJob request and the upload plan, as JSON.

No AWS call at all, so it works without credentials. What cannot be known offline (the
account id, when the role is given by name and no bucket is set) is shown as <account>.
"""
from __future__ import annotations

import json
import os

from ..gitinfo import read_git_info
from ..paths import cache_root
from ..plan.hashcache import HashCache
from ..plan.request import ACCOUNT_PLACEHOLDER, account_from_role, build_request, default_bucket
from ..plan.uploads import build_upload_plan


def dry_run_document(spec, environ) -> dict:
    import dataclasses

    from ..spec.job import JOB_MODEL

    cache = cache_root(environ)
    model_jobs = [i.location[len(JOB_MODEL):] for i in spec.inputs if i.model_init and i.location.startswith(JOB_MODEL)]
    if model_jobs:  # looked up at launch: a dry run makes no AWS call
        spec = dataclasses.replace(spec, inputs=tuple(
            dataclasses.replace(i, location=f"s3://<model-of-{model_jobs[0]}>/model.tar.gz")
            if i.model_init else i for i in spec.inputs))
    hashes = HashCache(os.path.join(cache, "hashes.json"))
    plan = build_upload_plan(spec, cache, hash_file=hashes)
    hashes.save()
    account = account_from_role(spec.role)
    notes = []
    if account is None:
        account = ACCOUNT_PLACEHOLDER
        notes.append("<account> is the AWS account id, looked up with sts:GetCallerIdentity at launch")
    request = build_request(spec, plan, account=account, git=read_git_info(spec.source_dir))
    notes += list(plan.warnings)
    from ..runtime.requirements import is_project

    if is_project(spec.source_dir):
        notes.append("the source folder is a Python project (setup.py, or pyproject.toml with a build-system): "
                     "the job installs it (pip install .) before the script starts, in every mode")
    from ..plan.request import readable_left_out

    notes += readable_left_out(spec, request["HyperParameters"])
    if model_jobs:
        notes.append(f"<model-of-{model_jobs[0]}> is the model.tar.gz of job {model_jobs[0]}, looked up at launch")
    from ..spec.images import distribution_note, image_note

    notes.append(image_note(spec, spec.image_given))
    from .capacity import capacity_notes

    notes += capacity_notes(spec)
    from .tracking import requirements_note

    notes += [note for note in (distribution_note(spec), requirements_note(spec)) if note]
    notes += [f"{rel}: shipped although .gitignore or .sagemakerignore matches it: {why}" for rel, why in plan.shipped]
    if plan.skipped:
        notes.append(f"{len(plan.skipped)} files or folders of the source are kept out of the code bundle "
                     "(see kept_out); a `!name` line in .sagemakerignore ships one on purpose")
    document = {"request": request}
    bucket = spec.bucket or default_bucket(spec.region, account)
    if plan.store_inputs():
        notes.append("File and Pipe inputs travel as content-addressed objects of the input store (large files, "
                      "packs of small files, a tree) named by a manifest (see inputs); a launch sends only the "
                      "objects S3 does not hold yet")
    if spec.tune:
        from ..plan.request import tuning_request

        document["tuning_request"] = tuning_request(spec, request, plan, bucket)
        notes.append(f"a tuning job of {spec.tune.max_jobs} trials ({spec.tune.parallel_jobs} at a time), each the "
                     "request above with the tuned values: CreateHyperParameterTuningJob, shown as tuning_request")
    if spec.queue:
        from ..plan.request import service_job_request

        document["submit_service_job"] = service_job_request(spec, request)
        notes.append(f"the job is queued in AWS Batch queue {spec.queue} (SubmitServiceJob, shown as "
                     "submit_service_job); its payload is the request above")
    document["estimate"] = _estimate(spec, environ, notes)
    inputs = [i.describe(bucket) for i in plan.store_inputs()]
    inputs += [{"input": i.name, "layout": "prefix", "prefix": i.prefix_key, "manifest": i.manifest_key,
                "files": len(i.files), "bytes": sum(f.size for f in i.files)} for i in plan.prefix_inputs()]
    return {**document, "uploads": plan.describe(bucket), "inputs": inputs,
            "kept_out": [{"path": rel, "reason": why} for rel, why in plan.skipped],
            "notes": notes}


def _estimate(spec, environ, notes) -> dict:
    """The launch's worst case (executors/cost.py), priced from the day's price cache only: a dry run
    makes no AWS call, so an unknown price says so; the budget's verdict as a note."""
    from .capacity import attempts
    from .cost import PriceBook, budget_refusal, worst_case

    estimate = worst_case(attempts(spec), PriceBook(None, environ))
    notes += [line.strip() for line in estimate.lines()]
    refusal = budget_refusal(spec, estimate)
    record = estimate.record()
    if spec.budget is not None:
        record["budget_usd"] = spec.budget
        record["budget_refuses"] = refusal is not None
        if refusal:
            notes.append(f"budget: the launch would be refused ({refusal})")
        elif estimate.usd is None:
            notes.append("budget: the price is unknown; --sagemaker-budget-unknown-ok lets the launch go on")
        else:
            notes.append(f"budget: within --sagemaker-budget {spec.budget:g} USD")
    return record


def print_dry_run(spec, out, environ) -> int:
    json.dump(dry_run_document(spec, environ), out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")
    return 0
