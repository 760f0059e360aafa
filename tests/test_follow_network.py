"""Issue 17.6: a follow survives the network. A sandbox job prints 160 lines and, after line 40,
waits until the test has cut the network; the follower runs in this process on a fake clock, so a
'60 s' outage or a '75 s' black hole takes no real time. Faults are real: connections dropped by
the sandbox's fault injector, credentials refused by it, and a loopback black hole (a listener
whose accept queue is full, so every connect times out)."""
import io
import select
import socket
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError
from conftest import launch_no_wait, run_python, write_script

from aws_train_remote.aws.session import error_code, http_status, is_credential_failure, is_transient
from aws_train_remote.errors import FollowLost
from aws_train_remote.executors.follow import Printer
from aws_train_remote.executors.sagemaker import follow_job

ROLE = "arn:aws:iam::123456789012:role/R"
LINES = 160
PAUSE_AT = 40  # the job stops here until the test has cut the network
EXPECTED = [f"[algo-1] line {i:03d}" for i in range(LINES)]
SCRIPT = """
    import os, time
    from aws_train_remote import training_main
    GO = {go!r}
    def main(args):
        for i in range({lines}):
            if i == {pause}:
                deadline = time.time() + 30
                while not os.path.exists(GO) and time.time() < deadline:
                    time.sleep(0.05)
            print(f"line {{i:03d}}", flush=True)
    if __name__ == "__main__":
        training_main(main)
    """


def test_error_code_never_raises_on_an_error_without_a_response():
    """The crash of issue 17.6: botocore's connection errors carry `response = None` (or none)."""
    for err in (ConnectionClosedError(endpoint_url="http://x"), EndpointConnectionError(endpoint_url="http://x"),
                ConnectTimeoutError(endpoint_url="http://x"), ValueError("x"), ClientError({}, "Op")):
        assert error_code(err) == "" and http_status(err) == 0
    assert all(is_transient(cls(endpoint_url="http://x"))
               for cls in (ConnectionClosedError, EndpointConnectionError, ConnectTimeoutError))
    expired = ClientError({"Error": {"Code": "ExpiredTokenException"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                          "GetLogEvents")
    assert is_credential_failure(expired) and not is_transient(expired)


class FakeClock:
    """time and sleep for the follower: each sleep moves the clock on by what was asked, lets the
    real job run a moment, then calls `hook` (which cuts and mends the network)."""

    def __init__(self, hook):
        self.now = 1000.0
        self.hook = hook

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        time.sleep(0.05)
        assert self.now < 1000.0 + 3600, "the follow did not end within an hour of fake time"
        self.hook(self)


class Session:
    def __init__(self, endpoint=None, attempts=1, connect_timeout=10):
        cfg = Config(retries={"mode": "standard", "total_max_attempts": attempts}, connect_timeout=connect_timeout,
                     read_timeout=5)
        self._clients = {name: boto3.client(name, region_name="us-east-1", endpoint_url=endpoint, config=cfg)
                         for name in ("sagemaker", "logs")}

    def client(self, name):
        return self._clients[name]


def launch(tmp_path):
    go = tmp_path / "go"
    write_script(tmp_path, SCRIPT.format(go=str(go), lines=LINES, pause=PAUSE_AT))
    result = launch_no_wait(tmp_path, ROLE, "--sagemaker-distribution", "none")
    job = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("job: "))
    return job, go


def printed(text: str) -> list:
    """The script's own lines (the runtime's '[aws-train-remote] ...' lines left out)."""
    return [line for line in text.splitlines() if line.startswith("[algo-1] line ")]


def lines_in_cloudwatch(sandbox, job: str) -> int:
    logs = sandbox.client("logs")  # the sandbox's own client: never faulted
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=job + "/")
    return sum(sum(1 for e in logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=s["logStreamName"],
                                       startFromHead=True)["events"] if e["message"].startswith("line "))
               for s in streams["logStreams"])


