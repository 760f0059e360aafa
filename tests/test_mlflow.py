"""Issue 10.4, MLflow: --sagemaker-mlflow logs the launch as a run (job, instance, spot, the script's
flags) before the job starts, hands the run to the job (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME,
MLFLOW_RUN_ID), and the demo's metrics land in that run; a real local MLflow file store."""
import json
import os

import pytest
from conftest import REPO, run_python
from test_dry_run import validate_create_training_job

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")
STORE = {"MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3 keeps its file store behind this switch


def test_dry_run_sets_the_tracking_environment(tmp_path):
    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", "--sagemaker-mlflow", "https://mlflow.example.com",
                         "--sagemaker-mlflow-experiment", "demo-exp"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    validate_create_training_job(json.loads(result.stdout)["request"])
    env = json.loads(result.stdout)["request"]["Environment"]
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com" and env["MLFLOW_EXPERIMENT_NAME"] == "demo-exp"
    arn = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/team"
    managed = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                          "--sagemaker-region", "us-east-1", "--sagemaker-mlflow", arn], cwd=tmp_path)
    assert managed.returncode == 0, managed.stderr
    doc = json.loads(managed.stdout)
    assert doc["request"]["Environment"]["MLFLOW_TRACKING_URI"] == arn
    assert any("needs the sagemaker-mlflow plugin" in n for n in doc["notes"])
    bad = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                      "--sagemaker-region", "us-east-1", "--sagemaker-mlflow", "mlflow.example.com"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not an MLflow tracking URI" in bad.stderr


def test_local_mode_run_params_and_the_demos_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for the client below; MLflow 3 keeps it behind this
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    result = run_python([DEMO, "--epochs", "3", "--lr", "0.1", "--sagemaker-run", "local", "--sagemaker-mlflow",
                         "file:mlruns", "--sagemaker-mlflow-experiment", "demo-exp"], cwd=tmp_path, env=STORE,
                        timeout=300)
    assert result.returncode == 0, result.stderr
    assert "MLflow: run " in result.stdout
    # MlflowClient(tracking_uri=...), not mlflow.set_tracking_uri: that exports MLFLOW_TRACKING_URI into this
    # process, where the sandbox runs later tests' jobs
    client = MlflowClient(tracking_uri=f"file://{tmp_path / 'mlruns'}")
    experiment = client.get_experiment_by_name("demo-exp")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.1" and run.data.params["epochs"] == "3"
    assert run.data.tags["aws-train-remote.instance_type"] == "ml.m5.large"
    assert run.data.tags["aws-train-remote.spot"] == "false" and run.data.tags["aws-train-remote.mode"] == "local"
    job = run.data.tags["aws-train-remote.job_name"]
    assert f"local job: {job}" in result.stdout and run.info.run_name == job
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert abs(history[-1].value - float(result.stdout.split("epoch=3 loss=")[1].split()[0])) < 1e-3


def test_through_the_sandbox_the_job_continues_the_launch_run(tmp_path, sandbox, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the sandbox runs the job in this process's environment
    result = run_python([DEMO, "--epochs", "2", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                         "--sagemaker-mlflow", "file:mlruns"], cwd=tmp_path, env=STORE, timeout=300)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split("MLflow: run ")[1].split()[0]
    [body] = [c["body"] for c in sandbox.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    assert body["Environment"]["MLFLOW_RUN_ID"] == run_id
    assert {"Key": "aws-train-remote:mlflow-run", "Value": run_id} in body["Tags"]
    client = MlflowClient(tracking_uri=f"file://{tmp_path / 'mlruns'}")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["aws-train-remote.mode"] == "yes"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2]
    assert "MLFLOW_TRACKING_URI" not in os.environ  # nothing leaks into later sandbox jobs


def test_an_unreachable_tracking_server_is_one_line_before_any_upload(tmp_path, aws):
    """Issue 17.8: the server is checked with the launch's read-only checks, so nothing is uploaded,
    written or created for a launch that cannot be tracked."""
    pytest.importorskip("mlflow")
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_python([DEMO, "--epochs", "1", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                         "--sagemaker-mlflow", f"http://127.0.0.1:{port}"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and f"--sagemaker-mlflow=http://127.0.0.1:{port}: the MLflow tracking " \
        "server cannot be reached" in result.stderr
    ops = [c["op"] for c in aws.calls()]
    assert not [op for op in ops if op in ("s3.PutObject", "s3.CreateBucket", "s3.CreateMultipartUpload")
                or op.startswith("SageMaker.Create")], ops
    cache = tmp_path / "home" / ".cache" / "aws-train-remote"
    assert not (cache / "objects").exists()
