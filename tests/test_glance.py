"""Issue 21.4, 21.5, 21.7, 21.8: reading a job at a glance (the phases as a timeline, metrics
from the log as a table, sparkline, JSON and a plot, attach --tail), the small defects (list's
secondary status, "Follow it" for a job never followed, stop and download of the last job, a
script's own defaults in --help and the README's count of its lines), shell completion sourced in a
real bash, and what the end of `sandbox -- CMD` says. Against the loopback AWS and real
subprocesses."""
import datetime
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import boto3
import pytest
from conftest import REPO, run_python

from aws_train_remote.aws.jobs import summary_lines, timeline_lines
from aws_train_remote.executors.metrics import extract, sparkline, table_lines

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")
T0 = datetime.datetime(2026, 11, 23, 10, 15, 0, tzinfo=datetime.timezone.utc)


def cli(*args, cwd, env=None, timeout=120):
    return run_python(["-m", "aws_train_remote.cli.main", *args], cwd=cwd, env=env, timeout=timeout)


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def described(status, *phases):
    return {"TrainingJobName": "j", "TrainingJobStatus": status,
            "SecondaryStatusTransitions": [{"Status": s, "StartTime": at(t)} for s, t in phases]}


def test_the_phases_read_as_a_timeline():
    done = described("Completed", ("Starting", 0), ("Downloading", 65), ("Training", 68), ("Uploading", 670),
                     ("Completed", 672))
    assert summary_lines(done)[1] == ("phases: Starting 1 min 5 s -> Downloading 3 s -> Training 10 min 2 s -> "
                                      "Uploading 2 s -> Completed")
    table = timeline_lines(done, now=at(9999), blocks=False, width=10)
    assert table[0] == "phases (UTC):"
    assert table[1] == "  10:15:00  Starting     1 min 5 s        #"
    assert table[3] == "  10:16:08  Training     10 min 2 s       ##########" and table[5].split() == ["10:26:12",
                                                                                                        "Completed"]
    running = described("InProgress", ("Starting", 0), ("Training", 30))
    assert timeline_lines(running, now=at(90), blocks=True, width=4)[2].endswith("Training     1 min so far     ████")
    assert summary_lines(described("InProgress"))[1:] == []  # no transitions yet: no phases line


def test_metrics_are_read_as_sagemaker_reads_them():
    lines = [(1, "algo-1", "epoch=1 loss=0.9 accuracy=0.5"), (2, "algo-1", "noise loss=nan-ish"),
             (3, "algo-1", "epoch=2 loss=0.4"), (4, "algo-1", "two on a line: loss=0.3 loss=0.2"),
             (5, "algo-1", "accuracy=0.8")]
    loss, acc, whole = extract(lines, [("loss", r"loss=([0-9.]+)"), ("accuracy", r"accuracy=([0-9.]+)"),
                                       ("epoch", r"(?<=epoch=)\d")])
    assert loss.points == ((1, 0.9), (3, 0.4), (4, 0.3), (4, 0.2)) and acc.values == [0.5, 0.8]
    assert whole.values == [1.0, 2.0] and loss.label == "loss"  # no group: the whole match
    hosts = extract([(1, "algo-10", "loss=3"), (2, "algo-2", "loss=2"), (3, "algo-10", "loss=1")],
                    [("loss", r"loss=(\d)")])  # several hosts: a series each, as SageMaker keeps them
    assert [(s.label, s.values) for s in hosts] == [("loss (algo-2)", [2.0]), ("loss (algo-10)", [3.0, 1.0])]
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█" and sparkline([3, 3]) == "▅▅"
    assert sparkline(list(range(100)), width=10) == "▁▂▃▃▄▅▆▆▇█" and sparkline([1, 8], blocks=False) == "_#"
    rows = table_lines([loss, acc], blocks=False)
    assert rows[0].split() == ["METRIC", "COUNT", "FIRST", "LAST", "MIN", "MAX", "TREND"]
    assert rows[1].split() == ["loss", "4", "0.9", "0.2", "0.2", "0.9", "#,._"]


