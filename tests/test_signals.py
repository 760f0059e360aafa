"""Signals as real training code meets them (issue 18, items 1, 9a and 11c): the platform's SIGTERM
reaches the script's main process only, so PyTorch DataLoader workers and multiprocessing pools
live until the script has saved; the resumed run starts at the saved step. Real torch, real
subprocesses, the in-container runtime and local mode."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO, run_python, write_script
from runtime_job import JobRoot

torch = pytest.importorskip("torch", reason="torch==2.13.0 is in the test extra (scripts/test.sh installs it)")

# The common pattern: the SIGTERM handler only sets a flag (installed before the heavy imports, so
# an early signal is not lost); the loop saves at the next step boundary and returns: exit 0, as
# Lightning turns SIGTERM into a clean exit.
LOOP = """
import os, signal, sys, time
STOP = []
if __name__ == "__main__":  # not in the pool's workers, which import this file as __mp_main__
    signal.signal(signal.SIGTERM, lambda signum, frame: STOP.append(signum))
import torch
from aws_train_remote import training_main

class Numbers(torch.utils.data.Dataset):
    def __len__(self):
        return 1_000_000
    def __getitem__(self, i):
        time.sleep(0.004)
        return torch.tensor([float(i % 7)])

def square(x):
    time.sleep(0.05)
    return x * x

def batches(kind, pool):
    if kind == "dataloader":
        yield from torch.utils.data.DataLoader(Numbers(), batch_size=4, num_workers=2)
    while kind == "pool":
        yield torch.tensor([[float(v)] for v in pool.map(square, range(4))])

def main(args):
    path = os.path.join(args.checkpoint_dir, "state.pt")
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    step = 0
    if os.path.exists(path):
        state = torch.load(path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        print(f"resumed at step {step}", flush=True)
    end = step + 3 if step else 10_000
    import contextlib, multiprocessing
    # forkserver: the start method of Python 3.14 on Linux; its workers do not inherit our handler
    pooled = args.kind == "pool"
    with multiprocessing.get_context("forkserver").Pool(2) if pooled else contextlib.nullcontext() as pool:
        for batch in batches(args.kind, pool):
            loss = ((model(batch) - 2 * batch) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            print(f"step {step}", flush=True)
            if STOP:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, path)
                print(f"saved at step {step} on signal {STOP[0]}", flush=True)
                return
            if step >= end:
                break
    print(f"finished at step {step}", flush=True)

if __name__ == "__main__":
    training_main(main, additional_arguments=[{"dest": "--kind", "default": "dataloader"}])
"""


class Runtime:
    """The runtime as SageMaker starts it, its output read as it comes."""

    def __init__(self, job, cwd):
        env = dict(os.environ, PYTHONPATH=REPO, SAGEMAKER_BASE_DIR=job.root, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "aws_train_remote.runtime"], cwd=str(cwd), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(re.search(pattern, line) for line in list(self.lines)):
                return
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines[-40:]))

    def finish(self, timeout=60):
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code, "\n".join(self.lines)


def step_of(text, pattern):
    found = re.findall(pattern, text)
    assert found, text
    return int(found[-1])


@pytest.mark.parametrize("kind", ["dataloader", "pool"])
def test_sigterm_reaches_the_main_process_only_and_the_run_resumes_at_the_saved_step(job_root, tmp_path, kind):
    """Issue 18.1: before, SIGTERM went to the whole process group, the DataLoader workers died at
    once ("DataLoader worker ... is killed by signal: Terminated"), nothing was saved and the
    restart began at step 0."""
    job_root.code({"train.py": LOOP})
    job_root.configure(argv=["--kind", kind])
    first = Runtime(job_root, tmp_path)
    first.wait_for(r"^step 3$")
    first.proc.send_signal(signal.SIGTERM)
    code, text = first.finish(timeout=45)
    assert "killed by signal" not in text and "Traceback" not in text, text
    saved = step_of(text, r"saved at step (\d+) on signal 15")
    assert saved >= 3
    # issue 18.11c: the script exited 0 after the platform's SIGTERM -- an interruption, not a success
    assert "training succeeded" not in text
    assert "training stopped: SIGTERM from the platform" in text and "exited with status 0" in text, text
    assert code != 0 and not os.path.exists(job_root.layout.success_file)

    second = Runtime(job_root, tmp_path)
    code, text = second.finish()
    assert code == 0, text
    assert step_of(text, r"resumed at step (\d+)") == saved
    assert f"finished at step {saved + 3}" in text and "training succeeded" in text
    print(f"{kind}: saved at step {saved}, resumed at step {saved}")


@pytest.fixture
def job_root(tmp_path):
    return JobRoot(tmp_path / "opt" / "ml")


def test_local_mode_spot_rehearsal_with_dataloader_workers_resumes_at_the_saved_step(tmp_path):
    """The same loop through --sagemaker-run local --sagemaker-simulate-interruption: the attempt the
    interruption ended is reported as interrupted, not as a success, and the restart resumes."""
    write_script(tmp_path, LOOP)
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-spot", "--sagemaker-simulate-interruption",
                         "4", "--checkpoint-dir", "ckpt"], cwd=tmp_path, env={"OMP_NUM_THREADS": "1"}, timeout=240)
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "killed by signal" not in out and "Traceback" not in out, out
    saved = step_of(out, r"\[algo-1\] saved at step (\d+) on signal 15")
    assert step_of(out, r"\[algo-1\] resumed at step (\d+)") == saved >= 1
    assert f"[algo-1] finished at step {saved + 3}" in out
    first, second = out.split("status: Interrupted - Simulated spot interruption 1")
    assert "training succeeded" not in first and "[algo-1] [aws-train-remote] training stopped: SIGTERM" in first
    assert "training succeeded" in second and "1 of 1 simulated interruptions happened" in out
    print(f"local mode: saved at step {saved}, resumed at step {saved}")
