"""Following a job: status changes, every instance's logs (late streams included) exactly
once and in time order, the summary, and the Ctrl-C policy. moto holds the job and the log
streams; a fake sleep moves the job forward between polls, so nothing waits."""
import io
import time

import boto3
import pytest
from botocore.config import Config

from aws_train_remote.executors.follow import Printer, follow
from aws_train_remote.executors.sagemaker import follow_job

GROUP = "/aws/sagemaker/TrainingJobs"
JOB = "tail-job"


def clients(aws, attempts=2):
    cfg = Config(retries={"mode": "standard", "total_max_attempts": attempts})
    return (boto3.client("sagemaker", region_name="us-east-1", config=cfg),
            boto3.client("logs", region_name="us-east-1", config=cfg))


def create_job(sm, name=JOB, spot=False):
    sm.create_training_job(
        TrainingJobName=name, RoleArn="arn:aws:iam::123456789012:role/TrainRole",
        AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://b/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 3, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600}, EnableManagedSpotTraining=spot)


class Scenario:
    """Each sleep() call applies the next step; records the intervals asked for."""

    def __init__(self, steps):
        self.steps = list(steps)
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        if self.steps:
            self.steps.pop(0)()


@pytest.fixture
def logs_setup(aws):
    sm, logs = clients(aws)
    create_job(sm)
    aws.set_job(JOB, training_job_status="InProgress", secondary_status="Starting")
    logs.create_log_group(logGroupName=GROUP)
    return sm, logs


def put(logs, stream, events):
    try:
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.put_log_events(logGroupName=GROUP, logStreamName=stream,
                        logEvents=[{"timestamp": t, "message": m} for t, m in events])


def test_three_hosts_late_streams_nothing_lost_or_repeated(aws, logs_setup):
    sm, logs = logs_setup
    base = int(time.time() * 1000) - 60_000
    expected = []

    def emit(stream, host, start, count):
        events = [(base + start + i * 10, f"{host} line {start + i}") for i in range(count)]
        expected.extend(events)
        put(logs, f"{JOB}/{stream}", events)

    emit("algo-1-1700000000", "algo-1", 0, 5)  # present before the first poll

    def step1():
        emit("algo-1-1700000000", "algo-1", 100, 3)
        emit("algo-2-1700000000", "algo-2", 105, 4)
        aws.set_job(JOB, secondary_status="Training")

    def step2():
        emit("algo-3-1700000050", "algo-3", 200, 2)  # a late host

    def step3():
        pass  # idle: no output

    def step4():
        emit("algo-1-1700000900", "algo-1", 400, 3)  # a restarted instance gets a new stream
        emit("algo-2-1700000000", "algo-2", 401, 2)

    def step5():
        emit("algo-3-1700000050", "algo-3", 500, 2)  # final lines arrive with the terminal status
        aws.set_job(JOB, training_job_status="Completed", secondary_status="Completed",
                    training_time_in_seconds=100, billable_time_in_seconds=100)

    scenario = Scenario([step1, step2, step3, step4, step5])
    out = io.StringIO()
    desc = follow(sm, logs, JOB, Printer(out, color=False), sleep=scenario.sleep)
    assert desc["TrainingJobStatus"] == "Completed"
    printed = [line for line in out.getvalue().splitlines() if line.startswith("[")]
    want = [f"[{m.split()[0]}] {m}" for _, m in sorted(expected)]
    assert printed == want  # each line once, in time order, prefixed by its host
    assert len(printed) == len(set(printed)) == 21
    assert "Completed: tail-job, training 100 s, billable 100 s" in out.getvalue()
    assert scenario.sleeps[0] == 2.0  # output was flowing: poll again within 2 s
    assert max(scenario.sleeps) <= 10.0
    assert scenario.sleeps[3] > 2.0  # idle after step3: backed off


def test_no_sleep_before_the_first_poll(aws, logs_setup):
    sm, logs = logs_setup
    put(logs, f"{JOB}/algo-1-1", [(int(time.time() * 1000), "hello")])
    aws.set_job(JOB, training_job_status="Completed")
    out = io.StringIO()
    scenario = Scenario([])
    follow(sm, logs, JOB, Printer(out, color=False), sleep=scenario.sleep)
    assert scenario.sleeps == [] and "[algo-1] hello" in out.getvalue()


def test_colour_per_host_on_a_terminal(aws, logs_setup):
    sm, logs = logs_setup
    now = int(time.time() * 1000)
    put(logs, f"{JOB}/algo-1-1", [(now, "a")])
    put(logs, f"{JOB}/algo-2-1", [(now + 1, "b")])
    aws.set_job(JOB, training_job_status="Completed")
    out = io.StringIO()
    follow(sm, logs, JOB, Printer(out, color=True), sleep=lambda s: None)
    text = out.getvalue()
    assert "\033[36m[algo-1]\033[0m a" in text and "\033[33m[algo-2]\033[0m b" in text


def test_throttling_beyond_retries_backs_off_and_continues(aws, logs_setup):
    sm, logs = logs_setup
    put(logs, f"{JOB}/algo-1-1", [(int(time.time() * 1000), "survived")])
    aws.inject(r"^Logs\.GetLogEvents$", status=400, code="ThrottlingException", times=2)  # = both attempts

    def finish():
        aws.set_job(JOB, training_job_status="Completed")

    scenario = Scenario([finish])
    out = io.StringIO()
    follow(sm, logs, JOB, Printer(out, color=False), sleep=scenario.sleep)
    assert out.getvalue().count("[algo-1] survived") == 1
    assert scenario.sleeps[0] >= 3.0  # backed off, not the 2 s of flowing output


def test_spot_savings_and_failure_reason_in_summary(aws):
    sm, logs = clients(aws)
    create_job(sm, "spot-job", spot=True)
    aws.set_job("spot-job", training_job_status="Failed", training_time_in_seconds=1000,
                billable_time_in_seconds=300, failure_reason="AlgorithmError: ValueError: bad shape")
    out = io.StringIO()
    follow(sm, logs, "spot-job", Printer(out, color=False), sleep=lambda s: None)
    text = out.getvalue()
    assert "Failed: spot-job, training 1000 s, billable 300 s, spot savings 70%" in text
    assert "failure reason: AlgorithmError: ValueError: bad shape" in text


class Session:
    def __init__(self, sm, logs):
        self._clients = {"sagemaker": sm, "logs": logs}

    def client(self, name):
        return self._clients[name]


def test_ctrl_c_detaches_and_prints_how_to_reattach_and_stop(aws, logs_setup, capsys):
    sm, logs = logs_setup

    def interrupt(seconds):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exc:
        follow_job(Session(sm, logs), JOB, "us-east-1", out=io.StringIO(), sleep=interrupt)
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert f"aws-train-remote attach {JOB} --region us-east-1" in err
    assert f"aws-train-remote stop {JOB} --region us-east-1" in err
    assert aws.job(JOB).training_job_status == "InProgress"  # still running
    assert not any(c["op"] == "SageMaker.StopTrainingJob" for c in aws.calls())


def test_stop_on_interrupt_stops_and_follows_to_stopped(aws, logs_setup, capsys):
    sm, logs = logs_setup
    calls = {"n": 0}

    def sleep(seconds):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        aws.set_job(JOB, training_job_status="Stopped", secondary_status="Stopped")

    desc = follow_job(Session(sm, logs), JOB, "us-east-1", stop_on_interrupt=True, out=io.StringIO(), sleep=sleep)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert [c["op"] for c in aws.calls()].count("SageMaker.StopTrainingJob") == 1


def test_two_hosts_under_30_percent_log_throttling_print_every_line_once(tmp_path, sandbox):
    """Issue 7.6: throttling that outlives botocore's retries (one attempt here) on every log
    call; each host's 40 lines are printed once, in order, and the launch exits 0."""
    from conftest import run_python, write_script

    write_script(tmp_path, """
        import os, sys, time
        from aws_train_remote import training_main
        def main(args):
            host = os.environ.get("SM_CURRENT_HOST", "?")
            for i in range(40):
                print(f"{host} line {i:02d}", flush=True)
                time.sleep(0.03)
        if __name__ == "__main__":
            training_main(main)
        """)
    sandbox.inject(r"^Logs\.", kind="throttle", rate=0.3, times=10_000, seed=7)
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role",
                         "arn:aws:iam::123456789012:role/R", "--sagemaker-instance-count", "2",
                         "--sagemaker-distribution", "none"], cwd=tmp_path, env={"AWS_MAX_ATTEMPTS": "1"},
                        timeout=240)
    assert result.returncode == 0, result.stderr
    throttled = sum(1 for c in sandbox.calls() if c["op"].startswith("Logs.") and c["injected"])
    printed = [line for line in result.stdout.splitlines() if " line " in line and line.startswith("[algo-")]
    for host in ("algo-1", "algo-2"):
        mine = [line for line in printed if line.startswith(f"[{host}] ")]
        assert mine == [f"[{host}] {host} line {i:02d}" for i in range(40)], mine
    assert len(printed) == 80 and throttled > 0 and "Traceback" not in result.stderr
    print(f"log calls throttled: {throttled}; lines printed: {len(printed)} of 80, each once, in order per host")


