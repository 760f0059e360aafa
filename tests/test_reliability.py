"""The reliability suite of issue 7, item 10. Each test prints the figure it proves.

(b) launches under 20% injected faults on S3, SageMaker and CloudWatch Logs (throttling, 500/503,
    slow answers, connections dropped before and after the server acted);
(c) Ctrl-C at every step of a launch, each followed by a relaunch;
(d) two launches at once sharing the local cache;
(e) a source tree full of secrets, and AWS credentials in the environment.
The bad-input table (a) lives in test_bad_input.py.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_python, write_script
from reliability import (
    BUCKET,
    ROLE,
    SCRIPT,
    all_object_bytes,
    channel,
    content_addressed_ok,
    incomplete_multipart,
    objects,
    sagemaker,
    snapshot,
)

from aws_train_remote.sandbox import FAULT_KINDS

DATA_OPS = ("s3.PutObject", "s3.UploadPart")


def make_project(root, files=10, big=0):
    root.mkdir(parents=True, exist_ok=True)
    write_script(root, SCRIPT)
    data = root / "data"
    data.mkdir()
    for i in range(files):
        (data / f"part-{i:03d}.csv").write_text(f"{i},{i * i}\n" * 30)
    if big:
        (data / "big.bin").write_bytes(os.urandom(big))
    return root


def created_requests(aws) -> dict:
    """job name -> the CreateTrainingJob body the server received (retries included)."""
    return {c["body"]["TrainingJobName"]: c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"}


def job_names() -> list:
    pages = sagemaker().get_paginator("list_training_jobs").paginate()
    return sorted(j["TrainingJobName"] for p in pages for j in p["TrainingJobSummaries"])


def printed_job(stdout: str):
    return next((line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("job: ")), None)


def test_b_thirty_launches_under_20_percent_faults(tmp_path, sandbox):
    root = make_project(tmp_path, files=8)
    sandbox.inject(r"^(s3\.|SageMaker\.|Logs\.)", kinds=FAULT_KINDS, rate=0.2, times=1_000_000, seed=2026)
    launches, clean_fail, tracebacks, followed, log_ok = 30, 0, 0, 0, 0
    expected_local, reported = {}, set()
    for n in range(launches):
        (root / "data" / f"part-{n % 8:03d}.csv").write_text(f"launch {n}\n" * (20 + n))  # something to send
        if n == 12:
            (root / "data" / "big.bin").write_bytes(os.urandom(17 * 1024 * 1024))  # multipart under faults
        follow = n % 6 == 0
        args = ["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--lines", "12",
                "--sagemaker-wait", "yes" if follow else "no"]
        if n % 5 == 1:
            args += ["--sagemaker-job-name", f"given-{n}"]
        local = snapshot(root / "data")
        result = run_python(args, cwd=root, timeout=240)
        tracebacks += "Traceback" in result.stderr
        name = printed_job(result.stdout)
        if name:
            reported.add(name)
            expected_local[name] = local
        if result.returncode != 0:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # a clean, one-line failure
            clean_fail += 1
            continue
        if follow:
            followed += 1
            lines = [ln for ln in result.stdout.splitlines() if ln.startswith("[algo-1] algo-1 line ")]
            log_ok += lines == [f"[algo-1] algo-1 line {i:02d}" for i in range(12)]
    requests = created_requests(sandbox)
    injected = sum(1 for c in sandbox.calls() if c["fault"])
    sandbox.clear_faults()
    sandbox.wait_for_jobs()
    jobs = job_names()
    duplicates = len(jobs) - len(reported & set(jobs))  # a job nobody was told about is a billed duplicate
    incomplete = sum(1 for j in jobs if channel(requests[j], "train") != expected_local.get(j)
                     or not content_addressed_ok(requests[j]))
    print(f"faults: launches/duplicates/incomplete = {launches}/{duplicates}/{incomplete}; {injected} faults injected; "
          f"{clean_fail} clean one-line failures; {tracebacks} tracebacks; followed {followed}, "
          f"every log line once in {log_ok}")
    assert duplicates == 0 and incomplete == 0 and tracebacks == 0
    assert log_ok == followed
    assert len(jobs) == launches - clean_fail
    assert incomplete_multipart() == []


HANG = 2.0  # seconds a paused call waits: the Ctrl-C lands inside it


def _pause(op, **kw):
    return {"op": op, "kind": kw.pop("kind", "drop_before"), "delay": HANG, "times": 1000, **kw}


# point -> (fault rule that holds the launch there, op that shows it got there)
POINTS = {
    "planning": (None, None),
    "sts": (_pause(r"^query\.GetCallerIdentity$"), "query.GetCallerIdentity"),
    "bucket": (_pause(r"^s3\.HeadBucket$"), "s3.HeadBucket"),
    "first object": (_pause(r"^s3\.PutObject$"), "s3.PutObject"),
    "pack": (_pause(r"^s3\.PutObject$", path="/store/objects/"), "s3.PutObject"),
    "multipart create": (_pause(r"^s3\.CreateMultipartUpload$"), "s3.CreateMultipartUpload"),
    "multipart part": (_pause(r"^s3\.UploadPart$", skip=1), "s3.UploadPart"),
    "multipart complete": (_pause(r"^s3\.CompleteMultipartUpload$", kind="slow_reply"), "s3.CompleteMultipartUpload"),
    "manifest": (_pause(r"^s3\.PutObject$", path="/manifests/"), "s3.PutObject"),
    "create": (_pause(r"^SageMaker\.CreateTrainingJob$", kind="slow_reply"), "SageMaker.CreateTrainingJob"),
    "follow": (_pause(r"^SageMaker\.DescribeTrainingJob$", kind="slow", times=1), "SageMaker.DescribeTrainingJob"),
}

SLOW_HASH = """
import time, aws_train_remote.plan.hashcache as h
real = h.sha256_file
def slow(path):
    open(__import__("os").environ["ATR_TEST_MARK"], "w").close()
    time.sleep(0.5)
    return real(path)
