"""Issue 19.8, every combination of the capacity flags: an instance list (without counts, or with a
count per type), instance groups, an image, spot, spot fallback, a queue, tuning, a count and a
training plan (with a maximum pending time). A dry run of each either gives requests that botocore's
ParamValidator accepts (CreateTrainingJob; the tuning job and the queue's SubmitServiceJob with its
payload when shown) or one line, exit 2, naming the flag; never a traceback. An on-demand list is
InstancePreferences, a spot list the client's own relaunch (issue 19.3). The dry runs run in this
process (about 20 ms each) against an endpoint nothing listens on, so any AWS call would fail
loudly. Issue 19.9: each area owns its options, once."""
import functools
import importlib.util
import itertools
import json
import os
import sys
import traceback

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator
from conftest import write_script

from aws_train_remote import training_main
from aws_train_remote.spec import (
    compute,
    cost,
    data,
    debugging,
    images,
    job,
    security,
    source,
    storage,
    tracking,
    tuning,
)
from aws_train_remote.spec.options import BY_KEY

ROLE = "arn:aws:iam::123456789012:role/R"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1.0"
SCRIPT = """
def main(args):
    raise SystemExit("main must not run in a dry run")
"""
TUNE = """
objective: {metric: loss, type: Minimize}
strategy: Random
max_jobs: 4
parallel_jobs: 2
parameters:
  lr: {type: continuous, min: 0.001, max: 0.5}
"""
PLAN = "arn:aws:sagemaker:us-east-1:123456789012:training-plan/p5-week-abcdefghijkl"
BASE_TYPE = "ml.p5.48xlarge"  # a GPU type: --sagemaker-max-pending bounds only GPU and Trainium jobs
LISTS = {"list": "ml.g5.xlarge,ml.g6.xlarge", "counts": "ml.g5.xlarge:2,ml.g6.xlarge:4"}
# Each dimension: its name and, for each way it can be on, the flags it adds (off: none). The list is
# one dimension of three ways (off, a plain list, a list with a count per type). The groups' types
# differ from --sagemaker-instance and from each other: that is what crashed (KeyError).
DIMENSIONS = {
    "list": {name: ["--sagemaker-instance", value] for name, value in LISTS.items()},
    "groups": ["--sagemaker-instance-group", "gpu=ml.g5.xlarge:1", "--sagemaker-instance-group", "cpu=ml.c5.xlarge:2"],
    "image": ["--sagemaker-image", IMAGE],
    "spot": ["--sagemaker-spot"],
    "fallback": ["--sagemaker-spot-fallback"],
    "queue": ["--sagemaker-queue", "ml-training"],
    "tune": ["--sagemaker-tune", "tune.yaml"],
    "count": ["--sagemaker-instance-count", "3"],
    "plan": ["--sagemaker-training-plan", PLAN, "--sagemaker-max-pending", "2h"],
}


def ways(name):
    """(label, flags) for each way dimension `name` is on."""
    flags = DIMENSIONS[name]
    return list(flags.items()) if isinstance(flags, dict) else [(name, flags)]


def expected_refusal(on: set):
    """The one line a refused combination must give (a part of it), in the order the areas judge
    them; None when the combination is valid. "list" stands for either kind of list."""
    listed = next((LISTS[k] for k in LISTS if k in on), None)
    if listed:
        on = on | {"list"}
    plan = f"--sagemaker-training-plan={PLAN}: "
    rules = [
        ({"list", "groups"}, f"--sagemaker-instance={listed}: an instance list does not combine with instance groups"),
        ({"counts", "count"}, "--sagemaker-instance-count=3: --sagemaker-instance gives each type its count"),
        ({"fallback"} if "spot" not in on else None, "--sagemaker-spot-fallback=yes: only applies to spot jobs"),
        ({"queue", "list"}, "--sagemaker-queue=ml-training: a queue schedules capacity itself"),
        ({"tune", "list"}, f"--sagemaker-instance={listed}: a tuning job runs on one instance type"),
        ({"plan", "groups"}, plan + "a training plan reserves one instance type, and a heterogeneous cluster has"),
        ({"plan", "list"}, plan + "a training plan reserves one instance type, which the job's must match"),
        ({"plan", "spot"}, plan + "a training plan runs the job on its reserved capacity, not on spot"),
        ({"tune", "queue"}, "--sagemaker-queue=ml-training: a tuning job is not queued"),
        ({"tune", "groups"}, "--sagemaker-instance-group=gpu,cpu: a tuning job runs on one instance type"),
        ({"tune", "fallback"}, "--sagemaker-spot-fallback=yes: a tuning job's trials are not relaunched on demand"),
    ]
    return next((line for needs, line in rules if needs is not None and needs <= on), None)


