"""Issue 20, hearing that a job ended: `notify setup` creates (once, only when asked) an EventBridge
rule on SageMaker's Training Job State Change for jobs tagged by --sagemaker-notify, with an SNS
topic and an API destination as targets, all marked as ours and named in the output; `status`
shows them, `remove` deletes exactly those. In the sandbox a job that completes and one that fails
reach the SNS topic (moto's record of the publish) and the webhook (a server on 127.0.0.1); a job
without the tag reaches neither. A followed job's end rings the terminal and the desktop notifier."""
import http.server
import io
import json
import os
import stat
import threading

import boto3
import pytest
from conftest import REPO, run_python, write_script

from aws_train_remote.executors.notify import NAME, OWNER_TAG, ROLE, event_pattern, ring

JOB_ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")
FAILING = """
from aws_train_remote import training_main
def main(args):
    raise ValueError("no good")
if __name__ == "__main__":
    training_main(main)
"""


def cli(*args, cwd):
    return run_python(["-m", "aws_train_remote.cli.main", "notify", *args, "--region", "us-east-1"], cwd=cwd)


@pytest.fixture
def webhook():
    """A server on 127.0.0.1 that records each POST: (path, headers, JSON body)."""
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_setup_once_status_and_remove_exactly_what_was_made(tmp_path, aws, webhook):
    url, _ = webhook
    setup = cli("setup", "--email", "me@example.com", "--webhook", url, cwd=tmp_path)
    assert setup.returncode == 0, setup.stderr
    for name in (f"EventBridge rule {NAME}", "SNS topic arn:aws:sns:us-east-1:123456789012:" + NAME,
                 f"EventBridge connection {NAME}", f"EventBridge API destination {NAME}", f"IAM role {ROLE}",
                 "email subscription of me@example.com"):
        assert f"created: {name}" in setup.stdout, setup.stdout
    events = boto3.client("events", region_name="us-east-1")
    rule = events.describe_rule(Name=NAME)
    assert json.loads(rule["EventPattern"]) == event_pattern()
    assert {"Key": OWNER_TAG[0], "Value": OWNER_TAG[1]} in events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"]
    targets = {t["Id"]: t for t in events.list_targets_by_rule(Rule=NAME)["Targets"]}
    assert ":sns:" in targets["atr-email"]["Arn"] and targets["atr-webhook"]["RoleArn"].endswith(f"role/{ROLE}")
    topic = targets["atr-email"]["Arn"]
    assert {"Key": OWNER_TAG[0], "Value": OWNER_TAG[1]} in boto3.client("sns", region_name="us-east-1") \
        .list_tags_for_resource(ResourceArn=topic)["Tags"]

    creates = [c["op"] for c in aws.calls() if "Create" in c["op"] or "PutRule" in c["op"] or "Subscribe" in c["op"]]
    again = cli("setup", "--email", "me@example.com", "--webhook", url, cwd=tmp_path)
    assert again.returncode == 0 and "created:" not in again.stdout and "exists: EventBridge rule" in again.stdout
    assert [c["op"] for c in aws.calls() if "Create" in c["op"] or "PutRule" in c["op"]
            or "Subscribe" in c["op"]] == creates  # once: nothing made twice

    status = cli("status", cwd=tmp_path)
    assert f"rule: {NAME} (ENABLED)" in status.stdout and "me@example.com" in status.stdout
    assert f"webhook: POST {url}" in status.stdout
    wrong = cli("status", "--email", "x@example.com", cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1

    removed = cli("remove", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.count("deleted: ") == 5, removed.stdout
    assert events.list_rules(NamePrefix=NAME)["Rules"] == []
    assert events.list_api_destinations()["ApiDestinations"] == [] and events.list_connections()["Connections"] == []
    assert boto3.client("sns", region_name="us-east-1").list_topics()["Topics"] == []
    events.put_rule(Name=NAME, EventPattern=json.dumps({"source": ["mine"]}))  # someone else's, same name
    alone = cli("remove", cwd=tmp_path)
    assert f"left alone: EventBridge rule {NAME} (not made by notify setup)" in alone.stdout
    assert events.list_rules(NamePrefix=NAME)["Rules"]
    assert "nothing to set up" in cli("setup", cwd=tmp_path).stderr


def test_jobs_that_complete_and_fail_reach_the_topic_and_the_webhook(tmp_path, sandbox, webhook):
    from moto.sns.models import sns_backends

    url, received = webhook
    assert cli("setup", "--email", "me@example.com", "--webhook", url, cwd=tmp_path).returncode == 0
    done = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", JOB_ROLE, "--epochs", "1",
                       "--sagemaker-notify"], cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr
    failing = tmp_path / "failing"
    failing.mkdir()
    write_script(failing, FAILING)
    failed = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", JOB_ROLE, "--sagemaker-notify"],
                        cwd=failing, timeout=240)
    assert failed.returncode == 1, failed.stderr
    quiet = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", JOB_ROLE], cwd=failing, timeout=240)
    assert quiet.returncode == 1
    sandbox.state_changes.drain()
    names = [next(line.split()[1] for line in r.stdout.splitlines() if line.startswith("job: "))
             for r in (done, failed, quiet)]

    topic = sns_backends["123456789012"]["us-east-1"].topics[f"arn:aws:sns:us-east-1:123456789012:{NAME}"]
    mailed = [json.loads(message)["detail"] for _, message, *_ in topic.sent_notifications]
    assert [(d["TrainingJobName"], d["TrainingJobStatus"]) for d in mailed] == [(names[0], "Completed"),
                                                                               (names[1], "Failed")]
    assert "no good" in mailed[1]["FailureReason"] and mailed[0]["Tags"]["aws-train-remote:notify"] == "yes"
    posted = [(path, headers.get("X-Aws-Train-Remote"), body) for path, headers, body in received]
    assert [(p, h, b["detail-type"], b["detail"]["TrainingJobName"], b["detail"]["TrainingJobStatus"])
            for p, h, b in posted] == [
        ("/hook", "notify", "SageMaker Training Job State Change", names[0], "Completed"),
        ("/hook", "notify", "SageMaker Training Job State Change", names[1], "Failed")]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_followed_jobs_end_rings_the_terminal_and_the_desktop(tmp_path):
    called = tmp_path / "called.txt"
    fake = tmp_path / "bin" / "notify-send"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nprintf '%s|' \"$@\" > {called}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    environ = {"PATH": str(fake.parent), "DISPLAY": ":0"}
    import shutil

    which = lambda name: shutil.which(name, path=environ["PATH"])  # noqa: E731
    out = Terminal()
    assert ring("job-1", "Failed", out, environ=environ, which=which, platform="linux")
    assert out.getvalue() == "\a"
    assert called.read_text() == "--app-name=aws-train-remote|aws-train-remote|job-1 ended Failed|"
    piped = io.StringIO()  # a log file or a pipe: no bell, no notification
    called.unlink()
    assert not ring("job-1", "Failed", piped, environ=environ, which=which, platform="linux")
    assert piped.getvalue() == "" and not called.exists()
    no_desktop = Terminal()  # no display: the bell only
    assert ring("job-1", "Completed", no_desktop, environ={"PATH": environ["PATH"]}, which=which, platform="linux")
    assert no_desktop.getvalue() == "\a" and not called.exists()
