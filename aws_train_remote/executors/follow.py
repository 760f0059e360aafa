"""Following a job to its end: status changes as they happen, the logs of every instance,
then one summary. Clock and sleep are passed in, so the loop is tested without waiting."""
from __future__ import annotations

import sys
import time

from ..aws.jobs import TERMINAL, summary_lines
from ..aws.logs import LogTail
from ..aws.session import error_code, is_transient

COLORS = ("\033[36m", "\033[33m", "\033[35m", "\033[32m", "\033[34m", "\033[31m")
RESET = "\033[0m"
FAST_POLL = 2.0  # at most this often while output flows
SLOW_POLL = 10.0  # back off to this when idle
THROTTLED_POLL = 10.0  # the longest wait after a transient failure (CloudWatch allows ~25 reads/s/account)


def _ms(when) -> int:
    """Milliseconds since the epoch of a botocore datetime (0 if absent: sorts first)."""
    return int(when.timestamp() * 1000) if hasattr(when, "timestamp") else 0



class Printer:
    """Prefix each line with its host; colour per host on a terminal."""

    def __init__(self, out=None, color=None):
        self.out = out if out is not None else sys.stdout
        self.color = bool(getattr(self.out, "isatty", lambda: False)()) if color is None else color
        self.hosts = {}

    def line(self, host: str, message: str) -> None:
        message = message.rstrip("\n")
        if self.color:
            color = COLORS[self.hosts.setdefault(host, len(self.hosts)) % len(COLORS)]
            self.out.write(f"{color}[{host}]{RESET} {message}\n")
        else:
            self.out.write(f"[{host}] {message}\n")

    def log(self, line) -> None:
        """One LogLine."""
        self.line(line.host, line.message)

    def info(self, text: str) -> None:
        self.out.write(text + "\n")

    def flush(self):
        self.out.flush()


TRANSIENT_NOTE_AFTER = 5  # consecutive failed polls before saying that we keep retrying


def follow(sm, logs, job_name: str, printer: Printer, *, sleep=time.sleep, show_logs=True,
           fast=FAST_POLL, slow=SLOW_POLL, tail=None):
    """Poll until the job is terminal; return its last DescribeTrainingJob answer.

    No initial sleep. While lines flow, polls every `fast` seconds; when idle the interval grows
    to `slow`; a transient failure that outlives botocore's retries (throttling, 5xx, a dropped
    connection) backs off and tries again, and loses nothing: the tail keeps every stream's place
    and prints what it could read. After the terminal status the logs are drained until a poll
    reads every stream, so the last lines are never lost.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    tail = tail if tail is not None else LogTail(logs, job_name)
    seen_transitions = set()
    interval = fast
    failures = 0

    def backoff(err, progress=False):
        """Wait after a transient failure: longer each time, unless the poll still got somewhere."""
        nonlocal interval, failures
        failures += 1
        if failures == TRANSIENT_NOTE_AFTER:
            printer.info(f"(AWS keeps answering {error_code(err) or type(err).__name__}; still retrying, "
                         "nothing is lost; Ctrl-C detaches)")
            printer.flush()
        interval = fast if progress else min(max(interval * 1.5, fast), THROTTLED_POLL)
        sleep(interval)

    while True:
        try:
            desc = sm.describe_training_job(TrainingJobName=job_name)
        except (ClientError, BotoCoreError) as err:
            if not is_transient(err):
                raise
            backoff(err)
            continue
        lines = tail.poll() if show_logs else []  # never loses a line; may leave some for the next poll
        events = []  # (ms, order, item): status changes and log lines, merged by time
        for t in desc.get("SecondaryStatusTransitions", []):
            key = (t.get("Status"), str(t.get("StartTime")))
            if key not in seen_transitions:
                seen_transitions.add(key)
                message = f" - {t['StatusMessage']}" if t.get("StatusMessage") else ""
                events.append((_ms(t.get("StartTime")), 0, f"status: {t.get('Status')}{message}"))
        events += [(line.timestamp, 1, line) for line in lines]
        for _, _, item in sorted(events, key=lambda e: (e[0], e[1])):
            if isinstance(item, str):
                printer.info(item)
            else:
                printer.log(item)
        printer.flush()
        if desc["TrainingJobStatus"] in TERMINAL:
            while show_logs and tail.failure is not None:  # drain until every stream is read to its end
                backoff(tail.failure, progress=False)
                for line in tail.retry_unread():
                    printer.log(line)
            for text in summary_lines(desc):
                printer.info(text)
            printer.flush()
            return desc
        if tail.failure is not None:
            backoff(tail.failure, progress=bool(lines))
            continue
        failures = 0
        interval = fast if lines else min(interval * 1.5, slow)
        sleep(interval)
