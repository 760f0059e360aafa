"""The progress of an upload (aws/s3.py): a line on a terminal, plain periodic lines otherwise, and
the transfer manager's subscriber that feeds it."""
from __future__ import annotations

import sys
import threading
import time


class Progress:
    """The bytes an upload has sent, with its rate and time left. On a terminal one line, redrawn
    in place and erased when the upload ends (or is interrupted: a ^C typed on it goes with it), so
    the summary that follows stands alone; otherwise (CI logs) a plain line every PLAIN_EVERY
    seconds, and nothing for an upload shorter than that."""

    REDRAW = 0.1  # seconds between two redraws of the terminal line
    PLAIN_EVERY = 10.0  # seconds between two plain lines

    def __init__(self, total_bytes: int, stream=None, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = total_bytes > 0
        self.total = total_bytes
        self.done = 0
        self.clock = clock
        self._start = None
        self._last = None
        self._width = 0  # of the line on the terminal, to erase it
        self._lock = threading.Lock()

    def __call__(self, nbytes: int) -> None:
        with self._lock:
            self.done += nbytes
            if not self.enabled:
                return
            now = self.clock()
            if self._start is None:
                self._start = self._last = now
            if self.tty:
                if now - self._last >= self.REDRAW or self.done >= self.total or not self._width:
                    self._last = now
                    line = self.text(now)
                    self.stream.write("\r" + line.ljust(self._width))
                    self._width = max(self._width, len(line))
                    self.stream.flush()
            elif now - self._last >= self.PLAIN_EVERY and self.done < self.total:
                self._last = now
                self.stream.write(self.text(now) + "\n")
                self.stream.flush()

    def text(self, now: float) -> str:
        pct = 100.0 * self.done / self.total
        line = f"uploading {self.done / 1e6:8.1f} / {self.total / 1e6:.1f} MB ({pct:5.1f}%)"
        elapsed = now - self._start
        if elapsed >= 0.5 and self.done:
            rate = self.done / elapsed
            line += f", {rate / 1e6:.1f} MB/s"
            if self.done < self.total:
                line += f", {_duration((self.total - self.done) / rate)} left"
        return line

    def close(self) -> None:
        with self._lock:
            if self.tty and self._width:
                # two more columns: the "^C" a terminal echoes after the line when the user interrupts
                self.stream.write("\r" + " " * (self._width + 2) + "\r")
                self.stream.flush()
                self._width = 0


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressSubscriber:
    def __init__(self, progress):
        self.progress = progress

    def on_progress(self, future=None, bytes_transferred=0, **kwargs):
        self.progress(bytes_transferred)

    def on_queued(self, **kwargs):
        pass

    def on_done(self, **kwargs):
        pass