class Clock:
    """A fake clock moved on by the follower's own sleeps."""

    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds):
        self.now += seconds
        assert self.now < 3600, "the follow did not end"


def test_logs_throttled_past_the_patience_end_the_follow_with_exit_4(aws, logs_setup):
    """Issue 17.6: a follow is bounded; the job's status still answers, the logs never do."""
    from aws_train_remote.errors import FollowLost

    sm, logs = clients(aws, attempts=1)  # no botocore back-off: each failed poll is one call
    put(logs, f"{JOB}/algo-1-1", [(int(time.time() * 1000), "before")])
    aws.inject(r"^Logs\.GetLogEvents$", status=400, code="ThrottlingException", times=10 ** 6)
    clock, out = Clock(), io.StringIO()
    with pytest.raises(FollowLost) as lost:
        follow_job(Session(sm, logs), JOB, "us-east-1", out=out, sleep=clock.sleep, clock=lambda: clock.now,
                   patience=60)
    assert lost.value.exit_code == 4 and "AWS kept answering ThrottlingException for 1 min" in str(lost.value)
    assert f"which keeps running; follow it again: aws-train-remote attach {JOB} --region us-east-1" in str(lost.value)
    assert out.getvalue().count("(AWS keeps answering ThrottlingException;") == 1  # said once, after 5 polls


