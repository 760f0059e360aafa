"""The platform's signal under torchrun (issue 18.1, defect D6): torch's agent starts each rank in a
session of its own and would relay SIGTERM with os.killpg to the rank's whole group; so the runtime
signals each rank's main process, its helpers live on, and the end of the grace period kills the
ranks' sessions too, which torchrun's group does not hold. Real torchrun, two ranks, plain scripts."""
import os
import signal
import sys
import textwrap
import time

import pytest

from aws_train_remote.runtime import launch
from aws_train_remote.runtime.process import Child

pytest.importorskip("torch", reason="torch==2.13.0 is in the test extra (scripts/test.sh installs it)")

# A rank that notes the signal and goes on (the grace period must end it), with a helper in its own
# process group, as a DataLoader worker is.
RANK = """
    import os, signal, subprocess, sys, time
    out, rank = sys.argv[1], os.environ["LOCAL_RANK"]

    def note(signum, frame):
        with open(os.path.join(out, f"signal-{rank}"), "w") as fh:
            fh.write(str(signum))

    signal.signal(signal.SIGTERM, note)
    helper = subprocess.Popen(["sleep", "60"])
    with open(os.path.join(out, f"rank-{rank}.tmp"), "w") as fh:
        fh.write(f"{os.getpid()} {helper.pid}")
    os.replace(os.path.join(out, f"rank-{rank}.tmp"), os.path.join(out, f"rank-{rank}"))
    while True:
        time.sleep(0.1)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] != b"Z"  # a zombie has ended; only its reaping is left


def _wait_for(paths, timeout=60):
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(p) for p in paths):
        assert time.monotonic() < deadline, f"none of {paths} after {timeout} s"
        time.sleep(0.05)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="ranks are found through /proc (Linux, as in a container)")
def test_each_rank_gets_the_signal_its_helpers_live_and_the_grace_end_kills_every_rank(tmp_path):
    (tmp_path / "rank.py").write_text(textwrap.dedent(RANK))
    command = [*launch.torchrun_command(sys.executable), "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
               "rank.py", str(tmp_path)]
    child = Child(command, str(tmp_path), dict(os.environ, OMP_NUM_THREADS="1"), grace=3.0, torchrun=True)
    try:
        _wait_for([tmp_path / "rank-0", tmp_path / "rank-1"])
        pids = [int(p) for r in (0, 1) for p in (tmp_path / f"rank-{r}").read_text().split()]
        child.forward(signal.SIGTERM)
        _wait_for([tmp_path / "signal-0", tmp_path / "signal-1"], timeout=10)
        assert all(_alive(pid) for pid in pids), "a rank's helper died of the signal meant for the rank"
        assert child.proc.poll() is None, "torchrun got the signal itself and shut its ranks down"
        started = time.monotonic()
        code = child.wait()
    finally:
        child._kill_group()
    assert code == -signal.SIGKILL and time.monotonic() - started < 15
    deadline = time.monotonic() + 5  # the ranks' new parent reaps them
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids), "a rank outlived the grace period, torchrun's group killed"
