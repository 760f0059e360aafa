import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _restore_ctrl_c() -> None:
    """The Ctrl-C tests send SIGINT to the processes they start and expect exit 130. A suite started
    in the background (`nohup bash scripts/test.sh > log &`) inherits SIGINT as ignored, and an
    ignored signal stays ignored across fork and exec, so those processes never saw it (issue
    18.9a). A handler, unlike SIG_IGN, is reset to the default at exec: with Python's own handler
    here, every process a test starts (and theirs) begins with SIGINT at its default."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_restore_ctrl_c()  # at import: before any test, in the controller and in every xdist worker


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the developer's AWS config, credentials, caches or our env options."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith(("AWS_", "SAGEMAKER_", "MLFLOW_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


@pytest.fixture(scope="session")
def loopback():
    from aws_train_remote.sandbox import LoopbackAws

    server = LoopbackAws()
    yield server
    server.stop()


@pytest.fixture
def aws(loopback, monkeypatch):
    """A clean moto server on 127.0.0.1 and the environment that points boto3 at it. Jobs are
    not run: the test sets their states (moto_fidelity.md 1.6)."""
    loopback.run_jobs = False
    loopback.no_capacity, loopback.no_spot_capacity = set(), False
    loopback.reset()
    for key, value in loopback.env().items():
        monkeypatch.setenv(key, value)
    yield loopback
    loopback.wait_for_jobs()
    loopback.runners.clear()


@pytest.fixture
def sandbox(aws):
    """The same server, but CreateTrainingJob really runs the job on this machine."""
    aws.run_jobs = True
    return aws


def write_script(folder, body: str, name: str = "train.py") -> str:
    path = os.path.join(str(folder), name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(textwrap.dedent(body))
    return path


def run_python(args, cwd, env=None, timeout=120, input=None):
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=str(cwd), env=full_env, capture_output=True,
                          text=True, timeout=timeout, input=input)


def launch_no_wait(cwd, role, *args, check=True):
    """train.py --sagemaker-run yes --sagemaker-wait no: returns once the job exists."""
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", role, "--sagemaker-wait", "no",
                         *args], cwd=cwd)
    if check:
        assert result.returncode == 0, result.stderr
    return result
