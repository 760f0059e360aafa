"""CreateTrainingJob is idempotent: a reply lost after SageMaker acted never makes a second
billed job, and a Ctrl-C while creating says whether the job exists (issue 7, item 1; issue 17,
item 5: the launch waits for the create's answer; tests/test_create_interrupted.py has the rest)."""
import os
import signal
import subprocess
import sys
import time

import boto3
from conftest import REPO, run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/TrainRole"
SCRIPT = """
from aws_train_remote import training_main
def main(args):
    print("trained")
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"})
"""


def project(tmp_path):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1,2\n")
    return tmp_path


def jobs():
    sm = boto3.client("sagemaker", region_name="us-east-1")
    return [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]


def launch(cwd, *args):
    return run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", "no",
                       *args], cwd=cwd)


def job_line(stdout):
    return [line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("job: ")]


def test_lost_create_reply_adopts_the_job_it_created(tmp_path, aws):
    aws.inject(r"^SageMaker\.CreateTrainingJob$", kind="drop_after")
    result = launch(project(tmp_path))
    assert result.returncode == 0, result.stderr
    creates = [c for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    assert len(creates) == 2 and creates[0]["fault"] == "drop_after"  # botocore retried the same request
    assert len(jobs()) == 1
    assert job_line(result.stdout) == jobs()
    assert "reply was lost" in result.stdout
    print(f"creates sent 2, jobs 1, printed {job_line(result.stdout)[0]}")


def test_lost_create_reply_with_an_explicit_name_exits_0(tmp_path, aws):
    aws.inject(r"^SageMaker\.CreateTrainingJob$", kind="drop_after")
    result = launch(project(tmp_path), "--sagemaker-job-name", "given-name-1")
    assert result.returncode == 0, result.stderr
    assert jobs() == ["given-name-1"] and job_line(result.stdout) == ["given-name-1"]


def test_a_job_of_another_launch_is_a_real_clash(tmp_path, aws):
    root = project(tmp_path)
    assert launch(root, "--sagemaker-job-name", "someone-elses").returncode == 0
    aws.clear_faults()
    result = launch(root, "--sagemaker-job-name", "someone-elses")
    assert result.returncode == 2
    assert "--sagemaker-job-name=someone-elses: a training job of this name already exists" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert jobs() == ["someone-elses"]


def test_ctrl_c_during_create_names_the_job_that_exists(tmp_path, aws):
    root = project(tmp_path)
    aws.inject(r"^SageMaker\.CreateTrainingJob$", kind="slow_reply", delay=5.0)  # created at once, answered late
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                             "--sagemaker-job-name", "interrupted-create"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and not jobs():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "job interrupted-create was created and is running" in err
    assert "aws-train-remote attach interrupted-create" in err and "aws-train-remote stop interrupted-create" in err
    assert "Traceback" not in err
    assert jobs() == ["interrupted-create"]


def test_ctrl_c_while_a_dropped_create_is_retried_waits_for_the_answer(tmp_path, aws):
    """Issue 17.5: the Ctrl-C lands while the first CreateTrainingJob hangs (to be dropped unanswered);
    the launch lets botocore's retry finish instead of guessing, so what it prints is the truth:
    the retry created the job. (Once it said "no job was created" here, as the job appeared.)"""
    root = project(tmp_path)
    aws.inject(r"^SageMaker\.CreateTrainingJob$", kind="drop_before", delay=3.0)
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                             "--sagemaker-job-name", "retried-create"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and not any(c["op"] == "SageMaker.CreateTrainingJob" for c in aws.calls()):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Ctrl-C: letting CreateTrainingJob answer" in err and "Traceback" not in err
    assert "job retried-create was created and is running" in err
    assert jobs() == ["retried-create"]