def test_a_job_that_ended_keeps_its_summary_when_its_last_lines_cannot_be_read(aws, logs_setup):
    sm, logs = clients(aws, attempts=1)
    put(logs, f"{JOB}/algo-1-1", [(int(time.time() * 1000), "last")])
    aws.set_job(JOB, training_job_status="Completed", training_time_in_seconds=5, billable_time_in_seconds=5)
    aws.inject(r"^Logs\.GetLogEvents$", kind="drop_before", times=10 ** 6)
    clock, out = Clock(), io.StringIO()
    desc = follow_job(Session(sm, logs), JOB, "us-east-1", out=out, sleep=clock.sleep, clock=lambda: clock.now,
                      patience=60)
    text = out.getvalue()
    assert desc["TrainingJobStatus"] == "Completed"  # exit 0: the job's end is known
    assert "its last log lines could not be read: no answer from AWS for 1 min" in text
    assert f"read them with: aws-train-remote logs {JOB}" in text and "Completed: tail-job" in text


def test_expired_credentials_on_the_first_call_say_the_job_keeps_running(aws, logs_setup):
    from aws_train_remote.errors import FollowLost

    sm, logs = clients(aws, attempts=1)
    aws.inject(r"^SageMaker\.DescribeTrainingJob$", status=400, code="ExpiredTokenException", times=10)
    with pytest.raises(FollowLost) as lost:
        follow_job(Session(sm, logs), JOB, "us-east-1", out=io.StringIO(), sleep=Clock().sleep)
    assert str(lost.value) == (f"AWS refused the credentials (ExpiredTokenException): stopped following {JOB}, which "
                               f"keeps running; renew them, then follow it again: aws-train-remote attach {JOB} "
                               "--region us-east-1")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def test_a_host_keeps_its_colour_whoever_speaks_first(aws, logs_setup):
    """Issue 21.4: algo-1 is always the first colour (cyan), algo-2 the second, from their numbers,
    not from who printed first (the old code gave algo-2 cyan here)."""
    sm, logs = logs_setup
    now = int(time.time() * 1000)
    put(logs, f"{JOB}/algo-2-1", [(now, "b first")])
    put(logs, f"{JOB}/algo-1-1", [(now + 1, "a second")])
    aws.set_job(JOB, training_job_status="Completed")
    out = io.StringIO()
    follow(sm, logs, JOB, Printer(out, color=True), sleep=lambda s: None)
    text = out.getvalue()
    assert "\033[33m[algo-2]\033[0m b first" in text and "\033[36m[algo-1]\033[0m a second" in text
    from aws_train_remote.executors.style import host_color

    assert host_color("algo-7") == host_color("algo-1") and host_color("worker") == host_color("worker")


