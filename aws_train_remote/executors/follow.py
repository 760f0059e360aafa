"""Following a job to its end: status changes as they happen, the logs of every instance,
then one summary. Clock and sleep are passed in, so the loop is tested without waiting."""
from __future__ import annotations

import sys
import time

from ..aws.instances import capacity_notes, describe_plan_or_none
from ..aws.jobs import TERMINAL, summary_lines
from ..aws.logs import LogTail
from ..aws.session import error_code, is_credential_failure, is_network_failure, is_transient
from .style import host_color, paint, paint_status_line, use_color

FAST_POLL = 2.0  # at most this often while output flows
SLOW_POLL = 10.0  # back off to this when idle
THROTTLED_POLL = 10.0  # the longest wait after a transient failure (CloudWatch allows ~25 reads/s/account)


def _ms(when) -> int:
    """Milliseconds since the epoch of a botocore datetime (0 if absent: sorts first)."""
    return int(when.timestamp() * 1000) if hasattr(when, "timestamp") else 0


class Printer:
    """Prefix each line with its host. On a terminal (and NO_COLOR unset) each host has a colour
    fixed by its name (algo-1 always the first), and statuses and errors are coloured by meaning.
    It remembers the status changes it printed: a second follow of the same job through it (after
    Ctrl-C stopped the job) prints only the new ones."""

    def __init__(self, out=None, color=None):
        self.out = out if out is not None else sys.stdout
        self.color = use_color(self.out) if color is None else color
        self.statuses = set()  # (status, start time) of every status change printed

    def line(self, host: str, message: str) -> None:
        message = message.rstrip("\n")
        self.out.write(f"{paint(f'[{host}]', host_color(host), self.color)} {message}\n")

    def log(self, line) -> None:
        """One LogLine."""
        self.line(line.host, line.message)

    def info(self, text: str) -> None:
        self.out.write(text + "\n")

    def status(self, text: str) -> None:
        """A status change or a summary line: its status word, or an error, coloured."""
        self.info(paint_status_line(text, self.color))

    def flush(self):
        self.out.flush()


PATIENCE = 15 * 60.0  # seconds without one complete poll before the follow gives up (the job goes on)
TRANSIENT_NOTE_AFTER = 5  # throttled or 5xx polls in a row before saying that we keep retrying


class LostContact(Exception):
    """The follow cannot go on: AWS out of reach beyond the patience, or credentials refused.
    `status` is the job's status at the last answer (None if none came)."""

    def __init__(self, reason: str, advice: str = "", status: str = None):
        super().__init__(reason)
        self.reason, self.advice, self.status = reason, advice, status


def what_failed(err) -> str:
    """A short name for a failure: the AWS error code, else the kind of network failure and where."""
    endpoint = (getattr(err, "kwargs", None) or {}).get("endpoint_url")
    return error_code(err) or type(err).__name__ + (f" at {endpoint}" if endpoint else "")


