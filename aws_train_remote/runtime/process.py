"""Running the user's process: output forwarded line by line as it comes (carriage-return
progress bars become an occasional whole line instead of one giant CloudWatch line), the
tail of stderr kept for the failure reason, and SIGTERM/SIGINT forwarded to the whole
process group with a grace period, so a spot interruption lets the script save a checkpoint."""
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
GRACE_SECONDS = 30.0


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


def _pump(fd, relay):
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            relay.feed(chunk)
    finally:
        relay.close()
        os.close(fd)


class Child:
    """The user's process in its own process group, with signal forwarding."""

    def __init__(self, command, cwd, env, grace=GRACE_SECONDS):
        self.command = command
        self.grace = grace
        self.stderr_tail = collections.deque(maxlen=60)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out_w, stderr=err_w,
                                     start_new_session=True)
        os.close(out_w)
        os.close(err_w)
        self.threads = [
            threading.Thread(target=_pump, args=(out_r, LineRelay(sys.stdout)), daemon=True),
            threading.Thread(target=_pump, args=(err_r, LineRelay(sys.stderr, self.stderr_tail)), daemon=True),
        ]
        for thread in self.threads:
            thread.start()
        self.signalled = None

    def forward(self, signum, frame=None):
        """SIGTERM/SIGINT from the platform: pass it to every process of the script, then give
        it `grace` seconds before SIGKILL."""
        self.signalled = signum
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            return
        timer = threading.Timer(self.grace, self._kill)
        timer.daemon = True
        timer.start()

    def _kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        code = self.proc.wait()
        for thread in self.threads:
            thread.join(timeout=10)
        return code


def run_child(command, cwd, env, grace=GRACE_SECONDS):
    """Start, forward SIGTERM/SIGINT while it runs, return (exit code, Child)."""
    child = Child(command, cwd, env, grace)
    previous = {s: signal.signal(s, child.forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait(), child
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
