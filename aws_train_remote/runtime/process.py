"""Running the user's process: output forwarded line by line as it comes (carriage-return
progress bars become an occasional whole line instead of one giant CloudWatch line), the
tail of stderr kept for the failure reason, and SIGTERM/SIGINT forwarded to the script's main
process (under torchrun: to each rank's) with a grace period, so a spot interruption lets the
script save a checkpoint."""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time

PROGRESS_EVERY = 5.0  # seconds between lines of one carriage-return progress bar
MAX_LINE = 64 * 1024  # output with no line break is cut into lines of this size
# SageMaker sends SIGTERM and kills the container 120 s later (StopTrainingJob, spot reclaim,
# MaxRuntimeInSeconds). The checkpoint upload after that is SageMaker's own; this runtime needs a
# few seconds of the 120 to kill what is left, flush the output and write failure or success.
# So the script gets 110 s: long enough for a large checkpoint, never cut by the container's end.
GRACE_SECONDS = 110.0
SCRIPT_GROUP_FILE_ENV = "ATR_SCRIPT_GROUP_FILE"  # local mode: where to note the script's process group
# Once the script's main process and its group are gone, its output is read to the end; only a
# process it started in a session of its own (a TensorBoard or MLflow server, `setsid`) can still
# hold the pipes open. Their reading ends when they have been quiet this long, or at DRAIN_SECONDS,
# not when that process exits: it outlived the script (issue 18: a 1 s job took 20 s).
QUIET_SECONDS = 1.0
DRAIN_SECONDS = 10.0


