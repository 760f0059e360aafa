"""Job names: unique without coordination (base + UTC time + random suffix), always within
SageMaker's 63 characters and its pattern ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}."""
from __future__ import annotations

import re

JOB_NAME_LIMIT = 63
JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_SUFFIX_LEN = len("-20260101-000000-abcdef")


def sanitize_base(text: str) -> str:
    """Turn a script name into a valid base name: other characters become '-'."""
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", text).strip("-")
    base = re.sub(r"-{2,}", "-", base)
    return base or "job"


def unique_job_name(base: str, now, token: str) -> str:
    """`now` is a datetime (UTC), `token` 6 hex characters from the caller's random source."""
    stamp = now.strftime("%Y%m%d-%H%M%S")
    room = JOB_NAME_LIMIT - _SUFFIX_LEN
    trimmed = base[:room].rstrip("-") or "job"
    return f"{trimmed}-{stamp}-{token}"


def is_valid_job_name(name: str) -> bool:
    return bool(JOB_NAME_PATTERN.match(name))


TUNING_NAME_LIMIT = 32  # HyperParameterTuningJobName


def tuning_job_name(base: str, now, token: str) -> str:
    """A tuning job's name: at most 32 characters, base + time + 3 hex."""
    stamp = now.strftime("%y%m%d-%H%M%S")
    room = TUNING_NAME_LIMIT - len(stamp) - 5
    return f"{base[:room].rstrip('-') or 'tune'}-{stamp}-{token[:3]}"