@functools.lru_cache(maxsize=None)
def input_shape(service: str, operation: str):
    return get_session().get_service_model(service).operation_model(operation).input_shape


def validate(service: str, operation: str, params: dict) -> str:
    report = ParamValidator().validate(params, input_shape(service, operation))
    return report.generate_report() if report.has_errors() else ""


def expected_resources(on: set):
    """(InstanceType, InstanceCount, InstancePreferences) the request must carry: an on-demand list is
    InstancePreferences, its count once for all or on each type; a spot list starts on its first."""
    count = 3 if "count" in on else 1
    if "counts" in on:
        if "spot" in on:
            return "ml.g5.xlarge", 2, None
        return None, None, [{"InstanceType": "ml.g5.xlarge", "InstanceCount": 2},
                            {"InstanceType": "ml.g6.xlarge", "InstanceCount": 4}]
    if "list" in on:
        if "spot" in on:
            return "ml.g5.xlarge", count, None
        return None, count, [{"InstanceType": "ml.g5.xlarge"}, {"InstanceType": "ml.g6.xlarge"}]
    return BASE_TYPE, count, None


def check_request(on: set, doc: dict) -> list:
    """What is wrong with a dry run's document for this combination ([] when nothing)."""
    request = doc["request"]
    problems = [validate("sagemaker", "CreateTrainingJob", request)]
    resources = request["ResourceConfig"]
    if "groups" in on:
        problems.append("" if [g["InstanceGroupName"] for g in resources["InstanceGroups"]] == ["gpu", "cpu"]
                        and "InstanceType" not in resources else f"groups not sent: {resources}")
        first = "ml.g5.xlarge"
    else:
        want = expected_resources(on)
        got = (resources.get("InstanceType"), resources.get("InstanceCount"), resources.get("InstancePreferences"))
        problems.append("" if got == want else f"ResourceConfig {got}, expected {want}")
        first = want[0] or want[2][0]["InstanceType"]
    default = images.default_image("pytorch", BY_KEY["framework_version"].default, first, "us-east-1")
    image = request["AlgorithmSpecification"]["TrainingImage"]
    problems.append("" if image == (IMAGE if "image" in on else default) else f"image {image}")
    problems.append("" if request["EnableManagedSpotTraining"] == ("spot" in on) else "spot not sent")
    planned = (resources.get("TrainingPlanArn"), request["StoppingCondition"].get("MaxPendingTimeInSeconds"))
    problems.append("" if planned == ((PLAN, 7200) if "plan" in on else (None, None)) else f"plan sent as {planned}")
    if "tune" in on:
        problems.append(validate("sagemaker", "CreateHyperParameterTuningJob", doc["tuning_request"]))
        trial = doc["tuning_request"]["TrainingJobDefinition"]  # the trials run on the plan too
        problems.append("" if trial["ResourceConfig"] == resources else "the trials' ResourceConfig differs")
    if "queue" in on:
        submit = doc["submit_service_job"]
        problems.append(validate("batch", "SubmitServiceJob", submit))
        payload = json.loads(submit["serviceRequestPayload"])  # the queue hands SageMaker the plan
        problems.append(validate("sagemaker", "CreateTrainingJob", payload))
        problems.append("" if payload["ResourceConfig"] == resources else "the payload's ResourceConfig differs")
    return [p for p in problems if p]


