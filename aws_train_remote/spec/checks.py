"""What every area check of the JobSpec shares: the one-line refusal, a local path or S3 URI
judged once, and the view that hands an area only the option values it owns.

Each area module (compute, storage, security, tracking, source, data, debugging, tuning) lists
its option keys in KEYS; the option table (options.py) still declares every flag, and a test
proves that each key belongs to exactly one area.
"""
from __future__ import annotations

import os

from .. import contract
from ..errors import UsageError
from . import values


def need(condition: bool, flag: str, value, problem: str, fix: str) -> None:
    if not condition:
        raise UsageError(flag, value, problem, fix)


def location_or_s3(flag, raw, base_dir, must_exist=True) -> str:
    """An s3:// URI as given (checked), or a local path made absolute against base_dir."""
    if values.is_s3_uri(raw):
        try:
            contract.split_s3(raw)
        except ValueError as err:
            raise UsageError(flag, raw, "malformed S3 URI", str(err)) from None
        return raw
    path = os.path.abspath(os.path.join(base_dir, os.path.expanduser(str(raw))))
    if must_exist:
        need(os.path.exists(path), flag, raw, "no such local file or folder",
             "create it, fix the path, or give an s3:// URI")
    return path


class AreaValues(dict):
    """The option values of one area. Reading a key the area does not own is a programming error
    (a flag is judged in one place), so it fails loudly instead of quietly reading None."""

    def __missing__(self, key):
        raise KeyError(f"{key!r} is not an option of this area; add it to the area's KEYS")

    def get(self, key, default=None):
        if key not in self:
            return self.__missing__(key)
        return dict.get(self, key, default)


def area_values(values_by_key: dict, keys) -> AreaValues:
    return AreaValues({key: values_by_key.get(key) for key in keys})
