"""The one place boto3 is imported. Clients use botocore's standard retry mode, so
throttling and transient 5xx are retried with backoff; AWS_ENDPOINT_URL (honoured by boto3
itself) points every client at a loopback server in tests and in the sandbox."""
from __future__ import annotations

import contextlib

from ..errors import AwsError, MissingDependencyError

RETRY_ATTEMPTS = 6  # total attempts per call, standard mode (exponential backoff with jitter)


def _boto3():
    try:
        import boto3
    except ImportError:
        raise MissingDependencyError("boto3 is needed to talk to AWS; pip install boto3 "
                                     "(it is an install requirement of aws-train-remote)") from None
    return boto3


class AwsSession:
    """A boto3 session built lazily; clients cached per service."""

    def __init__(self, profile=None, region=None, max_attempts=None, environ=None):
        import os

        environ = os.environ if environ is None else environ
        self.profile = profile
        self.region = region
        # the user's own AWS_MAX_ATTEMPTS / AWS_RETRY_MODE win, as they do for the AWS CLI
        self.max_attempts = max_attempts or int(environ.get("AWS_MAX_ATTEMPTS") or RETRY_ATTEMPTS)
        self.retry_mode = environ.get("AWS_RETRY_MODE") or "standard"
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

            config = Config(retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
                            connect_timeout=10, read_timeout=60, max_pool_connections=32)
            self._clients[service] = self.boto.client(service, config=config)
            import gc

            # botocore's models are hundreds of thousands of objects that live as long as the process;
            # kept out of the cyclic collector they cost no collection time during the launch, and the
            # interpreter's exit is about 200 ms faster (measured: bench/launch.py).
            gc.freeze()
        return self._clients[service]

    @property
    def region_name(self):
        return self.boto.region_name


def check_region(region: str, environ, flag: str = "--region") -> None:
    """A region botocore does not know for SageMaker is one line before any call (its endpoint
    would not resolve, or answer with an HTML page). Skipped when AWS_ENDPOINT_URL points elsewhere."""
    from ..errors import UsageError

    if environ.get("AWS_ENDPOINT_URL") or environ.get("AWS_ENDPOINT_URL_SAGEMAKER"):
        return
    import botocore.session

    session = botocore.session.get_session()
    known = set()
    for partition in session.get_available_partitions():
        known.update(session.get_available_regions("sagemaker", partition_name=partition))
    if region not in known:
        raise UsageError(flag, region, "not a region where SageMaker is available",
                         "use one such as us-east-1 or eu-west-1 (if the region is new, upgrade boto3)")


def error_code(err) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else). A connection-level
    error carries `response = None` (botocore's HTTPClientError) or no `response` at all."""
    response = getattr(err, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return str(error.get("Code") or "") if isinstance(error, dict) else ""


def http_status(err) -> int:
    """The HTTP status of an AWS error reply (0 when no reply arrived)."""
    response = getattr(err, "response", None)
    meta = response.get("ResponseMetadata") if isinstance(response, dict) else None
    return int(meta.get("HTTPStatusCode") or 0) if isinstance(meta, dict) else 0


# Throttling and time-outs that AWS answers with a 4xx; every 5xx is transient too.
TRANSIENT_CODES = frozenset({"TooManyRequestsException", "RequestLimitExceeded", "SlowDown", "RequestTimeout",
                             "RequestTimeoutException", "PriorRequestNotComplete"})
# Credentials that stopped working (expired session, revoked or rotated keys): waiting does not help.
CREDENTIAL_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
                              "UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch",
                              "InvalidAccessKeyId", "InvalidToken", "TokenRefreshRequired"})


def is_network_failure(err) -> bool:
    """No reply arrived: a closed connection, a read or connect time-out, a name that did not
    resolve (botocore's EndpointConnectionError), a proxy that refused."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(err, (BotoConnectionError, HTTPClientError))


def is_transient(err) -> bool:
    """Throttling, a 5xx or a network failure that outlived botocore's retries: worth waiting out."""
    from botocore.exceptions import ClientError

    if is_network_failure(err):
        return True
    if isinstance(err, ClientError):
        code = error_code(err)
        return "Throttl" in code or code in TRANSIENT_CODES or http_status(err) >= 500
    return False


def is_credential_failure(err) -> bool:
    """The credentials expired or were refused, or could not be found or refreshed."""
    from botocore.exceptions import (
        ClientError,
        CredentialRetrievalError,
        NoCredentialsError,
        PartialCredentialsError,
        SSOError,
        TokenRetrievalError,
    )

    if isinstance(err, ClientError):
        return error_code(err) in CREDENTIAL_CODES
    return isinstance(err, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, SSOError,
                            TokenRetrievalError))


@contextlib.contextmanager
def aws_failures_as_errors():
    """Any botocore failure that escaped the retries becomes one AwsError line, not a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as err:
        operation = getattr(err, "operation_name", "AWS call")
        raise AwsError(f"{operation} failed ({error_code(err)}): "
                       f"{err.response.get('Error', {}).get('Message', err)}") from None
    except BotoCoreError as err:
        raise AwsError(f"{err}; check the network, region and credentials") from None
