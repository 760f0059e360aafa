"""Issue 17, item 5: Ctrl-C while a job is being created. For every create call — CreateTrainingJob,
a capacity-fallback attempt, CreateHyperParameterTuningJob, SubmitServiceJob — the launch prints
what is true, and a relaunch of the same request from the same folder takes over the job the
interrupted launch made: exactly one job of each kind exists.

The Ctrl-C lands inside the boto3 call, raised by a botocore event hook that a sitecustomize adds to
the launch's own process: on before-send (the request never leaves) or on after-call (SageMaker or
Batch acted, the launch never saw the reply). The launches are real, against the sandbox."""
import os
import sys
import time

import boto3
import pytest
from conftest import REPO, run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/TrainRole"
SCRIPT = """
import time
from aws_train_remote import training_main
def main(args):
    print(f"loss={1 / args.seconds:.4f}", flush=True)
    time.sleep(args.seconds)
if __name__ == "__main__":
    training_main(main, additional_arguments=[{"dest": "--seconds", "type": float, "default": 30.0}])
"""
# raises KeyboardInterrupt once, in the launch's own process, at botocore event ATR_TEST_HOOK (a
# successful reply only, for after-call); the marker file keeps it to one
HOOK = """
import os
def _install():
    import botocore.session
    event, marker = os.environ["ATR_TEST_HOOK"], os.environ["ATR_TEST_HOOK_MARK"]
    def interrupt(http_response=None, **_):
        if http_response is not None and http_response.status_code >= 300:
            return
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise KeyboardInterrupt
    real = botocore.session.Session.__init__
    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        self.register(event, interrupt)
    botocore.session.Session.__init__ = init
_install()
"""
TUNE = """
objective: {metric: loss, type: Minimize}
strategy: Grid
parallel_jobs: 1
parameters:
  seconds: {type: categorical, values: ["30"]}
"""


def launch(root, *args, hook=None, tmp=None):
    env = {}
    if hook:
        hooks = tmp / "hooks"
        hooks.mkdir(exist_ok=True)
        (hooks / "sitecustomize.py").write_text(HOOK)
        env = {"PYTHONPATH": f"{hooks}{os.pathsep}{REPO}", "ATR_TEST_HOOK": hook,
               "ATR_TEST_HOOK_MARK": str(tmp / "hook-fired")}
    return run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", "no",
                       *args], cwd=root, env=env, timeout=120)


def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    write_script(root, SCRIPT)
    return root


