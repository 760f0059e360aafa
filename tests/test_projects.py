"""The projects people really have (issue 18.8): real libraries, real layouts, each run as a plain
local run, in local mode and through the sandbox where it applies, each asserting its outcome (the
step it resumed at, the files in the model, the module it imported), not only exit 0.

The projects live in tests/projects/; each test copies one into its own folder."""
import os
import re
import shutil
import subprocess

import pytest
from conftest import REPO, run_python

PROJECTS = os.path.join(REPO, "tests", "projects")
ROLE = "arn:aws:iam::123456789012:role/DemoRole"
QUIET = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
         "TRANSFORMERS_VERBOSITY": "error", "MLFLOW_ALLOW_FILE_STORE": "true"}


def copy_project(name, tmp_path):
    dest = tmp_path / name
    shutil.copytree(os.path.join(PROJECTS, name), dest)
    return dest


def lines_of(out, pattern):
    return re.findall(pattern, out, flags=re.MULTILINE)


# -- (a) Hugging Face Trainer + PEFT LoRA, seed 002's workload in miniature ------------------------

def test_hf_lora_plain_run_saves_the_adapter(tmp_path):
    pytest.importorskip("peft")
    project = copy_project("hf_lora", tmp_path)
    result = run_python(["train.py", "--max-steps", "4"], cwd=project, env=QUIET, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world=1 resume_from=None" in result.stdout and "finished at global_step=4" in result.stdout
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(os.listdir(project / "output" / "model"))
    assert sorted(os.listdir(project / "output" / "checkpoints")) == ["checkpoint-2", "checkpoint-4", "started-rank0"]


def test_hf_lora_two_hosts_two_processes_interrupted_resumes_from_the_trainers_checkpoint(tmp_path, monkeypatch):
    """torchrun 2 hosts x 2 processes (gloo), save_total_limit=2, MLflow tracking, one simulated spot
    interruption once checkpoint-2 is saved: the resumed attempt continues from checkpoint-2 (global
    step 2, not 0) to step 12, every rank's random state travels, and the adapter is the model."""
    pytest.importorskip("peft")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for the client below; MLflow 3 keeps it behind this
    project = copy_project("hf_lora", tmp_path)
    result = run_python(["train.py", "--wait-after-step", "2", "--sagemaker-run", "local",
                         "--sagemaker-instance-count", "2", "--sagemaker-nproc-per-node", "2",
                         "--sagemaker-distribution", "torchrun", "--sagemaker-simulate-interruption", "60s",
                         "--sagemaker-mlflow", "file:mlruns", "--sagemaker-mlflow-experiment", "hf-lora",
                         "--sagemaker-env", "MLFLOW_ALLOW_FILE_STORE=true", "--sagemaker-env", "OMP_NUM_THREADS=1",
                         "--sagemaker-env", "HF_HUB_OFFLINE=1", "--sagemaker-base-job-name", "hf-lora"],
                        cwd=project, env=QUIET, timeout=400)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert "spot rehearsal: 1 of 1 simulated interruptions happened" in out, out[-3000:]
    starts = lines_of(out, r"^\[algo-1\] world=(\d+) resume_from=(\S+)$")
    first, resumed = out.split("resume_from=", 2)[1], out.split("resume_from=", 2)[2]
    saved = lines_of(first, r"^\[algo-1\] saved (checkpoint-\d+)$")
    # the first attempt waits once checkpoint-2 is saved, so the interruption lands there; on a
    # machine so busy that it lands before any checkpoint, the resume from nothing is right too
    print(f"\nhf lora: first attempt saved {saved or 'nothing'}, resumed from {starts[1][1]}")
    assert starts == [("4", "None"), ("4", saved[-1] if saved else "None")], out[-3000:]
    assert "saved checkpoint-2" not in resumed or not saved, "a resumed attempt started over"
    assert "[algo-1] finished at global_step=12" in out
    model = project / "output" / "model"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(os.listdir(model))
    run_id = re.search(r"MLflow: run (\w+)", out).group(1)
    metrics = MlflowClient(tracking_uri=f"file://{project / 'mlruns'}").get_run(run_id).data.metrics
    assert "loss" in metrics and "train_loss" in metrics, metrics


def test_hf_lora_through_the_sandbox(tmp_path, sandbox):
    pytest.importorskip("peft")
    import io
    import tarfile

    import boto3

    project = copy_project("hf_lora", tmp_path)
    result = run_python(["train.py", "--max-steps", "4", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                         "--sagemaker-env", "OMP_NUM_THREADS=1"], cwd=project, env=QUIET, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "[algo-1] finished at global_step=4" in result.stdout
    job = re.search(r"^job: (\S+)", result.stdout, flags=re.MULTILINE).group(1)
    body = boto3.client("s3", region_name="us-east-1").get_object(
        Bucket="sagemaker-us-east-1-123456789012", Key=f"aws-train-remote/output/{job}/output/model.tar.gz")["Body"]
    with tarfile.open(fileobj=io.BytesIO(body.read())) as tar:
        assert {"adapter_config.json", "adapter_model.safetensors"} <= set(tar.getnames())


# -- (f) a script in a subfolder of a monorepo importing a sibling package --------------------------

@pytest.mark.parametrize("mode", ["plain", "plain-from-its-folder", "local", "sandbox"])
def test_monorepo_app_imports_its_sibling_package(tmp_path, mode, request):
    """Issue 18.8 (f), and 21.6: the script's relative paths are its own, from either launch place."""
    project = copy_project("monorepo", tmp_path)
    args = ["apps/trainer/train.py", "--model-dir", str(tmp_path / "model")]
    if mode == "plain-from-its-folder":
        project, args[0] = project / "apps" / "trainer", "train.py"
    if mode == "local":
        args += ["--sagemaker-run", "local"]
    if mode == "sandbox":
        request.getfixturevalue("sandbox")
        args += ["--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-download"]
    result = run_python(args, cwd=project, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "common=common-1.4 mean=2.5 accuracy=0.75 from=common" in result.stdout
    assert (tmp_path / "model" / "result.txt").read_text() == "common-1.4"


def run_in(python, args, cwd, env=None, timeout=240):
    """A command of the user's own interpreter (a virtualenv of theirs), with this package importable."""
    full_env = dict(os.environ, PYTHONPATH=REPO)
    full_env.update(QUIET)
    full_env.update(env or {})
    return subprocess.run([python, *args], cwd=str(cwd), env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def printed(out, prefix):
    """The rest of the one line of algo-1 that starts with `prefix`."""
    found = lines_of(out, rf"^\[algo-1\] {re.escape(prefix)}(.*)$")
    assert len(found) == 1, (prefix, out[-3000:])
    return found[0]


# -- (b) PyTorch Lightning: save_last="link", interrupted, resumed from ckpt_path="last" -------------

def lightning_attempts(out):
    """[(last.ckpt found as, step resumed at, step it waited at or None)], one per attempt of algo-1."""
    parts = re.split(r"^\[algo-1\] attempt \d+: ", out, flags=re.MULTILINE)[1:]
    attempts = []
    for part in parts:
        found, resumed = re.match(r"last\.ckpt=(\w+) resumed at global_step=(\d+)", part).groups()
        waited = re.search(r"^\[algo-1\] waiting at global_step=(\d+)$", part, flags=re.MULTILINE)
        attempts.append((found, int(resumed), int(waited.group(1)) if waited else None))
    return attempts


def test_lightning_plain_run_keeps_last_ckpt_a_link(tmp_path):
    pytest.importorskip("lightning")
    project = copy_project("lightning_link", tmp_path)
    result = run_python(["train.py", "--max-steps", "4"], cwd=project, env=QUIET, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "attempt 1: last.ckpt=none resumed at global_step=0" in result.stdout
    assert "finished at global_step=4" in result.stdout
    assert os.readlink(project / "output" / "checkpoints" / "last.ckpt") == "step=4.ckpt"
    # the user's own model folder is the script's business: its link out stays as the script made it
    assert os.path.islink(project / "output" / "model" / "last.ckpt")


def test_lightning_interrupted_resumes_from_last(tmp_path):
    """A simulated spot interruption landing once the attempt has saved step 2 (it waits there):
    Lightning turns the SIGTERM into a clean exit, and the restart resumes with ckpt_path="last" at
    step 2 (not 0), though last.ckpt, a link when saved, comes back a copy. The model folder's link
    out (last.ckpt -> the checkpoint folder) arrives as the file it pointed at."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("lightning")
    project = copy_project("lightning_link", tmp_path)
    result = run_python(["train.py", "--max-steps", "6", "--wait-after-step", "2", "--sagemaker-run", "local",
                         "--sagemaker-simulate-interruption", "15s", "--sagemaker-env", "OMP_NUM_THREADS=1"],
                        cwd=project, env=QUIET, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert "spot rehearsal: 1 of 1 simulated interruptions happened" in out, out[-3000:]
    attempts = lightning_attempts(out)
    print(f"\nlightning: attempts (last.ckpt, resumed at, waited at): {attempts}")
    (found, resumed, waited), (found_again, resumed_again, _) = attempts
    assert (found, resumed) == ("none", 0), attempts
    # the first attempt waits once step 2 is saved, so the interruption lands there; on a machine so
    # busy that it lands sooner, the restart resumes wherever Lightning got to, never before it
    assert resumed_again == waited if waited is not None else resumed_again in (0, 2), attempts
    assert found_again == ("file" if resumed_again else "none"), attempts  # restored as a copy, never lost
    if waited is not None:  # Lightning's clean exit after SIGTERM is still an interruption, not a finish
        assert "the script exited with status 0 after it: interrupted, not finished" in out, out[-3000:]
    assert "[algo-1] finished at global_step=6" in out
    model = project / "output" / "model"
    assert sorted(os.listdir(model)) == ["last.ckpt", "weights.pt"]
    assert not os.path.islink(model / "last.ckpt")
    assert torch.load(model / "last.ckpt", weights_only=False)["global_step"] == 6


def test_lightning_relaunched_through_the_sandbox_resumes_from_the_newest_last(tmp_path, sandbox):
    """A user relaunches the job on one checkpoint location (a stopped job, a spot job past its
    MaxWait): each job resumes with ckpt_path="last". After the first resume Lightning keeps the
    restored copy last.ckpt (step 2) and links last-v1.ckpt (step 4) beside it; "last" means the
    last*.ckpt with the newest modification time, so a restore must keep the order in which the
    files were saved: the third job resumes at step 4, not 2. Its model, downloaded, holds the
    file its link out pointed at."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("lightning")
    project = copy_project("lightning_link", tmp_path)
    location = "s3://sagemaker-us-east-1-123456789012/lightning/checkpoints"
    model = tmp_path / "model"
    starts = []
    for steps in (2, 4, 6):
        download = ["--sagemaker-download", "--model-dir", str(model)] if steps == 6 else []
        result = run_python(["train.py", "--max-steps", str(steps), "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                             "--sagemaker-checkpoint-s3", location, "--sagemaker-env", "OMP_NUM_THREADS=1", *download],
                            cwd=project, env=QUIET, timeout=240)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert f"[algo-1] finished at global_step={steps}" in result.stdout
        starts.append(lightning_attempts(result.stdout)[0][:2])
    assert sorted(os.listdir(model)) == ["last.ckpt", "weights.pt"]
    assert not os.path.islink(model / "last.ckpt")
    assert torch.load(model / "last.ckpt", weights_only=False)["global_step"] == 6
    assert starts == [("none", 0), ("file", 2), ("file", 4)]


# -- (c) a plain torch loop with DataLoader workers, saving on SIGTERM ------------------------------

def test_torch_workers_plain_run(tmp_path):
    torch = pytest.importorskip("torch")
    project = copy_project("torch_workers", tmp_path)
    result = run_python(["train.py", "--max-steps", "10"], cwd=project, env=QUIET, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed at step=0" in result.stdout and "finished at step=10" in result.stdout
    assert torch.load(project / "output" / "checkpoints" / "state.pt")["step"] == 10
    assert os.listdir(project / "output" / "model") == ["model.pt"]


def test_torch_workers_interrupted_save_on_sigterm_and_resume_there(tmp_path):
    """The spot rehearsal's SIGTERM reaches the script's main process, not its DataLoader workers:
    the loop takes one more batch from them, saves, exits; the restart resumes at the saved step.
    (When the group got it, the workers died, the loop raised `DataLoader worker ... is killed by
    signal: Terminated`, nothing was saved and the restart began at step 0.)"""
    pytest.importorskip("torch")
    project = copy_project("torch_workers", tmp_path)
    result = run_python(["train.py", "--wait-after-step", "5", "--sagemaker-run", "local",
                         "--sagemaker-simulate-interruption", "12s", "--sagemaker-env", "OMP_NUM_THREADS=1"],
                        cwd=project, env=QUIET, timeout=240)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert "spot rehearsal: 1 of 1 simulated interruptions happened" in out, out[-3000:]
    assert "killed by signal" not in out + result.stderr
    first, resumed = out.split("[algo-1] resumed at step=")[1:]
    saved = int(re.search(r"^\[algo-1\] saved step=(\d+) \(SIGTERM\)$", first, flags=re.MULTILINE).group(1))
    print(f"\ntorch workers: saved step {saved} on SIGTERM")
    if "waiting at step=5" in first:
        assert saved == 5, first  # interrupted while waiting at step 5: saved right there
    assert resumed.startswith(f"{saved}\n"), out[-3000:]
    assert "[algo-1] finished at step=40" in out
    assert os.listdir(project / "output" / "model") == ["model.pt"]


# -- (d) a src/-layout project with pyproject.toml ---------------------------------------------------

def test_src_layout_local_mode_imports_the_projects_own_version_not_the_users(tmp_path):
    """The user's environment holds an older release of the package (0.2.0, installed from an index
    once): the plain run imports it, as it imports anything of the user's; the job installs the
    project it was given (0.3.0: dynamic version, package data) and imports that, leaving the
    user's release where it was."""
    from test_job_env import freeze, user_venv
    from test_requirements import OFFLINE_PIP

    project = copy_project("src_layout", tmp_path)
    release = tmp_path / "release"
    shutil.copytree(project, release, ignore=shutil.ignore_patterns("data", "train.py"))
    (release / "src" / "mypkg" / "__init__.py").write_text('__version__ = "0.2.0"\n')
    python = user_venv(tmp_path / "uservenv")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(release)], env=dict(
        os.environ, **OFFLINE_PIP), check=True, capture_output=True, timeout=120)

    plain = run_in(python, ["train.py"], cwd=project)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert "mypkg 0.2.0 (installed: 0.2.0) labels=['low', 'high'] threshold=3.0" in plain.stdout

    before = freeze(python)
    local = run_in(python, ["train.py", "--sagemaker-run", "local"], cwd=project, env=OFFLINE_PIP)
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-2000:]
    seen = printed(local.stdout, "mypkg ")
    assert seen.startswith("0.3.0 (installed: 0.3.0) labels=['low', 'high'] threshold=3.0 from "), seen
    assert ".atr-job-env" in seen, seen  # the job's own install, not the user's release nor src/
    assert (project / "output" / "model" / "model.txt").read_text() == "mypkg=0.3.0 threshold=3.0\n"
    assert freeze(python) == before and re.search(r"^mypkg\b", before, flags=re.MULTILINE)


def test_src_layout_through_the_sandbox(tmp_path, sandbox, monkeypatch):
    from test_requirements import OFFLINE_PIP

    for key, value in OFFLINE_PIP.items():
        monkeypatch.setenv(key, value)  # the sandbox runs its jobs with its own environment
    project = copy_project("src_layout", tmp_path)
    model = tmp_path / "model"
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-download",
                         "--model-dir", str(model)], cwd=project, env=QUIET, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    seen = printed(result.stdout, "mypkg ")
    assert seen.startswith("0.3.0 (installed: 0.3.0) labels=['low', 'high'] threshold=3.0 from "), seen
    assert (model / "model.txt").read_text() == "mypkg=0.3.0 threshold=3.0\n"


# -- (e) editable and local-path requirements, changed between two runs -----------------------------

def test_local_requirements_changed_between_two_local_jobs_are_the_new_code(tmp_path):
    """The user installed the project's requirements in their own environment (`pip install -r
    requirements.txt`: mylib editable, other copied) and runs both ways. After both libraries move
    to 2.0, the plain run sees what pip gave the user (the editable mylib's new code, the copied
    other's old one); each local job installs the lines afresh and imports the code it was given,
    and never touches the user's environment. The user's install left setuptools' in-tree build
    folder (libs/other/build/lib, still 1.0) in the project, as pip's in-tree builds do: a job must
    not build `other` from that stale copy."""
    from test_job_env import freeze, user_venv
    from test_requirements import OFFLINE_PIP

    project = copy_project("local_requirements", tmp_path)
    python = user_venv(tmp_path / "uservenv")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "-r", "requirements.txt"], cwd=project,
                   env=dict(os.environ, **OFFLINE_PIP), check=True, capture_output=True, timeout=120)
    before = freeze(python)

    def bump(version):
        for rel in ("libs/mylib/src/mylib/__init__.py", "libs/other/other/__init__.py"):
            path = project / rel
            path.write_text(path.read_text().replace('__version__ = "1.0"', f'__version__ = "{version}"'))

    first = run_in(python, ["train.py", "--sagemaker-run", "local"], cwd=project, env=OFFLINE_PIP)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert printed(first.stdout, "mylib ").startswith("1.0 other 1.0 total=12 mylib from ")
    bump("2.0")
    plain = run_in(python, ["train.py"], cwd=project)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert f"mylib 2.0 other 1.0 total=12 mylib from {project / 'libs' / 'mylib' / 'src' / 'mylib'}" in plain.stdout
    second = run_in(python, ["train.py", "--sagemaker-run", "local"], cwd=project, env=OFFLINE_PIP)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    seen = printed(second.stdout, "mylib ")
    assert seen.startswith("2.0 other 2.0 total=12 mylib from "), seen
    assert str(project) not in seen, seen  # the editable install points into the job's own code
    assert (project / "output" / "model" / "versions.txt").read_text() == "mylib=2.0 other=2.0\n"
    assert freeze(python) == before
