"""The one place boto3 is imported. Clients use botocore's standard retry mode, so
throttling and transient 5xx are retried with backoff; AWS_ENDPOINT_URL (honoured by boto3
itself) points every client at a loopback server in tests and in the sandbox."""
from __future__ import annotations

from ..errors import MissingDependencyError

RETRY_ATTEMPTS = 8  # total attempts per call, standard mode (exponential backoff with jitter)


def _boto3():
    try:
        import boto3
    except ImportError:
        raise MissingDependencyError("boto3 is needed to talk to AWS; pip install boto3 "
                                     "(it is an install requirement of aws-train-remote)") from None
    return boto3


class AwsSession:
    """A boto3 session built lazily; clients cached per service."""

    def __init__(self, profile=None, region=None, max_attempts=RETRY_ATTEMPTS):
        self.profile = profile
        self.region = region
        self.max_attempts = max_attempts
        self._session = None
        self._clients = {}

    @property
    def boto(self):
        if self._session is None:
            boto3 = _boto3()
            self._session = boto3.Session(profile_name=self.profile, region_name=self.region)
        return self._session

    def client(self, service: str):
        if service not in self._clients:
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "total_max_attempts": self.max_attempts},
                            connect_timeout=10, read_timeout=60, max_pool_connections=32)
            self._clients[service] = self.boto.client(service, config=config)
        return self._clients[service]

    @property
    def region_name(self):
        return self.boto.region_name


def error_code(err) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
