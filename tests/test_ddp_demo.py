"""Issue 12.2: the PyTorch DDP demo runs unchanged as a plain local run and in local mode with
2 instances x 2 processes (gloo on CPU); interrupted once by the spot rehearsal, it resumes from its
newest checkpoint and ends with exactly the model of an uninterrupted run."""
import os

import pytest
from conftest import REPO, run_python

DEMO = os.path.join(REPO, "demo", "ddp", "train.py")
ENV = {"OMP_NUM_THREADS": "1"}


def test_plain_local_run_is_one_process(tmp_path):
    pytest.importorskip("torch", reason="torch==2.13.0 could not be installed (scripts/test.sh installs it)")
    result = run_python([DEMO, "--epochs", "2"], cwd=tmp_path, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "epoch=2 " in result.stdout and "world=1" in result.stdout
    assert (tmp_path / "output" / "model" / "model.pt").is_file()


# torch's own teardown on a 2-core machine shared with the other test worker: now and then a gloo
# rank or torch elastic's exit barrier loses its peer after training ended (seen in about one CI
# run in four, never alone or under a CPU hog: 11 of 11 runs passed)
TORCH_TEARDOWN = ("Connection closed by peer", "exit barrier", "terminate called", "DistNetworkError", "SIGABRT")


def run_demo(cwd, name, extra):
    # 16 epochs of at least 1 s: the interruption at 14 s of script time lands after the first
    # checkpoints even when torch takes several seconds to start 4 processes on a busy machine
    cwd.mkdir()
    return run_python([DEMO, "--epochs", "16", "--sleep", "1", "--sagemaker-run", "local",
                       "--sagemaker-instance-count", "2", "--sagemaker-nproc-per-node", "2",
                       "--sagemaker-base-job-name", f"ddp-{name}", *extra], cwd=cwd, env=ENV, timeout=300)


def test_two_hosts_two_processes_interrupted_once_end_with_the_same_model(tmp_path):
    torch = pytest.importorskip("torch", reason="torch==2.13.0 could not be installed (scripts/test.sh installs it)")
    models = {}
    for name, extra in (("steady", []), ("interrupted", ["--sagemaker-simulate-interruption", "14s"])):
        cwd = tmp_path / name
        result = run_demo(cwd, name, extra)
        if result.returncode != 0 and any(sign in result.stdout for sign in TORCH_TEARDOWN):
            print("torch teardown failure, run again from scratch:\n" + "\n".join(
                line for line in result.stdout.splitlines() if any(sign in line for sign in TORCH_TEARDOWN)))
            cwd = tmp_path / f"{name}-again"
            result = run_demo(cwd, f"{name}-again", extra)  # a fresh base job name: no earlier checkpoints
        problems = [line for line in result.stdout.splitlines()
                    if "Error" in line or "error" in line or "failed" in line or "Signal" in line][:40]
        assert result.returncode == 0, "\n".join(problems) + "\n...\n" + result.stdout[-3000:] + result.stderr
        assert "[algo-1] epoch=16 " in result.stdout and "world=4" in result.stdout
        if extra:
            out = result.stdout
            assert "spot rehearsal: 1 of 1 simulated interruptions happened" in out, out[-3000:]
            # the interruption lands after some epochs: they are resumed, not repeated
            assert "[algo-1] stopping after epoch " in out and "[algo-1] resumed from ckpt-" in out, out[-3000:]
        models[name] = torch.load(cwd / "output" / "model" / "model.pt", weights_only=True)
    assert models["steady"].keys() == models["interrupted"].keys()
    for key in models["steady"]:
        assert torch.equal(models["steady"][key], models["interrupted"][key]), key