def dry_run(main, argv, environ, capsys):
    """(exit status, stdout, stderr) of one in-process dry run; an exception propagates."""
    try:
        status = training_main(main, inputs={"train": "data"}, additional_arguments=[
            {"dest": "--lr", "type": float, "default": 0.1}], argv=argv, environ=environ)
    except SystemExit as stop:
        status = stop.code
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture
def script_main(tmp_path, monkeypatch):
    """main of a train.py in its own project folder (training_main ships the folder of main's module)."""
    path = write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1,2\n")
    (tmp_path / "tune.yaml").write_text(TUNE)
    monkeypatch.chdir(tmp_path)
    loaded = importlib.util.spec_from_file_location("combination_train", path)
    module = importlib.util.module_from_spec(loaded)
    monkeypatch.setitem(sys.modules, "combination_train", module)
    loaded.loader.exec_module(module)
    return module.main


def test_every_combination_of_the_capacity_flags(script_main, capsys):
    environ = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # no AWS call may succeed
    base = ["--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-region", "us-east-1", "--sagemaker-role",
            ROLE, "--sagemaker-metric", "loss=loss: ([0-9.]+)", "--sagemaker-instance", BASE_TYPE]
    figures = {"valid": 0, "refused": 0, "crashed": 0}
    wrong = []
    for chosen in itertools.product(*([None, *ways(name)] for name in DIMENSIONS)):
        on = {label for label, _ in filter(None, chosen)}
        argv = base + [flag for way in chosen if way for flag in way[1]]  # a later --sagemaker-instance wins
        label = "+".join(sorted(on)) or "plain"
        try:
            status, out, err = dry_run(script_main, argv, environ, capsys)
        except Exception:  # a traceback for the user: the defect this test exists for
            figures["crashed"] += 1
            wrong.append(f"{label}: crashed: {traceback.format_exc().splitlines()[-1]}")
            continue
        refusal = expected_refusal(on)
        if status == 2:
            figures["refused"] += 1
            lines = err.strip().splitlines()
            if refusal is None or len(lines) != 1 or refusal not in lines[0] or out:
                wrong.append(f"{label}: refused with {err.strip()!r}, expected {refusal!r}")
            continue
        if status not in (0, None):
            figures["crashed"] += 1
            wrong.append(f"{label}: exit {status}: {err.strip()}")
            continue
        figures["valid"] += 1
        problems = ["valid, but expected the refusal " + refusal] if refusal else check_request(on, json.loads(out))
        wrong += [f"{label}: {p}" for p in problems]
    total = sum(figures.values())
    print(f"capacity combinations: {total}: valid {figures['valid']} / refused {figures['refused']} / "
          f"crashed {figures['crashed']}")
    assert not wrong, "\n".join(wrong[:20])
    assert total == 3 * 2 ** (len(DIMENSIONS) - 1) and figures["crashed"] == 0


AREAS = (job, compute, storage, security, tracking, source, data, debugging, tuning, cost)


def test_each_option_is_judged_by_exactly_one_area():
    owners = {}
    for area in AREAS:
        for key in area.KEYS:
            owners.setdefault(key, []).append(area.__name__.rsplit(".", 1)[-1])
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}, "an option owned twice"
    assert set(owners) == set(BY_KEY), "options without an area, or area keys that are not options"


def test_an_area_reading_an_option_it_does_not_own_fails_loudly():
    from aws_train_remote.spec.checks import area_values

    owned = area_values({"spot": True, "queue": "q"}, compute.KEYS)
    assert owned["queue"] == "q" and owned.get("image") is None
    with pytest.raises(KeyError, match="'bucket' is not an option of this area"):
        owned.get("bucket")
