"""--sagemaker-mlflow: the launch's MLflow run. Created before the job starts (with the job's name,
instance, spot, git commit and the script's flags), handed to the job as MLFLOW_RUN_ID so the
script's own mlflow.start_run() continues it, and closed with the job's outcome if the script
left it open. mlflow is imported only here, only when the flag is given."""
from __future__ import annotations

import json
import sys

from ..errors import AwsError, MissingDependencyError

END_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}


def requirements_note(spec):
    """One line when a managed MLflow ARN is used but the job's requirements lack the plugin that
    lets mlflow reach it (sagemaker-mlflow); None otherwise."""
    import os

    if not (spec.mlflow or "").startswith("arn:"):
        return None
    text = ""
    if spec.requirements:
        try:
            with open(os.path.join(spec.source_dir, spec.requirements), encoding="utf-8") as fh:
                text = fh.read().lower()
        except OSError:
            text = ""
    if "sagemaker-mlflow" in text:
        return None
    return ("a SageMaker MLflow ARN needs the sagemaker-mlflow plugin (and mlflow) in the job: add both to "
            f"{spec.requirements or 'a requirements.txt beside the script'}")


HEALTH_TIMEOUT = 10.0  # seconds the tracking server has to answer the launch's check


def check_tracking(spec, timeout: float = HEALTH_TIMEOUT) -> None:
    """--sagemaker-mlflow can be used from here: mlflow is installed, and an http(s) tracking server
    answers. One of the launch's read-only checks, so an unreachable server is one line (exit 2)
    before anything is uploaded or written (issue 17, item 8). Any HTTP answer, even 401 or 404, and
    any TLS answer count as reachable: mlflow's own settings (tokens, certificates) decide the rest
    when the run is created. file: stores are on this machine; databricks and SageMaker MLflow ARNs
    are reached through their own plugins, at that point."""
    import importlib.util
    import socket
    import ssl
    import urllib.error
    import urllib.request

    from ..errors import UsageError

    if importlib.util.find_spec("mlflow") is None:
        _client(spec.mlflow)  # raises the install hint
    if not spec.mlflow.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(spec.mlflow.rstrip("/") + "/health", timeout=timeout).close()
        return
    except urllib.error.HTTPError:
        return  # it answered
    except urllib.error.URLError as err:
        reason = err.reason
    except (socket.timeout, OSError) as err:
        reason = err
    if isinstance(reason, ssl.SSLError):
        return
    why = "no answer in %g s" % timeout if isinstance(reason, socket.timeout) else str(reason)
    raise UsageError("--sagemaker-mlflow", spec.mlflow, f"the MLflow tracking server cannot be reached ({why})",
                     "start it or fix the URI; nothing was uploaded or created")


def _client(uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingDependencyError("--sagemaker-mlflow needs MLflow here: pip install 'aws-train-remote[mlflow]' "
                                     "(mlflow-skinny); a SageMaker MLflow ARN also needs sagemaker-mlflow") from None
    return MlflowClient(tracking_uri=uri)  # not mlflow.set_tracking_uri: it exports MLFLOW_TRACKING_URI


def start_run(spec, git=None) -> str:
    """The run for this launch; its id."""
    client = _client(spec.mlflow)
    try:
        experiment = client.get_experiment_by_name(spec.mlflow_experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(spec.mlflow_experiment)
        tags = {"aws-train-remote.job_name": spec.job_name, "aws-train-remote.region": spec.region,
                "aws-train-remote.instance_type": spec.instance_type,
                "aws-train-remote.instance_count": str(spec.instance_count),
                "aws-train-remote.spot": "true" if spec.spot else "false",
                "aws-train-remote.image": spec.image, "aws-train-remote.mode": spec.run}
        if git is not None and getattr(git, "commit", None):
            tags["mlflow.source.git.commit"] = git.commit
        run = client.create_run(experiment_id, tags=tags, run_name=spec.job_name)
        for name, text in spec.hyperparameters:  # the script's own flags, as it will parse them
            value = json.loads(text)
            client.log_param(run.info.run_id, name, value if isinstance(value, str) else json.dumps(value))
    except Exception as err:  # noqa: BLE001 - any tracking failure is one line, before the job exists
        raise AwsError(f"--sagemaker-mlflow {spec.mlflow}: could not log the launch ({err})") from None
    return run.info.run_id


def end_run(spec, run_id: str, status: str) -> None:
    """Close the run with the job's outcome unless the script already did."""
    try:
        client = _client(spec.mlflow)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, END_STATUS.get(status, "FAILED"))
    except Exception as err:  # noqa: BLE001 - the job's result stands; the run stays as it is
        print(f"warning: --sagemaker-mlflow: could not close run {run_id} ({err})", file=sys.stderr)