def test_statuses_and_errors_coloured_on_a_terminal_unless_no_color(aws, monkeypatch):
    """Issue 21.4: on a terminal the status words and the failure reason are coloured; NO_COLOR
    (https://no-color.org), or a stream that is not a terminal, gets plain text."""
    sm, logs = clients(aws)
    create_job(sm, "red-job")
    aws.set_job("red-job", training_job_status="Failed", failure_reason="AlgorithmError: boom")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    shown = Terminal()
    follow(sm, logs, "red-job", Printer(shown), sleep=lambda s: None)
    assert "\033[31mFailed\033[0m: red-job" in shown.getvalue()
    assert "\033[31mfailure reason:\033[0m AlgorithmError: boom" in shown.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    follow(sm, logs, "red-job", Printer(plain), sleep=lambda s: None)
    assert "\033[" not in plain.getvalue() and "Failed: red-job" in plain.getvalue()
    monkeypatch.delenv("NO_COLOR")
    piped = io.StringIO()
    follow(sm, logs, "red-job", Printer(piped), sleep=lambda s: None)
    assert "\033[" not in piped.getvalue()


def test_stop_on_interrupt_prints_each_status_once(aws, logs_setup, capsys):
    """Issue 21.5: after "stopping ...", the statuses printed before were printed again (the old
    code kept what it had seen per follow, and the stop starts a second one)."""
    import datetime

    sm, logs = logs_setup
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=30)
    earlier = [{"Status": "Starting", "StartTime": start, "StatusMessage": "Preparing the instances for training"},
               {"Status": "Training", "StartTime": start + datetime.timedelta(seconds=20),
                "StatusMessage": "Training in progress"}]
    aws.set_job(JOB, secondary_status_transitions=earlier)
    put(logs, f"{JOB}/algo-1-1", [(int(time.time() * 1000), "working")])
    calls = {"n": 0}

    def sleep(seconds):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        aws.set_job(JOB, training_job_status="Stopped", secondary_status="Stopped", secondary_status_transitions=[
            *earlier, {"Status": "Stopped", "StartTime": start + datetime.timedelta(seconds=31),
                       "StatusMessage": "Training job stopped"}])

    out = io.StringIO()
    desc = follow_job(Session(sm, logs), JOB, "us-east-1", stop_on_interrupt=True, out=out, sleep=sleep)
    text = out.getvalue()
    assert desc["TrainingJobStatus"] == "Stopped" and f"stopping {JOB}" in capsys.readouterr().err
    assert text.count("status: Starting") == 1 and text.count("status: Training") == 1, text
    assert text.count("[algo-1] working") == 1 and text.count("status: Stopped") == 1
    assert "phases: Starting 20 s -> Training 11 s -> Stopped" in text