class LineRelay:
    """Splits a byte stream into lines; a run of '\\r' updates prints only every few seconds."""

    def __init__(self, out, tail=None, clock=time.monotonic, every=PROGRESS_EVERY):
        self.out = out
        self.tail = tail
        self.clock = clock
        self.every = every
        self.buffer = b""
        self.last_progress = None
        self.pending = None  # the newest progress state not printed yet

    def _emit(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        self.out.write(text + "\n")
        self.out.flush()
        if self.tail is not None:
            self.tail.append(text)

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            nl, cr = self.buffer.find(b"\n"), self.buffer.find(b"\r")
            if nl == -1 and cr == -1:
                if len(self.buffer) > MAX_LINE:  # a CloudWatch event holds 256 KB at most
                    segment, self.buffer = self.buffer[:MAX_LINE], self.buffer[MAX_LINE:]
                    self._emit(segment)
                    continue
                return
            if cr != -1 and (nl == -1 or cr < nl):
                if cr + 1 < len(self.buffer) and self.buffer[cr + 1:cr + 2] == b"\n":  # CRLF
                    segment, self.buffer = self.buffer[:cr], self.buffer[cr + 2:]
                    self._line(segment)
                    continue
                if cr + 1 == len(self.buffer):
                    return  # wait: it may be the first half of CRLF
                segment, self.buffer = self.buffer[:cr], self.buffer[cr + 1:]
                self._progress(segment)
            else:
                segment, self.buffer = self.buffer[:nl], self.buffer[nl + 1:]
                self._line(segment)

    def _progress(self, segment: bytes) -> None:
        if not segment.strip():
            return
        now = self.clock()
        if self.last_progress is None or now - self.last_progress >= self.every:
            self.last_progress = now
            self.pending = None
            self._emit(segment)
        else:
            self.pending = segment

    def _line(self, segment: bytes) -> None:
        self.pending = None  # the final state of a bar arrives with its newline
        self.last_progress = None
        self._emit(segment)

    def close(self) -> None:
        rest = self.buffer.rstrip(b"\r")
        if rest:
            self._emit(rest)
        elif self.pending:
            self._emit(self.pending)
        self.buffer = b""


def _pump(fd, relay, heard=None, slot=0):
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            if heard is not None:
                heard[slot] = float("inf")  # busy: a slow reader of our output is not quiet
            relay.feed(chunk)
            if heard is not None:
                heard[slot] = time.monotonic()
    finally:
        relay.close()
        os.close(fd)


class Child:
    """The user's process in its own process group. The platform's SIGTERM/SIGINT goes to its main
    process only: DataLoader workers and multiprocessing pools are the script's own, and must live
    until it has saved its checkpoint -- a signal to the whole group killed them at once and the
    script with them (issue 18.1). Under torchrun it goes to each rank's main process instead (see
    ranks_of). The group is killed when the grace period ends, and once the main process has
    exited (what is left of it then has lost its owner; in a container it would die with the
    container); under torchrun also each rank's session, which is not in that group."""

    def __init__(self, command, cwd, env, grace=GRACE_SECONDS, torchrun=False):
        self.command = command
        self.grace = grace
        self.torchrun = torchrun
        self.rank_sessions = set()  # every rank session seen: killed with the group
        self.stderr_tail = collections.deque(maxlen=60)
        self.signalled = None
        self._lock = threading.RLock()
        self._timer = None
        self._reaped = False
        self.proc = None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            self.proc = subprocess.Popen(command, cwd=cwd, env=_script_env(env), stdout=out_w, stderr=err_w,
                                         start_new_session=True)
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        _note_group(env, self.proc.pid)
        self._heard = [0.0, 0.0]  # when stdout, stderr last gave output (inf: being passed on)
        self.threads = [
            threading.Thread(target=_pump, args=(out_r, LineRelay(sys.stdout), self._heard, 0), daemon=True),
            threading.Thread(target=_pump, args=(err_r, LineRelay(sys.stderr, self.stderr_tail), self._heard, 1),
                             daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def forward(self, signum, frame=None):
        """SIGTERM/SIGINT from the platform: pass it to the script's main process (each rank's,
        under torchrun); the first one starts the grace period, at whose end the whole group gets
        SIGKILL."""
        with self._lock:  # re-entrant: the handler may interrupt this thread while it holds the lock
            if self._reaped:  # too late: the pid may be another process's by now
                return
            self.signalled = self.signalled or signum
            targets = self._ranks() or [self.proc.pid]  # no rank yet: torchrun ends itself, no one to save
            for pid in targets:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    if pid == self.proc.pid:
                        return
            if self._timer is None:
                self._timer = threading.Timer(self.grace, self._kill_group)
                self._timer.daemon = True
                self._timer.start()

    def _ranks(self) -> list:
        """Under torchrun, its ranks' main processes as they are now, their sessions noted for
        the end; [] otherwise, or where /proc cannot say."""
        if not self.torchrun:
            return []
        ranks = ranks_of(self.proc.pid)
        self.rank_sessions.update(ranks)
        return ranks

    def _kill_group(self):
        with self._lock:
            if self._reaped:  # the group id may belong to someone else by now
                return
            self._ranks()  # while torchrun lives: once it is gone, its ranks are no one's children
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            kill_sessions(self.rank_sessions)

    def wait(self) -> int:
        _wait_unreaped(self.proc.pid)
        self._kill_group()  # while the main process is a zombie, its pid (the group id) cannot be reused
        code = self.proc.wait()
        with self._lock:
            self._reaped = True
            if self._timer is not None:
                self._timer.cancel()
        _drain(self.threads, self._heard)
        return code


def _drain(threads, heard, quiet=QUIET_SECONDS, limit=DRAIN_SECONDS) -> None:
    """Wait for the output readers to reach the end of the pipes, as long as output still comes."""
    start = time.monotonic()
    deadline = start + limit
    for thread in threads:
        while thread.is_alive():
            now = time.monotonic()
            if now >= deadline or now - max(*heard, start) >= quiet:
                return  # held open by a process outside the script's group; it stays its own
            thread.join(timeout=0.05)


def _processes():
    """(pid, parent pid, group, session) of every process, from /proc; None without it (not Linux)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    table = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            # after the command name (which may hold spaces and parentheses): state ppid pgrp session
            fields = stat[stat.rindex(b")") + 2:].split()
            table.append((int(name), int(fields[1]), int(fields[2]), int(fields[3])))
        except (OSError, ValueError, IndexError):
            continue  # exited while we read
    return table


def ranks_of(session: int) -> list:
    """The main processes of torchrun's ranks, torchrun running in `session`: the processes started
    in a session of their own by one in it (torch's SubprocessHandler starts each rank so; a
    wrapper such as neuron_parallel_compile around torchrun changes nothing). The platform's signal
    goes to them, not to torchrun: torchrun's agent would relay it with os.killpg to each rank's
    whole group, DataLoader workers included, which die before the rank has saved; a rank that
    saves and exits 0 lets torchrun end by itself (all ranks succeeded), as the script meant."""
    table = _processes() or []
    session_of = {pid: sid for pid, _, _, sid in table}
    return sorted(pid for pid, ppid, _, sid in table if sid == pid != session and session_of.get(ppid) == session)


def kill_sessions(sessions) -> None:
    """SIGKILL to every process of these sessions: the group of each leader, and any group its
    processes made of their own, since there is no one call for a whole session."""
    if not sessions:
        return
    targets = [pid for pid, _, _, sid in _processes() or [] if sid in sessions]
    for group in sessions:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in targets:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_unreaped(pid: int) -> None:
    """Wait for the process to exit without reaping it (Linux, the container's system)."""
    if not hasattr(os, "waitid"):
        return
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        pass


def _script_env(env):
    env = dict(env)
    env.pop(SCRIPT_GROUP_FILE_ENV, None)  # ours, not the script's
    return env


def _note_group(env, pgid: int) -> None:
    """Local mode and the sandbox: tell the launcher the script's process group, so its own
    SIGKILL (the end of a stop's grace period) reaches the script too, not only this runtime."""
    path = (env or {}).get(SCRIPT_GROUP_FILE_ENV)
    if path:
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(str(pgid))
        except OSError:
            pass


def run_child(command, cwd, env, grace=GRACE_SECONDS, torchrun=False):
    """Start, forward SIGTERM/SIGINT while it runs, return (exit code, Child); `torchrun`: the
    command is torchrun (or wraps it), whose ranks get the signals.

    The handlers are installed before the script starts: a handler, unlike an ignored signal, is
    not inherited across exec, so the script starts with SIGTERM and SIGINT at their defaults, as
    a container's processes do, even when this runtime was started with SIGINT ignored
    (`nohup ... &`); a signal that comes before the script exists is passed on once it does."""
    early = []
    holder = {}

    def handler(signum, frame):
        child = holder.get("child")
        if child is None:
            early.append(signum)
        else:
            child.forward(signum, frame)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = Child(command, cwd, env, grace, torchrun)
        holder["child"] = child
        for signum in early:
            child.forward(signum)
        return child.wait(), child
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)
