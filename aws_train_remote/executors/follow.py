"""Following a job to its end: status changes as they happen, the logs of every instance,
then one summary. Clock and sleep are passed in, so the loop is tested without waiting."""
from __future__ import annotations

import sys
import time

from ..aws.jobs import TERMINAL, summary_lines
from ..aws.logs import LogTail
from ..aws.session import error_code

COLORS = ("\033[36m", "\033[33m", "\033[35m", "\033[32m", "\033[34m", "\033[31m")
RESET = "\033[0m"
FAST_POLL = 2.0  # at most this often while output flows
SLOW_POLL = 10.0  # back off to this when idle
THROTTLED_POLL = 20.0


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

    def info(self, text: str) -> None:
        self.out.write(text + "\n")

    def flush(self):
        self.out.flush()


def follow(sm, logs, job_name: str, printer: Printer, *, sleep=time.sleep, show_logs=True,
           fast=FAST_POLL, slow=SLOW_POLL):
    """Poll until the job is terminal; return its last DescribeTrainingJob answer.

    No initial sleep. While lines flow, polls every `fast` seconds; when idle the interval grows
    to `slow`; throttling that outlives botocore's retries doubles it. After the terminal status,
    the logs are drained once more so the last lines are never lost.
    """
    from botocore.exceptions import ClientError

    tail = LogTail(logs, job_name)
    seen_transitions = set()
    interval = fast
    while True:
        try:
            desc = sm.describe_training_job(TrainingJobName=job_name)
            events = []  # (ms, order, printer call): status changes and log lines, merged by time
            for t in desc.get("SecondaryStatusTransitions", []):
                key = (t.get("Status"), str(t.get("StartTime")))
                if key not in seen_transitions:
                    seen_transitions.add(key)
                    message = f" - {t['StatusMessage']}" if t.get("StatusMessage") else ""
                    events.append((_ms(t.get("StartTime")), 0, f"status: {t.get('Status')}{message}"))
            lines = tail.poll() if show_logs else []
        except ClientError as err:
            if "Throttl" not in error_code(err) and error_code(err) != "TooManyRequestsException":
                raise
            interval = min(max(interval * 2, fast), THROTTLED_POLL)
            sleep(interval)
            continue
        events += [(line.timestamp, 1, line) for line in lines]
        for _, _, item in sorted(events, key=lambda e: (e[0], e[1])):
            if isinstance(item, str):
                printer.info(item)
            else:
                printer.line(item.host, item.message)
        printer.flush()
        if desc["TrainingJobStatus"] in TERMINAL:
            if show_logs:
                for line in tail.poll():
                    printer.line(line.host, line.message)
            for text in summary_lines(desc):
                printer.info(text)
            printer.flush()
            return desc
        interval = fast if lines else min(interval * 1.5, slow)
        sleep(interval)