h.sha256_file = slow
"""


@pytest.mark.parametrize("point", list(POINTS))
def test_c_ctrl_c_at_every_step_then_relaunch(tmp_path, sandbox, isolated_env, point):
    root = make_project(tmp_path / "proj", files=120, big=17 * 1024 * 1024)
    local = snapshot(root / "data")
    rule, reached = POINTS[point]
    env = dict(os.environ, PYTHONPATH=REPO)
    if point == "planning":  # hashing made slow by a sitecustomize: the Ctrl-C lands while files are read
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text(SLOW_HASH)
        env.update(PYTHONPATH=f"{hooks}{os.pathsep}{REPO}", ATR_TEST_MARK=str(tmp_path / "hashing"))
    if rule:
        sandbox.inject(**{k: v for k, v in rule.items() if k != "op"}, op=rule["op"])
    proc = subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                             "--lines", "100"], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if point == "planning" and (tmp_path / "hashing").exists():
            break
        if reached and any(c["fault"] and c["op"] == reached for c in sandbox.calls()):
            break  # the launch is inside the paused call
        time.sleep(0.02)
    time.sleep(0.3 if point != "follow" else 0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, (point, err)
    assert "Traceback" not in err
    if point == "planning":
        assert sandbox.calls() == [], "interrupted while planning: nothing reached AWS"
    if point == "create":
        assert "was created and is running" in err and "aws-train-remote stop" in err
    if point == "follow":
        assert "detached from" in err and "aws-train-remote attach" in err
    if point not in ("create", "follow"):
        assert "no job was created" in err or point == "planning"
    requests = created_requests(sandbox)
    sandbox.clear_faults()
    sandbox.wait_for_jobs()

    # never a job on incomplete data; the cache intact
    for job in job_names():
        assert channel(requests[job], "train") == local, (point, job)
    cache = isolated_env / ".cache" / "aws-train-remote"
    for name in ("hashes.json", f"objects/{BUCKET}.json"):
        if (cache / name).exists():
            assert isinstance(json.loads((cache / name).read_text()), dict), name

    # the relaunch sends only what is missing
    present = objects("aws-train-remote/")
    jobs_before = set(job_names())
    sandbox.clear_faults()
    again = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", "no"],
                       cwd=root, timeout=120)
    assert again.returncode == 0, (point, again.stderr)
    sent = {c["path"].split(BUCKET + "/", 1)[1] for c in sandbox.calls() if c["op"] in DATA_OPS}
    resent = {k for k in sent if present.get(k) and "/manifests/" not in k}
    assert resent == set(), (point, resent)
    new_job = printed_job(again.stdout)
    assert new_job not in jobs_before
    assert channel(created_requests(sandbox)[new_job], "train") == local
    assert all(channel(requests[j], "train") == local for j in jobs_before)
    sandbox.wait_for_jobs()
    assert incomplete_multipart() == [], point
    print(f"Ctrl-C at {point}: safe; relaunch sent {len(sent)} objects, re-sent 0 of {len(present)} already there")


def test_d_two_launches_at_once_share_the_cache(tmp_path, sandbox, isolated_env):
    root = make_project(tmp_path, files=40, big=17 * 1024 * 1024)
    local = snapshot(root / "data")
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = [subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                               "--sagemaker-wait", "no", "--sagemaker-job-name", f"together-{i}"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [r[0] for r in results] == [0, 0], results
    requests = created_requests(sandbox)
    assert sorted(job_names()) == ["together-0", "together-1"]
    assert all(channel(requests[j], "train") == local and content_addressed_ok(requests[j]) for j in job_names())
    cache = isolated_env / ".cache" / "aws-train-remote"
    for name in ("hashes.json", f"objects/{BUCKET}.json"):
        if (cache / name).exists():
            assert isinstance(json.loads((cache / name).read_text()), dict)
    sandbox.wait_for_jobs()
    assert incomplete_multipart() == []
    sandbox.clear_faults()
    third = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", "no"],
                       cwd=root)
    assert third.returncode == 0 and "0 objects sent" in third.stdout
    print("two launches at once: both jobs valid, cache intact, a third launch sent 0 files")


SECRETS = {
    ".env": "A=SECRET-env", ".envrc": "SECRET-envrc", ".boto": "SECRET-boto", ".s3cfg": "SECRET-s3cfg",
    ".npmrc": "SECRET-npmrc", ".netrc": "SECRET-netrc", ".pypirc": "SECRET-pypirc",
    "service-account-prod.json": "SECRET-sa", "credentials.json": "SECRET-credjson",
    ".config/gcloud/application_default_credentials.json": "SECRET-gcloud", ".kube/config": "SECRET-kube",
    ".docker/config.json": "SECRET-docker", ".aws/credentials": "SECRET-aws", "id_rsa": "SECRET-idrsa",
    "deploy.pem": "SECRET-pem", ".venv/pyvenv.cfg": "home = /usr", ".venv/lib/SECRET-venv.py": "SECRET-venv",
}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIASECRETKEYID00001", "AWS_SECRET_ACCESS_KEY": "SECRET-access-key/xyz",
               "AWS_SESSION_TOKEN": "SECRET-session-token"}


def test_e_nothing_secret_ships(tmp_path, sandbox):
    root = make_project(tmp_path / "proj", files=2)
    for rel, text in SECRETS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    os.symlink(".env", root / "settings.txt")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "remote", "add", "origin",
                    "https://user:SECRET-ghp-token@github.com/org/repo.git"], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    os.symlink("/etc", root / "etc-link")
    args = ["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", "yes", "--lines", "1"]
    refused = run_python(args, cwd=root, env=CREDENTIALS)
    assert refused.returncode == 2 and "etc-link: symlink escapes the source folder" in refused.stderr
    assert objects() == {}
    (root / ".sagemakerignore").write_text("etc-link\n")
    result = run_python(args, cwd=root, env=CREDENTIALS, timeout=180)
    assert result.returncode == 0, result.stderr
    dry = run_python([*args, "--sagemaker-dry-run"], cwd=root, env=CREDENTIALS)
    kept_out = {row["path"] for row in json.loads(dry.stdout)["kept_out"]}
    assert {".env", "settings.txt", ".aws/", ".venv/", ".git/", ".kube/", ".docker/", "etc-link/"} <= kept_out
    sandbox.wait_for_jobs()
    markers = ["SECRET-", *CREDENTIALS.values()]
    places = [(key, body) for key, body in all_object_bytes()]
    places += [("request", json.dumps(c["body"]).encode()) for c in sandbox.calls() if c["op"].startswith("SageMaker.")]
    places += [("output", (refused.stdout + refused.stderr + result.stdout + result.stderr).encode())]
    leaks = [(where, m) for where, body in places for m in markers if m.encode() in body]
    print(f"secrets: {len(SECRETS) + 4} planted, {len(places)} objects/requests/outputs searched, {len(leaks)} shipped")
    assert leaks == []
