"""Reading a training job's CloudWatch logs: every instance's stream, streams that appear
late included, each event exactly once, interleaved by timestamp.

Streams live in /aws/sagemaker/TrainingJobs as <job>/algo-<N>-<epoch>; the prefix always
ends with "/" so job "a" never picks up the streams of job "a0".
"""
from __future__ import annotations

from dataclasses import dataclass

from .session import error_code

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


@dataclass(frozen=True)
class LogLine:
    timestamp: int  # ms since the epoch
    host: str
    message: str
    stream: str


def host_of(stream: str, job_name: str) -> str:
    """algo-2 from '<job>/algo-2-1700000000'."""
    rest = stream[len(job_name) + 1:] if stream.startswith(job_name + "/") else stream
    head, sep, tail = rest.rpartition("-")
    return head if sep and tail.isdigit() and head else rest



class LogTail:
    """Incremental reader; call poll() repeatedly. Holds one forward token per stream."""

    def __init__(self, logs, job_name: str, group: str = LOG_GROUP):
        self.logs = logs
        self.job_name = job_name
        self.group = group
        self.tokens = {}  # stream -> last nextForwardToken (None: not read yet)
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
                if name not in self.tokens:
                    self.tokens[name] = None
                    new.append(name)
            if not page.get("nextToken"):
                return new
            kwargs["nextToken"] = page["nextToken"]

    def read_stream(self, stream: str) -> list:
        """Every event after the stored token; the token stops changing at the end (AWS docs)."""
        from botocore.exceptions import ClientError

        lines = []
        while True:
            kwargs = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
            token = self.tokens.get(stream)
            if token:
                kwargs["nextToken"] = token
            try:
                self.calls += 1
                page = self.logs.get_log_events(**kwargs)
            except ClientError as err:
                if error_code(err) == "ResourceNotFoundException":
                    return lines
                raise
            host = host_of(stream, self.job_name)
            lines += [LogLine(e["timestamp"], host, e["message"], stream) for e in page.get("events", [])]
            next_token = page.get("nextForwardToken")
            if not next_token or next_token == token:
                return lines
            self.tokens[stream] = next_token
            if not page.get("events"):
                return lines

    def poll(self, discover: bool = True) -> list:
        if discover:
            self.discover()
        lines = []
        for stream in sorted(self.tokens):
            lines += self.read_stream(stream)
        lines.sort(key=lambda line: line.timestamp)  # stable: per-stream order kept on ties
        return lines