def training_jobs() -> list:
    sm = boto3.client("sagemaker", region_name="us-east-1")
    return sorted(j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"])


def ops(aws, name: str) -> int:
    return sum(1 for c in aws.calls() if c["op"] == name)


def printed(stdout: str, prefix: str = "job: "):
    return next((line[len(prefix):].split()[0] for line in stdout.splitlines() if line.startswith(prefix)), None)


def wait_for_a_training_job(seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline and not training_jobs():
        time.sleep(0.2)


def stop_running_jobs():
    """End the sleeping jobs now, so the fixture does not wait for them. Once they train: the
    sandbox's stop of a job still staging waits out its 20 s grace."""
    sm = boto3.client("sagemaker", region_name="us-east-1")
    for job in sm.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"]:
        name, deadline = job["TrainingJobName"], time.time() + 20
        while time.time() < deadline and sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"] in (
                "Starting", "Downloading"):
            time.sleep(0.2)
        sm.stop_training_job(TrainingJobName=name)


def interrupted_then_relaunched(tmp_path, aws, hook, *args):
    """A launch Ctrl-C'd by `hook`, then the same launch again; both results."""
    root = project(tmp_path)
    first = launch(root, *args, hook=hook, tmp=tmp_path)
    assert first.returncode == 130, first.stderr
    assert "Traceback" not in first.stderr and (tmp_path / "hook-fired").exists()
    again = launch(root, *args)
    assert again.returncode == 0, again.stderr
    return first, again


def test_ctrl_c_before_the_request_left_says_no_job_and_the_relaunch_makes_one(tmp_path, sandbox):
    first, again = interrupted_then_relaunched(tmp_path, sandbox, "before-send.sagemaker.CreateTrainingJob")
    assert "interrupted: no job " in first.stderr and " was created" in first.stderr
    assert ops(sandbox, "SageMaker.CreateTrainingJob") == 1  # the relaunch's own
    assert training_jobs() == [printed(again.stdout)]
    assert "adopting" not in again.stdout and "resuming" not in again.stdout  # nothing was pending
    stop_running_jobs()
    print("Ctrl-C before CreateTrainingJob left: 0 jobs, then the relaunch made 1")


def test_ctrl_c_after_sagemaker_created_the_job_then_the_relaunch_follows_it(tmp_path, sandbox):
    first, again = interrupted_then_relaunched(tmp_path, sandbox, "after-call.sagemaker.CreateTrainingJob")
    jobs = training_jobs()
    assert len(jobs) == 1, (first.stderr, again.stdout, [(c["op"], c["fault"]) for c in sandbox.calls()])
    [job] = jobs
    assert f"interrupted, but job {job} was created and is running" in first.stderr
    assert f"aws-train-remote attach {job}" in first.stderr and f"aws-train-remote stop {job}" in first.stderr
    assert f"adopting job {job}" in again.stdout and printed(again.stdout) == job
    assert ops(sandbox, "SageMaker.CreateTrainingJob") == 1 and training_jobs() == [job]
    third = launch(tmp_path / "proj")  # settled: the next launch is a launch of its own
    assert third.returncode == 0 and "adopting" not in third.stdout and len(training_jobs()) == 2
    stop_running_jobs()
    print(f"Ctrl-C after CreateTrainingJob acted, relaunch: {len(training_jobs()) - 1} job")


def test_ctrl_c_during_a_fallback_attempt_then_the_relaunch_follows_that_attempt(tmp_path, sandbox):
    sandbox.inject(r"^SageMaker\.CreateTrainingJob$", status=400, code="ResourceLimitExceeded", times=1)
    first, again = interrupted_then_relaunched(tmp_path, sandbox, "after-call.sagemaker.CreateTrainingJob",
                                               "--sagemaker-instance", "ml.c5.xlarge,ml.m5.large",
                                               "--sagemaker-spot")  # a spot list: the client relaunches
    assert "relaunching on ml.m5.large on spot capacity" in first.stdout
    [job] = training_jobs()
    assert f"interrupted, but job {job} was created and is running" in first.stderr
    assert f"adopting job {job}" in again.stdout and printed(again.stdout) == job
    creates = [c["body"] for c in sandbox.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    assert [b["ResourceConfig"]["InstanceType"] for b in creates] == ["ml.c5.xlarge", "ml.m5.large"]  # none again
    stop_running_jobs()
    print("Ctrl-C during the second capacity choice, relaunch: 1 job (the second choice's)")


def test_ctrl_c_during_create_tuning_job_then_the_relaunch_follows_it(tmp_path, sandbox):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "tune.yaml").write_text(TUNE)
    write_script(tmp_path / "proj", SCRIPT)
    args = ["--sagemaker-tune", "tune.yaml", "--sagemaker-metric", "loss=loss=([0-9.]+)"]
    first = launch(tmp_path / "proj", *args, hook="after-call.sagemaker.CreateHyperParameterTuningJob", tmp=tmp_path)
    assert first.returncode == 130, first.stderr
    sm = boto3.client("sagemaker", region_name="us-east-1")
    [tuning] = [t["HyperParameterTuningJobName"] for t in
                sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]]
    assert f"interrupted, but tuning job {tuning} was created and is running" in first.stderr
    assert f"stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name {tuning}" in first.stderr
    again = launch(tmp_path / "proj", *args)
    assert again.returncode == 0, again.stderr
    assert f"adopting tuning job {tuning}" in again.stdout and printed(again.stdout, "tuning job: ") == tuning
    assert ops(sandbox, "SageMaker.CreateHyperParameterTuningJob") == 1
    assert len(sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]) == 1
    wait_for_a_training_job()  # its trial: stopped, so the tuning job ends before the next test resets moto
    stop_running_jobs()
    sandbox.tunings[tuning].thread.join(30)
    print("Ctrl-C during CreateHyperParameterTuningJob, relaunch: 1 tuning job")


