"""End to end in the sandbox: CreateTrainingJob really runs the job on this machine through
the runtime, logs land in CloudWatch Logs and are tailed, artifacts land in S3."""
import io
import json
import os
import tarfile
import time

import boto3
from conftest import REPO, run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
BUCKET = "sagemaker-us-east-1-123456789012"
DEMO = os.path.join(REPO, "demo", "train.py")


def remote(*args, cwd):
    return run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE, *args], cwd=cwd, timeout=240)


def model_json(job):
    s3 = boto3.client("s3", region_name="us-east-1")
    body = s3.get_object(Bucket=BUCKET, Key=f"aws-train-remote/output/{job}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return json.load(tar.extractfile("model.json"))


def job_name(stdout):
    return next(line.split()[1] for line in stdout.splitlines() if line.startswith("job: "))


def test_demo_runs_tails_and_resumes_from_spot_checkpoint(tmp_path, sandbox):
    first = remote("--epochs", "3", "--sagemaker-spot", "--sagemaker-base-job-name", "demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    for epoch in (1, 2, 3):
        assert f"[algo-1] epoch={epoch} " in out
    assert "status: Training" in out and "Completed: demo-" in out
    assert len(model_json(job_name(out))["weights"]) == 3

    sandbox.clear_faults()
    second = remote("--epochs", "5", "--sagemaker-spot", "--sagemaker-base-job-name", "demo", "--sagemaker-download",
                    "--model-dir", str(tmp_path / "downloaded"), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "[algo-1] resumed from checkpoint epoch 3" in second.stdout
    assert "[algo-1] epoch=1 " not in second.stdout and "[algo-1] epoch=5 " in second.stdout
    assert "0 objects sent (0.0 MB)" in second.stdout
    puts = [c for c in sandbox.calls() if c["op"] in ("s3.PutObject", "s3.UploadPart")]
    assert all(c["bytes"] < 10_000 for c in puts)  # only the job's own small checkpoints and model
    assert json.loads((tmp_path / "downloaded" / "model.json").read_text())["weights"]


def test_failing_script_reports_the_exception(tmp_path, sandbox):
    write_script(tmp_path, """
        from aws_train_remote import training_main
        def main(args):
            raise ValueError("learning rate must be positive, got -1")
        if __name__ == "__main__":
            training_main(main)
        """)
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE], cwd=tmp_path, timeout=240)
    assert result.returncode == 1
    assert "failure reason: AlgorithmError: ValueError: learning rate must be positive, got -1" in result.stdout
    assert "ended Failed: AlgorithmError: ValueError: learning rate must be positive" in result.stderr
    assert "[algo-1] ValueError: learning rate must be positive, got -1" in result.stdout
    # issue 8.5: the traceback once (in the log), never twice, and without our frames
    everything = result.stdout + result.stderr
    assert everything.count("Traceback (most recent call last)") == 1
    assert "AlgorithmError: AlgorithmError" not in everything
    assert "Uploading generated training model" not in everything  # issue 9.3: a failed job uploads no model
    assert not any(name in everything for name in ("training.py", "local_run.py", "atr.pyz/"))


def test_stop_reaches_the_script_which_saves_a_checkpoint(tmp_path, sandbox):
    started = remote("--epochs", "50", "--sleep", "0.5", "--sagemaker-base-job-name", "stoppable",
                     "--sagemaker-wait", "no", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    job = job_name(started.stdout)
    logs = boto3.client("logs", region_name="us-east-1")
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until training has printed an epoch
        try:
            streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                                logStreamNamePrefix=job + "/")["logStreams"]
            events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                         logStreamName=streams[0]["logStreamName"])["events"] if streams else []
        except logs.exceptions.ResourceNotFoundException:
            events = []
        if any("epoch=1 " in e["message"] for e in events):
            break
        time.sleep(0.2)
    stop = run_python(["-m", "aws_train_remote.cli.main", "stop", job], cwd=tmp_path)
    assert stop.stdout.strip() == f"stopping {job}", stop.stderr
    attach = run_python(["-m", "aws_train_remote.cli.main", "attach", job], cwd=tmp_path, timeout=120)
    assert attach.returncode == 3  # Stopped (docs/cli.md)
    assert "stopping after epoch" in attach.stdout and f"Stopped: {job}" in attach.stdout
    # issue 9.3: the truth about a stop, and no model upload announced for it
    assert "training stopped: SIGTERM from the platform (a stop request or a spot interruption)" in attach.stdout
    assert "training failed with exit status" not in attach.stdout
    assert "Uploading generated training model" not in attach.stdout
    s3 = boto3.client("s3", region_name="us-east-1")
    saved = s3.list_objects_v2(Bucket=BUCKET, Prefix="aws-train-remote/checkpoints/stoppable/").get("Contents", [])
    assert saved, "the checkpoint written on SIGTERM reached the checkpoint location"


