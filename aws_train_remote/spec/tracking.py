"""Tracking: MLflow, SageMaker Experiments, tags and metric definitions. Pure."""
from __future__ import annotations

import os
import re
import unicodedata

from ..errors import UsageError
from .checks import need

KEYS = ("mlflow", "mlflow_experiment", "experiment_name", "trial_name", "tag", "metric", "experiment_run")

EXPERIMENT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,119}$")
MLFLOW_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-(tracking-server|app)/[\w-]+$")
TAG_LIMIT = 50
OWN_TAGS = 6  # version, launch token, git commit, git dirty, MLflow run, notify
METRIC_LIMIT = 40
# botocore's SageMaker model (data/sagemaker/2017-07-24/service-2.json, shapes TagKey and TagValue):
# both match ([\p{L}\p{Z}\p{N}_.:/=+\-@]*), a key 1-128 characters, a value 0-256. Python's re has no
# \p{..}, so the classes are read as Unicode categories; the pure layer does not import botocore.
TAG_CATEGORIES = ("L", "Z", "N")  # letters, separators (a space), numbers
TAG_PUNCTUATION = "_.:/=+-@"
TAG_ALLOWED = "letters, digits, spaces and _ . : / = + - @"


def tracking_fields(v, *, cwd: str, base_job_name: str, tune: bool = False) -> dict:
    """The JobSpec fields of tracking, or UsageError for the first flag that is wrong. tune: whether
    the tuning area has a tuning job (its trials take no ExperimentConfig)."""
    mlflow = mlflow_uri(v.get("mlflow"), cwd)
    need(not v.get("mlflow_experiment") or bool(mlflow), "--sagemaker-mlflow-experiment", v.get("mlflow_experiment"),
         "names an experiment of an MLflow server that was not given", "add --sagemaker-mlflow URI_OR_ARN")
    experiment, trial = v.get("experiment_name"), v.get("trial_name")
    need(not trial or bool(experiment), "--sagemaker-trial-name", trial, "a trial belongs to an experiment",
         "add --sagemaker-experiment-name NAME")
    run = v.get("experiment_run")
    need(not run or bool(experiment), "--sagemaker-experiment-run", run, "a run belongs to an experiment",
         "add --sagemaker-experiment-name NAME")
    need(not (run and tune), "--sagemaker-experiment-run", run, "a tuning job's trials take no ExperimentConfig",
         "drop it, or --sagemaker-tune")
    for flag, name in (("--sagemaker-experiment-name", experiment), ("--sagemaker-trial-name", trial),
                       ("--sagemaker-experiment-run", run)):
        need(not name or bool(EXPERIMENT_NAME.match(name)), flag, name, "not a valid SageMaker Experiments name",
             "use up to 120 letters, digits and hyphens, starting with a letter or digit")
    return dict(mlflow=mlflow, mlflow_experiment=(v.get("mlflow_experiment") or base_job_name) if mlflow else None,
                experiment_name=experiment, trial_name=trial, experiment_run=run, tags=_tags(v),
                metrics=_metrics(v))


def mlflow_uri(raw, cwd: str):
    """--sagemaker-mlflow as the job will use it: a relative file: store made absolute."""
    if not raw:
        return None
    if raw.startswith("file:"):
        path = raw[len("file://"):] if raw.startswith("file://") else raw[len("file:"):]
        return "file://" + os.path.abspath(os.path.join(cwd, path))
    need(raw.startswith(("http://", "https://", "databricks")) or bool(MLFLOW_ARN.match(raw)), "--sagemaker-mlflow",
         raw, "not an MLflow tracking URI or a SageMaker MLflow ARN",
         "use e.g. https://mlflow.example.com, file:/path/mlruns or arn:aws:sagemaker:...:mlflow-tracking-server/NAME")
    return raw


def _tags(v) -> tuple:
    tags = tuple(v.get("tag") or ())
    need(len(tags) <= TAG_LIMIT - OWN_TAGS, "--sagemaker-tag", len(tags), "too many tags",
         f"SageMaker allows {TAG_LIMIT}, of which aws-train-remote uses {OWN_TAGS}")
    for key, value in tags:
        need(0 < len(key) <= 128 and not key.lower().startswith("aws:"), "--sagemaker-tag", key,
             "tag keys must be 1-128 characters and not start with aws:", "rename the tag")
        need(len(value) <= 256, "--sagemaker-tag", key, "value longer than 256 characters", "shorten it")
        for part, text in (("key", key), ("value", value)):
            bad = tag_refused_characters(text)
            need(not bad, "--sagemaker-tag", key if part == "key" else f"{key}={value}",
                 f"the tag {part} holds {bad}, which SageMaker refuses in a tag (only {TAG_ALLOWED})",
                 "drop or replace those characters")
    return tags


def tag_refused_characters(text: str) -> str:
    """The characters of `text` SageMaker's tag pattern refuses, shown once each ("',' '!'"), or ""."""
    bad = []
    for char in text:
        if char in TAG_PUNCTUATION or unicodedata.category(char)[0] in TAG_CATEGORIES:
            continue
        shown = repr(char)
        if shown not in bad:
            bad.append(shown)
    return " ".join(bad)


def _metrics(v) -> tuple:
    metrics = tuple(v.get("metric") or ())
    need(len(metrics) <= METRIC_LIMIT, "--sagemaker-metric", len(metrics), "too many metrics",
         f"SageMaker allows {METRIC_LIMIT}")
    for name, regex in metrics:
        need(0 < len(name) <= 255 and 0 < len(regex) <= 500, "--sagemaker-metric", f"{name}={regex}",
             "name must be 1-255 and regex 1-500 characters", "e.g. --sagemaker-metric 'loss=loss: ([0-9.]+)'")
        try:
            re.compile(regex)
        except re.error as err:
            raise UsageError("--sagemaker-metric", f"{name}={regex}", f"bad regex ({err})",
                             "fix the regular expression") from None
    return metrics