def wait_for_lines(sandbox, job: str, count: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while lines_in_cloudwatch(sandbox, job) < count:
        assert time.time() < deadline, f"the job wrote fewer than {count} lines in {timeout} s"
        time.sleep(0.1)


def attach(job: str, cwd):
    return run_python(["-m", "aws_train_remote.cli.main", "attach", job, "--region", "us-east-1"], cwd=cwd)


def test_connections_dropped_for_60_s_every_line_once(tmp_path, sandbox):
    job, go = launch(tmp_path)
    out = io.StringIO()
    figures = {}

    def network(clock):
        if "cut" not in figures and len(printed(out.getvalue())) >= PAUSE_AT:
            # the next DescribeTrainingJob answers, then every call drops: the outage cuts a poll short
            sandbox.inject(r"^(SageMaker|Logs)\.", kind="drop_before", times=10 ** 6, skip=1)
            figures["cut"] = clock.now
            go.touch()  # the job goes on during the outage
        elif "cut" in figures and "mended" not in figures and clock.now - figures["cut"] >= 60:
            wait_for_lines(sandbox, job, LINES)  # every line was written while the follower was cut off
            figures["dropped"] = sum(1 for c in sandbox.calls() if c["fault"] == "drop_before")
            sandbox.clear_faults()
            figures["mended"] = clock.now

    clock = FakeClock(network)
    desc = follow_job(Session(), job, "us-east-1", out=out, sleep=clock.sleep, clock=clock.time)
    text = out.getvalue()
    assert desc["TrainingJobStatus"] == "Completed", text
    assert printed(text) == EXPECTED, text  # each line once, in order
    assert text.count("(no answer from AWS: ") == 1 and "ConnectionClosedError" in text
    assert text.count("(AWS answers again after 1 min") == 1
    assert figures["dropped"] >= 5
    print(f"connections dropped for {figures['mended'] - figures['cut']:.0f} s (fake clock), "
          f"{figures['dropped']} calls dropped; lines printed: {len(printed(text))} of {LINES}, each once, in order")


def test_expired_token_ends_the_follow_in_one_line_with_the_attach_hint(tmp_path, sandbox):
    job, go = launch(tmp_path)
    wait_for_lines(sandbox, job, PAUSE_AT)
    # the first read of the stream answers; the credentials expire before the next
    sandbox.inject(r"^Logs\.GetLogEvents$", status=400, code="ExpiredTokenException", times=10 ** 6, skip=1)
    cut = attach(job, tmp_path)
    sandbox.clear_faults()
    errors = [line for line in cut.stderr.splitlines() if line.strip()]
    assert cut.returncode == 4, cut.stderr  # not 1 (Failed): the job goes on
    assert len(errors) == 1, cut.stderr
    assert "ExpiredTokenException" in errors[0] and "keeps running" in errors[0]
    assert f"aws-train-remote attach {job} --region us-east-1" in errors[0]
    assert printed(cut.stdout) == EXPECTED[:PAUSE_AT]  # what was read before the refusal is shown
    assert sandbox.job(job).training_job_status == "InProgress"
    go.touch()
    sandbox.wait_for_jobs()
    again = attach(job, tmp_path)
    assert again.returncode == 0, again.stderr
    assert printed(again.stdout) == EXPECTED
    print(f"expired token: exit {cut.returncode}, {len(errors)} line; then attach printed "
          f"{len(printed(again.stdout))} of {LINES} lines, each once")


class BlackHole:
    """A TCP forwarder on 127.0.0.1 to the sandbox. `cut()` stops accepting: the kernel's accept
    queue (backlog 0) fills, and from then on every connect times out, as in a network that drops
    packets (botocore's ConnectTimeoutError)."""

    def __init__(self, target: int):
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.holed = threading.Event()
        self.parked = None
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self):
        self.holed.set()
        time.sleep(0.1)  # the accept loop has seen it
        self.parked = socket.socket()  # fills the accept queue: the kernel drops every later SYN
        self.parked.setblocking(False)
        self.parked.connect_ex(self.listener.getsockname())

    def close(self):
        self.closed.set()
        self.listener.close()
        if self.parked is not None:
            self.parked.close()

    def _accept(self):
        while not self.closed.is_set():
            if self.holed.is_set() or not select.select([self.listener], [], [], 0.05)[0]:
                time.sleep(0.02)
                continue
            try:
                conn = self.listener.accept()[0]
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn, socket.create_connection(("127.0.0.1", self.target), timeout=30) as upstream:
            back = threading.Thread(target=_pump, args=(upstream, conn))
            back.start()
            _pump(conn, upstream)
            back.join(30)


def _pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def test_black_hole_beyond_the_patience_ends_in_one_line_then_attach_prints_every_line(tmp_path, sandbox):
    job, go = launch(tmp_path)
    port = int(sandbox.url.rsplit(":", 1)[1])
    hole = BlackHole(port)
    out = io.StringIO()
    figures = {}

    def network(clock):
        if "cut" not in figures and len(printed(out.getvalue())) >= PAUSE_AT:
            hole.cut()  # a 75 s black hole: longer than the 60 s of patience
            figures["cut"] = clock.now
            go.touch()

    clock = FakeClock(network)
    try:
        with pytest.raises(FollowLost) as lost:
            follow_job(Session(hole.url, connect_timeout=0.2), job, "us-east-1", out=out, sleep=clock.sleep,
                       clock=clock.time, patience=60, printer=Printer(out, color=False))
    finally:
        hole.close()
    message = str(lost.value)
    assert lost.value.exit_code == 4 and "\n" not in message
    assert "no answer from AWS for 1 min" in message and "ConnectTimeoutError" in message, message
    assert f"aws-train-remote attach {job} --region us-east-1" in message and "keeps running" in message
    assert printed(out.getvalue()) == EXPECTED[:PAUSE_AT]
    assert out.getvalue().count("(no answer from AWS: ") == 1
    sandbox.wait_for_jobs()
    again = attach(job, tmp_path)
    assert again.returncode == 0, again.stderr
    assert printed(again.stdout) == EXPECTED
    print(f"black hole: the follow ended after {clock.now - figures['cut']:.0f} s (fake clock, patience 60 s) "
          f"with one line, exit {lost.value.exit_code}; attach then printed {len(printed(again.stdout))} "
          f"of {LINES} lines, each once")