def test_two_instances_each_log_their_own_stream(tmp_path, sandbox):
    result = remote("--epochs", "1", "--sagemaker-instance-count", "2", "--sagemaker-distribution", "none",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[algo-1] epoch=1 " in result.stdout and "[algo-2] epoch=1 " in result.stdout


def test_trainium_compile_cache_is_reused_by_the_next_job(tmp_path, sandbox):
    write_script(tmp_path, """
        import os
        from aws_train_remote import training_main
        def main(args):
            entry = os.path.join(os.environ["NEURON_COMPILE_CACHE_URL"], "neuronxcc-2.19", "MODULE_123", "model.neff")
            if os.path.exists(entry):
                print("compile cache hit: skipping compilation")
            else:
                os.makedirs(os.path.dirname(entry))
                open(entry, "w").write("compiled graph")
                print("compiled the model graph")
        if __name__ == "__main__":
            training_main(main)
        """)
    args = ["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-instance", "ml.trn1.2xlarge",
            "--sagemaker-base-job-name", "bert"]
    first = run_python(args, cwd=tmp_path, timeout=240)
    assert first.returncode == 0, first.stderr
    assert "[algo-1] compiled the model graph" in first.stdout
    assert "new entries saved (boto3)" in first.stdout
    second = run_python(args, cwd=tmp_path, timeout=240)
    assert second.returncode == 0, second.stderr
    assert "[algo-1] compile cache hit: skipping compilation" in second.stdout


def test_a_job_built_by_another_tool_runs_under_our_runtime(tmp_path, sandbox):
    """Issue 8.11: a request with no ContainerEntrypoint whose code is named by
    sagemaker_submit_directory (as the SageMaker SDK builds it) runs in the sandbox: the code is
    fetched from S3, its requirements.txt installed (into a job environment), the toolkit's argv used."""
    import tarfile as tf

    from test_job_env import make_wheel

    src = tmp_path / "src"
    src.mkdir()
    make_wheel(src, "1.0")
    (src / "requirements.txt").write_text("./atrtinylib-1.0-py3-none-any.whl\n")
    (src / "entry.py").write_text(
        "import argparse, json, os, atrtinylib\n"
        "p = argparse.ArgumentParser(); p.add_argument('--epochs', type=int); a = p.parse_args()\n"
        "print('foreign job epochs', a.epochs, 'tinylib', atrtinylib.__version__, flush=True)\n"
        "json.dump({'epochs': a.epochs}, open(os.path.join(os.environ['SM_MODEL_DIR'], 'm.json'), 'w'))\n")
    archive = tmp_path / "sourcedir.tar.gz"
    with tf.open(archive, "w:gz") as tar:
        for name in ("entry.py", "requirements.txt", "atrtinylib-1.0-py3-none-any.whl"):
            tar.add(src / name, arcname=name)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="other-tool")
    s3.upload_file(str(archive), "other-tool", "job/source/sourcedir.tar.gz")
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_training_job(
        TrainingJobName="built-elsewhere", RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:x",
                                "TrainingInputMode": "File"},
        HyperParameters={"epochs": "3", "sagemaker_program": '"entry.py"',
                         "sagemaker_submit_directory": '"s3://other-tool/job/source/sourcedir.tar.gz"'},
        OutputDataConfig={"S3OutputPath": "s3://other-tool/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    sandbox.wait_for_jobs()
    desc = sm.describe_training_job(TrainingJobName="built-elsewhere")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    logs = boto3.client("logs", region_name="us-east-1")
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                       logStreamNamePrefix="built-elsewhere/")["logStreams"][0]["logStreamName"]
    text = "\n".join(e["message"] for e in logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                                               logStreamName=stream, startFromHead=True)["events"])
    assert "foreign job epochs 3 tinylib 1.0" in text
    body = s3.get_object(Bucket="other-tool", Key="output/built-elsewhere/output/model.tar.gz")["Body"].read()
    with tf.open(fileobj=io.BytesIO(body)) as tar:
        assert json.load(tar.extractfile("m.json")) == {"epochs": 3}


def test_sandbox_answers_simulate_principal_policy(aws):
    """moto lacks iam:SimulatePrincipalPolicy (a 500); the SageMaker SDK's ModelTrainer calls it
    first, so the sandbox answers it (it enforces no policy: everything is allowed)."""
    iam = boto3.client("iam", region_name="us-east-1")
    arn = aws.create_role("Checked")
    reply = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:PutObject", "s3:GetObject"],
                                          ResourceArns=["arn:aws:s3:::bucket/*"])
    assert [(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in reply["EvaluationResults"]] == [
        ("s3:PutObject", "arn:aws:s3:::bucket/*", "allowed"), ("s3:GetObject", "arn:aws:s3:::bucket/*", "allowed")]
    many = [f"sagemaker:Action{i}" for i in range(12)]  # member.10 comes after member.9
    reply = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=many)
    assert [r["EvalActionName"] for r in reply["EvaluationResults"]] == many
