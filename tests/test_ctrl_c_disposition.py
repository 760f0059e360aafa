"""SIGINT as the processes we start receive it, whatever their parent was started with (issue
18.9a). `nohup cmd &` from a script leaves SIGINT ignored, and an ignored signal stays ignored
across exec: the suite's Ctrl-C tests then saw exit 0 instead of 130, and a job's script would
not stop on SIGINT as it does in a container."""
import json
import os
import signal
import subprocess
import sys

from conftest import REPO, write_script
from runtime_job import JobRoot

IGNORE_SIGINT = {"preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)}  # as `nohup ... &` does

PROBE = '''
import signal, subprocess, sys

def test_a_child_stops_on_ctrl_c():
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, time\\n"  # 'ready' inside the try: a Ctrl-C just after it is caught
                              "try:\\n    print('ready', flush=True)\\n    time.sleep(30)\\n"
                              "except KeyboardInterrupt:\\n    sys.exit(130)"],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\\n"
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=10) == 130
'''


def test_the_suite_started_in_the_background_still_delivers_ctrl_c(tmp_path):
    """A pytest run started with SIGINT ignored, using our conftest: its Ctrl-C probe passes."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    (tmp_path / "conftest.py").write_text(  # the suite's conftest, run as the suite runs it
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {os.path.join(REPO, 'tests')!r})\n"
        f"spec = importlib.util.spec_from_file_location('suite_conftest', {os.path.join(REPO, 'tests', 'conftest.py')!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                             str(probe)], cwd=str(tmp_path), capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=REPO), **IGNORE_SIGINT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


DISPOSITION = """
import json, os, signal
from aws_train_remote import training_main
def main(args):
    seen = {"SIGINT": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
            "SIGTERM": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}
    print("dispositions", json.dumps(seen, sort_keys=True), flush=True)
    with open(os.path.join(args.model_dir, "seen.json"), "w") as fh:
        json.dump(seen, fh)
if __name__ == "__main__":
    training_main(main)
"""


def test_the_runtime_starts_the_script_with_sigint_at_its_default_as_a_container_does(tmp_path):
    job = JobRoot(tmp_path / "opt" / "ml")
    job.code({"train.py": DISPOSITION})
    job.configure()
    env = dict(os.environ, PYTHONPATH=REPO, SAGEMAKER_BASE_DIR=job.root)
    result = subprocess.run([sys.executable, "-m", "aws_train_remote.runtime"], cwd=str(tmp_path), env=env,
                            capture_output=True, text=True, timeout=120, **IGNORE_SIGINT)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(job.layout.model_dir, "seen.json")) as fh:
        assert json.load(fh) == {"SIGINT": True, "SIGTERM": True}


def test_local_mode_started_with_nohup_gives_the_script_a_working_ctrl_c(tmp_path):
    write_script(tmp_path, DISPOSITION)
    result = subprocess.run([sys.executable, "train.py", "--sagemaker-run", "local"], cwd=str(tmp_path),
                            env=dict(os.environ, PYTHONPATH=REPO, AWS_ENDPOINT_URL="http://127.0.0.1:9"),
                            capture_output=True, text=True, timeout=180, **IGNORE_SIGINT)
    assert result.returncode == 0, result.stderr
    assert '[algo-1] dispositions {"SIGINT": true, "SIGTERM": true}' in result.stdout