def test_ctrl_c_during_submit_service_job_then_the_relaunch_follows_it(tmp_path, sandbox):
    first, again = interrupted_then_relaunched(tmp_path, sandbox, "after-call.batch.SubmitServiceJob",
                                               "--sagemaker-queue", "ml-training")
    [job] = list(sandbox.queues.jobs.values())
    assert f"interrupted, but queued job {job['jobName']} was queued" in first.stderr
    assert f"terminate-service-job --job-id {job['jobId']}" in first.stderr
    assert f"adopting queued job {job['jobName']}" in again.stdout
    assert f"(AWS Batch job {job['jobId']})" in again.stdout
    assert ops(sandbox, "batch.SubmitServiceJob") == 1 and len(sandbox.queues.jobs) == 1
    wait_for_a_training_job()  # the queue hands it to SageMaker; then it is ended
    assert len(training_jobs()) == 1
    stop_running_jobs()
    print("Ctrl-C during SubmitServiceJob, relaunch: 1 queued job")


def test_a_job_that_ended_or_another_request_is_not_taken_over(tmp_path, aws):
    """Jobs here do not run (moto marks them Completed at once): the interrupted launch's job has
    ended, so the same request makes a new job and says why; after a Ctrl-C, a changed request is
    another launch."""
    first, again = interrupted_then_relaunched(tmp_path, aws, "after-call.sagemaker.CreateTrainingJob")
    [job] = [j for j in training_jobs() if j != printed(again.stdout)]
    assert f"note: job {job}, made by the launch from this folder that was interrupted while creating it, has " \
           "ended (Completed); this launch makes a new one" in again.stdout
    assert len(training_jobs()) == 2


def test_without_an_answer_the_launch_says_it_is_not_known_and_the_relaunch_reuses_name_and_token(
        tmp_path, aws, capsys, monkeypatch):
    """The call interrupted after its request left, and no job shows: neither "created" nor "not
    created" is claimed; the pending create makes the same request's next launch reuse its name and
    launch token (so a late arrival is adopted, never doubled)."""
    from aws_train_remote.aws.session import AwsSession
    from aws_train_remote.executors import create
    from aws_train_remote.launches import pending_creates

    monkeypatch.chdir(tmp_path)
    environ = dict(os.environ)
    session = AwsSession(region="us-east-1")
    sm = session.client("sagemaker")
    target = create.Target("training", "never-answered", "token-1", "us-east-1", "identity-1")

    def boom(**_):
        raise KeyboardInterrupt

    def call():  # registered after create_once's own hook: the request counts as sent, then is cut
        sm.meta.events.register_last("before-send.sagemaker.CreateTrainingJob", boom)
        return create.create_or_adopt(sm, {
            "TrainingJobName": "never-answered", "RoleArn": ROLE,
            "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
            "OutputDataConfig": {"S3OutputPath": "s3://b/o"}, "StoppingCondition": {"MaxRuntimeInSeconds": 60},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}}, "token-1")

    try:
        with pytest.raises(SystemExit) as exited:
            create.create_once(session, sm, target, call, environ, confirm=0.3, sleep=lambda s: None)
    finally:
        sm.meta.events.unregister("before-send.sagemaker.CreateTrainingJob", boom)
    assert exited.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted while creating job never-answered: SageMaker shows none of that name and launch token" in err
    assert "aws-train-remote status never-answered --region us-east-1" in err
    assert [r["name"] for r in pending_creates(environ)] == ["never-answered"]
    resumed = create.resume_pending(session, environ, "training", "identity-1", "us-east-1", sys.stdout)
    assert resumed[0] == target and resumed[1] is None
    assert "resuming the launch from this folder that was interrupted while creating job never-answered" in \
        capsys.readouterr().out
