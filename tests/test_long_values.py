"""A flag whose value is long (issue 18.6): the exact argv travels in its own hyperparameters, so
only the readable per-flag copy can be too long for SageMaker; it is left out, never refused."""
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, run_python, write_script
from runtime_job import JobRoot

from aws_train_remote.runtime import job_env

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
CLASSES = [f"class_{i:03d}_with_a_fairly_long_label" for i in range(140)]  # about 5,000 characters as JSON

SCRIPT = """
    import json, os
    from aws_train_remote import training_main

    def main(args):
        os.makedirs(args.model_dir, exist_ok=True)
        with open(os.path.join(args.model_dir, "classes.json"), "w") as fh:
            json.dump(args.classes, fh)
        print("classes", len(args.classes), args.name)

    training_main(main, inputs={"train": "data"}, additional_arguments=[
        {"dest": "--classes", "type": json.loads, "default": []},
        {"dest": "--name", "default": ""}])
"""


def project(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    write_script(tmp_path, SCRIPT)


def test_a_long_list_is_left_out_of_the_readable_copy_and_said_in_the_dry_run(tmp_path):
    project(tmp_path)
    name = "é" * 2000  # 2,000 characters; 12,002 as JSON \\u escapes
    result = run_python(["train.py", "--classes", json.dumps(CLASSES), "--name", name, "--sagemaker-run", "yes",
                         "--sagemaker-dry-run", "--sagemaker-role", ROLE, "--sagemaker-region", "us-east-1"],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    hps = document["request"]["HyperParameters"]
    assert "classes" not in hps  # 5,000+ characters: left out
    assert json.loads(hps["name"]) == name  # counted as characters, as SageMaker counts
    assert all(len(v) <= 2500 for v in hps.values())
    assert any("--classes is not shown among the job's hyperparameters" in n and "exact value" in n
               for n in document["notes"])
    from botocore.session import get_session
    from botocore.validate import ParamValidator

    model = get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(document["request"], model.operation_model("CreateTrainingJob").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_job_receives_the_exact_long_list(tmp_path, sandbox):
    project(tmp_path)
    result = run_python(["train.py", "--classes", json.dumps(CLASSES), "--name", "ünï", "--sagemaker-run", "yes",
                         "--sagemaker-role", ROLE, "--sagemaker-download", "--model-dir", str(tmp_path / "model")],
                        cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "[algo-1] classes 140 ünï" in result.stdout
    assert json.loads((tmp_path / "model" / "classes.json").read_text()) == CLASSES


def test_more_readable_copies_than_sagemaker_allows_are_left_out_not_refused(tmp_path):
    """100 flags of the script's own: with the runtime's own hyperparameters that is more than
    SageMaker's 100; the job still runs, with the copies that fit and a note for the rest."""
    flags = ", ".join(f'{{"dest": "--p{i}", "default": {i}}}' for i in range(100))
    write_script(tmp_path, SCRIPT.replace('{"dest": "--name", "default": ""}', flags))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    hps = document["request"]["HyperParameters"]
    assert len(hps) == 100 and "sagemaker_program" in hps and "p0" in hps
    readable = [k for k in hps if not k.startswith("sagemaker_")]
    left_out = [n for n in document["notes"] if "SageMaker allows 100 hyperparameters" in n]
    assert readable and len(left_out) == 101 - len(readable)  # --classes and --p0..--p99
    assert any(n.startswith("--p99 is not shown") for n in left_out)


# -- what Linux's exec allows (issue 18.6): the argv reaches the script; SM_* copies give way ------

def test_one_argument_longer_than_linux_execs_is_refused_at_launch(tmp_path):
    """140,000 characters fit SageMaker's hyperparameters (57 of 2,500), but Linux starts no program
    with one argument over 131,071 bytes: the job would be created, billed and fail at exec. Such an
    argv comes from training_main(argv=...) or a macOS shell (no per-argument limit there)."""
    project(tmp_path)
    write_script(tmp_path, SCRIPT.replace("import json, os", "import json, os, sys").replace(
        "training_main(main, ", "training_main(main, argv=sys.argv[1:] + ['--name', 'y' * 140000], "))
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run",
                         "--sagemaker-role", ROLE, "--sagemaker-region", "us-east-1"], cwd=tmp_path)
    assert result.returncode == 2, result.stdout[-500:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: --name=yyy" in lines[0] and "131071 bytes" in lines[0], result.stderr[-500:]
    assert "Traceback" not in result.stderr


def test_sm_variables_give_way_to_exec_limits_and_the_argv_never_does():
    from aws_train_remote.runtime import environment

    lines = []
    command = ["python", "train.py", "--p", "y" * 100000]
    big = {"user_args": ["x" * 140000], "hosts": ["algo-1"]}
    env = {"PATH": "/usr/bin", "SM_HPS": json.dumps(big), "SM_TRAINING_ENV": json.dumps(big), "SM_NUM_GPUS": "0"}
    fitted = environment.fit_exec_limits(env, command, "/opt/ml/input/config", lines.append)
    assert "SM_HPS" not in fitted  # left out; SM_TRAINING_ENV shortened, so scripts still find their hosts
    assert json.loads(fitted["SM_TRAINING_ENV"]) == {"hosts": ["algo-1"]}
    assert fitted["PATH"] == "/usr/bin" and fitted["SM_NUM_GPUS"] == "0"
    assert any(line.startswith("SM_HPS is not set") and "/opt/ml/input/config/hyperparameters.json" in line
               for line in lines)
    # past ARG_MAX in total: the largest SM_* go until the rest fits
    many = {f"SM_HP_X{i}": "z" * 100000 for i in range(environment.arg_max() // 100000 + 2)}
    fitted = environment.fit_exec_limits({"PATH": "/usr/bin", **many}, command, "/c", lines.append)
    assert 0 < len([k for k in fitted if k.startswith("SM_HP_")]) < len(many)
    size = sum(len(a) + 9 for a in command) + sum(len(k) + len(v) + 10 for k, v in fitted.items())
    assert size <= environment.arg_max()
    with pytest.raises(environment.ExecLimit, match=r"value of --p .*MAX_ARG_STRLEN"):
        environment.fit_exec_limits({}, ["python", "train.py", "--p", "中" * 50000], "/c", lines.append)


def test_an_argv_linux_cannot_exec_fails_the_job_before_the_script_in_one_line(tmp_path):
    """A job launched another way (or by an older client) with an argument over MAX_ARG_STRLEN:
    the runtime says which limit, in the failure file too, instead of `[Errno 7]`."""
    job = JobRoot(tmp_path / "opt" / "ml")
    job.code({"train.py": "print('started')\n"})
    job.configure(argv=["--name", "中" * 50000])  # 150,000 bytes
    env = dict(os.environ, PYTHONPATH=REPO, SAGEMAKER_BASE_DIR=job.root)
    env.pop(job_env.ENVS_ENV, None)
    result = subprocess.run([sys.executable, "-m", "aws_train_remote.runtime"], cwd=str(tmp_path), env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "started" not in result.stdout
    assert "the value of --name is 150000 bytes" in result.stderr and "MAX_ARG_STRLEN" in result.stderr
    with open(job.layout.failure_file) as fh:
        assert "MAX_ARG_STRLEN" in fh.read()