def test_a_sandbox_job_at_a_glance(tmp_path, sandbox):
    """One launch with --sagemaker-wait no, then: attach --tail, status's timeline, list's
    secondary status, metrics (table, JSON, plot), and stop and download with JOB left out."""
    launched = run_python([DEMO, "--epochs", "3", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                           "--sagemaker-wait", "no"], cwd=tmp_path, timeout=240)
    assert launched.returncode == 0, launched.stderr
    job = next(line.split()[1] for line in launched.stdout.splitlines() if line.startswith("job: "))
    # issue 21.5: it was never followed, so not "Follow it again"
    assert f"the job keeps running. Follow it: aws-train-remote attach {job} --region us-east-1" in launched.stdout
    assert "again" not in launched.stdout
    sandbox.wait_for_jobs()

    whole = cli("logs", cwd=tmp_path).stdout.splitlines()
    attached = cli("attach", "--tail", "2", cwd=tmp_path)  # issue 21.4: not the whole log again
    assert attached.returncode == 0, attached.stderr
    assert [line for line in attached.stdout.splitlines() if line.startswith("[")] == whole[-2:] and len(whole) > 5
    assert re.search(r"^phases: Starting \d+ s -> Training \d+ s -> Uploading \d+ s -> Completed$", attached.stdout,
                     re.M), attached.stdout

    status = cli("status", cwd=tmp_path).stdout
    assert "phases (UTC):" in status and re.search(r"^  \d\d:\d\d:\d\d  Training +\d+ s", status, re.M), status
    listed = json.loads(cli("list", "--json", cwd=tmp_path).stdout)  # issue 21.5: null before
    assert listed[0]["name"] == job and listed[0]["secondary_status"] == "Completed"

    table = cli("metrics", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    logged = [float(m) for m in re.findall(r"loss=([0-9.]+)", "\n".join(whole))]
    row = next(line.split() for line in table.stdout.splitlines() if line.startswith("loss "))
    assert len(logged) == 3 and row[1:3] == ["3", f"{logged[0]:.6g}"] and len(row[-1]) == 3
    record = json.loads(cli("metrics", job, "--json", cwd=tmp_path).stdout)
    assert record["job"] == job and [m["name"] for m in record["metrics"]] == ["loss", "accuracy"]
    assert [v["value"] for v in record["metrics"][0]["values"]] == logged
    if importlib.util.find_spec("matplotlib") is not None:
        drawn = cli("metrics", "--plot", "curves.png", cwd=tmp_path)
        assert drawn.returncode == 0, drawn.stderr
        assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stopped = cli("stop", cwd=tmp_path)  # issue 21.5: JOB left out is the last job, and the line says which
    assert stopped.returncode == 0 and stopped.stdout == (f"{job} is already Completed (the last job launched "
                                                          "from this folder)\n")
    fetched = json.loads(cli("download", "--dest", "m", "--json", cwd=tmp_path).stdout)
    assert fetched["job"] == job and (tmp_path / "m" / "model.json").is_file()


def test_metrics_of_a_local_mode_job_and_of_a_job_with_none(tmp_path, aws):
    """Local mode has no CloudWatch: its log is kept for `metrics`, which then needs no AWS."""
    ran = run_python([DEMO, "--epochs", "2", "--sagemaker-run", "local"], cwd=tmp_path, timeout=240)
    assert ran.returncode == 0, ran.stderr
    job = re.search(r"^local job: (\S+)", ran.stdout, re.M).group(1)
    offline = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": ""}  # any AWS call would fail
    table = cli("metrics", cwd=tmp_path, env=offline)
    assert table.returncode == 0, table.stderr
    logged = [float(m) for m in re.findall(r"loss=([0-9.]+)", ran.stdout)]
    assert next(line.split() for line in table.stdout.splitlines() if line.startswith("loss "))[1] == "2"
    record = json.loads(cli("metrics", job, "--json", cwd=tmp_path, env=offline).stdout)
    assert [v["value"] for v in record["metrics"][0]["values"]] == logged
    if importlib.util.find_spec("matplotlib") is None:  # issue 21.4: one line, exit 2, nothing drawn
        missing = cli("metrics", job, "--plot", "c.png", cwd=tmp_path, env=offline)
        assert missing.returncode == 2 and missing.stderr.count("\n") == 1
        assert "pip install 'aws-train-remote[plot]'" in missing.stderr and not (tmp_path / "c.png").exists()

    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_training_job(
        TrainingJobName="no-metrics", RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://bucket/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 60})
    none = cli("metrics", "no-metrics", cwd=tmp_path)
    assert none.returncode == 2 and none.stderr.count("\n") == 1 and "defined no metrics" in none.stderr


def test_a_scripts_own_flags_show_their_defaults_and_the_readme_counts_the_lines(tmp_path):
    """Issue 21.5: --help says it shows the effective defaults; the script's own flags showed none,
    and the README said "about 60 lines"."""
    shown = run_python([DEMO, "--help"], cwd=tmp_path, env={"COLUMNS": "80"})
    assert shown.returncode == 0
    assert re.search(r"--epochs EPOCHS +epochs to train in total \(default: 5\)", shown.stdout)
    assert re.search(r"--lr LR +learning rate \(default: 0\.05\)", shown.stdout)
    assert "(default: None)" not in shown.stdout and "(default: False)" not in shown.stdout
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        claimed = int(re.search(r"about (\d+) lines for\s+`demo/train.py`", fh.read()).group(1))
    assert abs(len(shown.stdout.splitlines()) - claimed) <= 5, len(shown.stdout.splitlines())


BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
BASH_TAB = """
[[ -n $2 ]] && source "$2"  # bash-completion, when the machine has it
source "$1"
tab() {  # the words of a command line; completes the last, as bash does at TAB
  COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=()
  COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
  local spec fn; spec=$(complete -p "$1"); fn=${spec##*-F }; fn=${fn%% *}
  "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
  echo "${COMPREPLY[*]}"
}
tab aws-train-remote sta
tab python train.py --sagemaker-ins
tab python3 -u train.py --sagemaker-run ""
tab aws-train-remote status ""
tab python plain.py --sagemaker-ins
tab python -
"""


def test_completion_in_a_real_bash(tmp_path):
    """Issue 21.7: the script bash sources completes commands, job names from this machine's
    launch records (no AWS call: no endpoint or region is set) and a script's --sagemaker-* flags."""
    from aws_train_remote.launches import record_launch

    record_launch("demo-20261123-101500-a1b2c3", "us-east-1", os.environ, folder=str(tmp_path))
    script = cli("completion", "bash", cwd=tmp_path)
    assert script.returncode == 0, script.stderr
    (tmp_path / "atr.bash").write_text(script.stdout)
    (tmp_path / "train.py").write_text("from aws_train_remote import training_main\n")
    (tmp_path / "plain.py").write_text("import argparse\n")
    env = {**os.environ, "PYTHONPATH": REPO, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    assert shutil.which("aws-train-remote", path=env["PATH"]), "the package is not installed (scripts/bootstrap.sh)"
    for helper in ("", BASH_COMPLETION) if os.path.isfile(BASH_COMPLETION) else ("",):
        result = subprocess.run(["bash", "-c", BASH_TAB, "tab", str(tmp_path / "atr.bash"), helper], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        command, flags, values, jobs, plain, options = result.stdout.splitlines()
        assert command == "status"
        assert os.path.commonprefix(flags.split()) == "--sagemaker-instance" and "--sagemaker-instance" in flags.split()
        assert values.split() == ["no", "yes", "local"]
        assert jobs.split() == ["demo-20261123-101500-a1b2c3", "last"]
        assert plain == ""  # not a script of ours, no such file: python's own completion decides
        # with bash-completion, python's own options stay (it is loaded on demand, then handed on to)
        assert ("-c" in options.split()) if helper else options == "", options


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_completion_scripts_for_zsh_and_fish_parse(tmp_path, shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    script = cli("completion", shell, cwd=tmp_path)
    assert script.returncode == 0, script.stderr
    (tmp_path / f"atr.{shell}").write_text(script.stdout)
    checked = subprocess.run([shell, "-n", str(tmp_path / f"atr.{shell}")], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stderr
    if shell == "fish":  # fish completes a command line on request: check what it offers
        (tmp_path / "train.py").write_text("from aws_train_remote import training_main\n")
        env = {**os.environ, "PYTHONPATH": REPO,
               "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
        offered = subprocess.run(["fish", "-c", f"source {tmp_path / 'atr.fish'}; complete -C'aws-train-remote sta';"
                                  "complete -C'python train.py --sagemaker-ins'"], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=60)
        names = [line.split("\t")[0] for line in offered.stdout.splitlines()]
        assert "status" in names and "--sagemaker-instance" in names, offered.stdout + offered.stderr
