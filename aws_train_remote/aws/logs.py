"""Reading a training job's CloudWatch logs: every instance's stream, streams that appear
late included, each event exactly once, interleaved by timestamp.

Streams live in /aws/sagemaker/TrainingJobs as <job>/algo-<N>-<epoch>; the prefix always
ends with "/" so job "a" never picks up the streams of job "a0".
"""
from __future__ import annotations

from dataclasses import dataclass

from .session import error_code, is_transient

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


@dataclass(frozen=True)
class LogLine:
    timestamp: int  # ms since the epoch
    host: str
    message: str
    stream: str


def host_of(stream: str, job_name: str) -> str:
    """algo-2 from '<job>/algo-2-1700000000'. A stream of the host's own with a suffix keeps it as a
    label: the SSM agent of a job with remote debugging writes its errors to
    '<job>/algo-2-1700000000/ssm' (train-remote-debugging.html), shown as algo-2/ssm, so its lines
    are never taken for the script's, and `--instance algo-2` leaves them out."""
    rest = stream[len(job_name) + 1:] if stream.startswith(job_name + "/") else stream
    first, slash, suffix = rest.partition("/")
    head, sep, tail = first.rpartition("-")
    host = head if sep and tail.isdigit() and head else first
    return f"{host}/{suffix}" if slash and suffix else host


class LogTail:
    """Incremental reader; call poll() repeatedly. Holds one forward token per stream.

    A stream's token advances only together with the lines it covers, and those lines wait in
    `pending` until a poll() hands them out. A transient failure (throttling that outlived
    botocore's retries, a 5xx, a dropped connection) stops reading that stream for this poll only:
    poll() returns what it read, sets `failure`, and the next poll() resumes exactly there.
    """

    def __init__(self, logs, job_name: str, group: str = LOG_GROUP, *, start_time: int = None, hosts=None,
                 keep_last: int = None):
        self.logs = logs
        self.job_name = job_name
        self.group = group
        self.start_time = start_time  # ms since the epoch: read only events from then on
        self.hosts = set(hosts) if hosts else None  # read only these instances' streams (algo-2, ...)
        self.keep_last = keep_last  # the first poll returns only its last N lines (logs --tail N --follow)
        self.tokens = {}  # stream -> last nextForwardToken (None: not read yet)
        self.pending = []  # LogLine read past by a token but not yet returned by poll()
        self.failure = None  # the transient error that cut the last poll short, if any
        self.unread = set()
        self.calls = 0

    def discover(self) -> list:
        """Names of streams not seen before."""
        from botocore.exceptions import ClientError

        new = []
        kwargs = {"logGroupName": self.group, "logStreamNamePrefix": self.job_name + "/"}
        while True:
            try:
                self.calls += 1
                page = self.logs.describe_log_streams(**kwargs)
            except ClientError as err:
                if error_code(err) == "ResourceNotFoundException":
                    return new  # no logs yet: the group appears with the first instance
                raise
            for stream in page.get("logStreams", []):
                name = stream["logStreamName"]
                if self.hosts is not None and host_of(name, self.job_name) not in self.hosts:
                    continue
                if name not in self.tokens:
                    self.tokens[name] = None
                    new.append(name)
            if not page.get("nextToken"):
                return new
            kwargs["nextToken"] = page["nextToken"]

    def read_stream(self, stream: str) -> None:
        """Every event after the stored token into `pending`; the token stops changing at the end
        (AWS docs)."""
        from botocore.exceptions import ClientError

        host = host_of(stream, self.job_name)
        while True:
            kwargs = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
            token = self.tokens.get(stream)
            if token:
                kwargs["nextToken"] = token
            elif self.start_time is not None:
                kwargs["startTime"] = self.start_time
            try:
                self.calls += 1
                page = self.logs.get_log_events(**kwargs)
            except ClientError as err:
                if error_code(err) == "ResourceNotFoundException":
                    return
                raise
            self.pending += [LogLine(e["timestamp"], host, e["message"], stream) for e in page.get("events", [])]
            next_token = page.get("nextForwardToken")
            if not next_token or next_token == token:
                return
            self.tokens[stream] = next_token
            if not page.get("events"):
                return

    def poll(self, discover: bool = True, streams=None) -> list:
        """The lines not returned before, ordered by time (ties keep each stream's order).
        `streams`: read only these (default: every stream known)."""
        self.failure = None
        self.unread = set()  # streams (and None for discovery) this poll could not finish
        known = set(self.tokens)
        if discover:
            self._transient_ok(None, self.discover)
        chosen = set(self.tokens) if streams is None else set(streams) | (set(self.tokens) - known)
        for stream in sorted(chosen):
            self._transient_ok(stream, self.read_stream, stream)
        lines, self.pending = self.pending, []
        lines.sort(key=lambda line: line.timestamp)
        if self.keep_last is not None:
            lines, self.keep_last = lines[-self.keep_last:] if self.keep_last else [], None
        return lines

    def retry_unread(self) -> list:
        """Poll again only what the last poll could not finish."""
        unread = self.unread
        return self.poll(discover=None in unread, streams=sorted(s for s in unread if s is not None))

    def _transient_ok(self, what, step, *args) -> None:
        try:
            step(*args)
        except Exception as err:  # noqa: BLE001 - only transient AWS failures are kept, the rest re-raised
            if not is_transient(err):
                raise
            self.failure = err
            self.unread.add(what)


def last_lines(logs, job_name: str, count: int, *, start_time: int = None, hosts=None,
               group: str = LOG_GROUP) -> list:
    """The job's last `count` lines over all (or the chosen) instances, ordered by time: one
    GetLogEvents per stream, read from its end."""
    from botocore.exceptions import ClientError

    tail = LogTail(logs, job_name, group, hosts=hosts)
    tail.discover()
    lines = []
    for stream in sorted(tail.tokens):
        host = host_of(stream, job_name)
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": False,
                  "limit": max(1, min(count, 10000))}
        if start_time is not None:
            kwargs["startTime"] = start_time
        try:
            page = logs.get_log_events(**kwargs)
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                continue
            raise
        lines += [LogLine(e["timestamp"], host, e["message"], stream) for e in page.get("events", [])]
    lines.sort(key=lambda line: line.timestamp)
    return lines[-count:] if count else []