def span(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min" + (f" {rest} s" if rest else "")


class Outage:
    """A run of polls that did not complete. Said once when it starts (at once for a network
    failure, after a few polls for throttling) and once when it ends; past `patience` seconds of
    the passed-in clock the follow gives up with LostContact, which says how to come back."""

    def __init__(self, printer, clock, patience: float):
        self.printer, self.clock, self.patience = printer, clock, patience
        self.since = None
        self.failures = 0
        self.announced = False

    def failed(self, err, status=None) -> None:
        now = self.clock()
        if self.since is None:
            self.since = now
        self.failures += 1
        network = is_network_failure(err)
        if not self.announced and (network or self.failures >= TRANSIENT_NOTE_AFTER):
            self.announced = True
            what = f"no answer from AWS: {what_failed(err)}" if network else f"AWS keeps answering {what_failed(err)}"
            self.printer.info(f"({what}; retrying for up to {span(self.patience)}, nothing is lost; Ctrl-C detaches)")
            self.printer.flush()
        if now - self.since >= self.patience:
            lasted = span(now - self.since)
            raise LostContact(f"no answer from AWS for {lasted} ({what_failed(err)})" if network else
                              f"AWS kept answering {what_failed(err)} for {lasted}", status=status)

    def over(self) -> None:
        if self.announced:
            self.printer.info(f"(AWS answers again after {span(self.clock() - self.since)}; "
                              "the logs go on where they stopped)")
            self.printer.flush()
        self.since, self.failures, self.announced = None, 0, False


def follow(sm, logs, job_name: str, printer: Printer, *, sleep=time.sleep, clock=time.monotonic, show_logs=True,
           fast=FAST_POLL, slow=SLOW_POLL, tail=None, patience=PATIENCE):
    """Poll until the job is terminal; return its last DescribeTrainingJob answer.

    No initial sleep. While lines flow, polls every `fast` seconds; when idle the interval grows
    to `slow`; a transient failure that outlives botocore's retries (throttling, 5xx, a network
    failure) backs off and tries again, and loses nothing: the tail keeps every stream's place
    and prints what it could read. After the terminal status the logs are drained until a poll
    reads every stream, so the last lines are never lost. Raises LostContact when no poll has
    completed for `patience` seconds or the credentials are refused; the lines read so far are
    printed first, and `aws-train-remote attach` reads the log from its start again.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    tail = tail if tail is not None else LogTail(logs, job_name)
    last = {"desc": None}  # the last DescribeTrainingJob answer
    try:
        return _follow(sm, job_name, printer, tail, last, sleep=sleep, show_logs=show_logs, fast=fast, slow=slow,
                       outage=Outage(printer, clock, patience))
    except (ClientError, BotoCoreError) as err:
        if not is_credential_failure(err):
            raise
        reason = f"AWS refused the credentials ({what_failed(err)})"
        _print_pending(tail, printer)  # read before the refusal
        desc = last["desc"]
        if desc is not None and desc["TrainingJobStatus"] in TERMINAL:  # its end is known: the summary holds
            return _end(printer, desc, job_name, unread=reason)
        raise LostContact(reason, "renew them, then ", desc and desc["TrainingJobStatus"]) from None


def _follow(sm, job_name, printer, tail, last, *, sleep, show_logs, fast, slow, outage):
    from botocore.exceptions import BotoCoreError, ClientError

    seen_transitions = printer.statuses  # the printer's own: a second follow through it prints none again
    interval = fast

    def backoff(err, progress=False):
        """Wait after a transient failure: longer each time, unless the poll still got somewhere."""
        nonlocal interval
        outage.failed(err, last["desc"] and last["desc"]["TrainingJobStatus"])
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
        last["desc"] = desc
        lines = tail.poll() if show_logs else []  # never loses a line; may leave some for the next poll
        if tail.failure is None:
            outage.over()  # said before the lines that waited for it
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
                printer.status(item)
            else:
                printer.log(item)
        # SageMaker's choice from an instance list, and a job's wait on its training plan (issue 19.2, 19.3)
        for note in capacity_notes(desc, seen_transitions, lambda arn: describe_plan_or_none(sm, arn)):
            printer.status(note)
        printer.flush()
        if desc["TrainingJobStatus"] in TERMINAL:
            try:  # drain: read every stream to its end
                while show_logs and tail.failure is not None:
                    backoff(tail.failure, progress=False)
                    for line in tail.retry_unread():
                        printer.log(line)
            except LostContact as lost:
                return _end(printer, desc, job_name, unread=lost.reason)
            outage.over()
            return _end(printer, desc, job_name)
        if tail.failure is not None:
            backoff(tail.failure, progress=bool(lines))
            continue
        interval = fast if lines else min(interval * 1.5, slow)
        sleep(interval)


def _end(printer, desc: dict, job_name: str, unread: str = None) -> dict:
    """The summary; before it, when the job's last lines could not be read, why and how to read them."""
    if unread:
        printer.info(f"(the job has ended, but its last log lines could not be read: {unread}; "
                     f"read them with: aws-train-remote logs {job_name})")
    for text in summary_lines(desc):
        printer.status(text)
    printer.flush()
    return desc


def _print_pending(tail, printer) -> None:
    """Lines a cut-short poll had read: the tail's place is past them, so print them now."""
    for line in sorted(tail.pending, key=lambda line: line.timestamp):
        printer.log(line)
    tail.pending = []
    printer.flush()
