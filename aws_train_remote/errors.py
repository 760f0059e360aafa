"""The one exception tree of aws-train-remote.

Every message says what was expected and how to fix it. Only the command-line layer
(`cli/` and `training.run_cli`) turns these into exit codes and one-line messages.
"""
from __future__ import annotations


class TrainRemoteError(Exception):
    """Base class: an error the user can act on. `str(err)` is one printable line."""

    exit_code = 1


class UsageError(TrainRemoteError):
    """Bad input judged before any AWS call: a flag, config key or keyword with a bad value."""

    exit_code = 2

    def __init__(self, flag: str, value: object, problem: str, fix: str):
        self.flag = flag
        self.value = value
        self.problem = problem
        self.fix = fix
        shown = "" if value is None else f"={_short(value)}"
        super().__init__(f"{flag}{shown}: {problem}; {fix}")


class ConfigError(UsageError):
    """A config file that cannot be read or holds unknown keys."""


class DefinitionError(TrainRemoteError):
    """The script's own use of training_main is wrong (e.g. a flag clash); found at parser build."""

    exit_code = 2


class AwsError(TrainRemoteError):
    """An AWS call failed after retries; the message names the operation and the fix."""


class FollowLost(TrainRemoteError):
    """Following a job ended before the job did (AWS out of reach beyond the follow's patience,
    credentials expired); the job is not affected. Exit 4, as `status` answers for a running job."""

    exit_code = 4


class MissingDependencyError(TrainRemoteError):
    """An optional package is needed for what was asked (e.g. boto3 for an s3:// input)."""


class JobFailed(TrainRemoteError):
    """The training job ended in a status other than Completed."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _short(value: object, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
