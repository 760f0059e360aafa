"""Parsers for option values. Each takes a raw value (string from argv or env, or a YAML
scalar/list/mapping) and returns a typed value, or raises ValueError with the expected form,
which the caller turns into a UsageError naming the flag."""
from __future__ import annotations

import re

from ..contract import split_s3

_TRUE = {"yes", "true", "1", "on", "y"}
_FALSE = {"no", "false", "0", "off", "n"}


def parse_bool(raw) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected yes/no (also true/false, 1/0, on/off)")


def parse_run(raw) -> str:
    """--sagemaker-run: no, yes or local; yes/no in any boolean spelling (aws-sagemaker-remote used True)."""
    text = str(raw).strip().lower()
    if text == "local":
        return "local"
    try:
        return "yes" if parse_bool(raw) else "no"
    except ValueError:
        raise ValueError("expected no, yes or local") from None


def parse_int(raw) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected a whole number")
    if isinstance(raw, int):
        return raw
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(raw) -> int:
    """Seconds, or a number with unit s/m/h/d ("90m", "2h")."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    match = _DURATION.match(str(raw))
    if not match:
        raise ValueError("expected seconds or a duration such as 90m, 2h, 1d")
    return int(match.group(1)) * _UNIT[match.group(2).lower()]


def parse_durations(raw) -> tuple:
    """One or more durations, comma-separated ("30s,90s") or a YAML list."""
    items = raw if isinstance(raw, (list, tuple)) else [p for p in str(raw).split(",") if p.strip()]
    if not items:
        raise ValueError("expected one or more durations such as 30s or 30s,90s")
    try:
        return tuple(parse_duration(item) for item in items)
    except ValueError:
        raise ValueError("expected one or more durations such as 30s or 30s,90s") from None


def parse_pairs(raw) -> tuple:
    """KEY=VALUE items: a string, a list of strings, or a mapping (from YAML). Order kept, last wins."""
    if raw is None:
        return ()
    if isinstance(raw, dict):
        items = [(str(k), "" if v is None else _scalar_text(v, k)) for k, v in raw.items()]
    else:
        items = []
        for entry in [raw] if isinstance(raw, str) else list(raw):
            if isinstance(entry, (tuple, list)) and len(entry) == 2:
                items.append((str(entry[0]), _scalar_text(entry[1], entry[0])))
                continue
            key, sep, value = str(entry).partition("=")
            if not sep or not key.strip():
                raise ValueError(f"expected KEY=VALUE, got {entry!r}")
            items.append((key.strip(), value))
    merged = {}
    for key, value in items:
        merged[key] = value
    return tuple(merged.items())


def parse_list(raw) -> tuple:
    """Comma-separated string or a list; empty items dropped."""
    if raw is None:
        return ()
    parts = str(raw).split(",") if isinstance(raw, str) else [str(p) for p in raw]
    return tuple(p.strip() for p in parts if p.strip())


def parse_str(raw) -> str:
    if isinstance(raw, (dict, list)):
        raise ValueError("expected a single value")
    return str(raw)


_NOT_TEXT = {list: "a list", tuple: "a list", dict: "a mapping", set: "a set", frozenset: "a set",
             bytes: "binary data"}


def _scalar_text(value, key=None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    kind = next((name for cls, name in _NOT_TEXT.items() if isinstance(value, cls)), None)
    if kind:  # its str() would be Python's repr (['1', '2']), not what was written (issue 18.5)
        raise ValueError(f"the value of {key or 'an item'} is {kind}, not text; quote it to pass it as written, "
                         f"e.g. {key or 'KEY'}: '[1, 2]'")
    return str(value)




def is_s3_uri(text) -> bool:
    return isinstance(text, str) and text.startswith("s3://")


FILE_SYSTEMS = {"efs://": "EFS", "fsx://": "FSxLustre"}
_FS_ID = re.compile(r"^fs-[0-9a-f]{8,40}$")


def is_fs_uri(text) -> bool:
    """efs://fs-id/path or fsx://fs-id/mount-name/path: a file system the job mounts."""
    return isinstance(text, str) and text.startswith(tuple(FILE_SYSTEMS))


def parse_fs_uri(text: str):
    """(FileSystemType, FileSystemId, DirectoryPath), or ValueError saying what is expected."""
    scheme = next(s for s in FILE_SYSTEMS if text.startswith(s))
    fs_id, _, path = text[len(scheme):].partition("/")
    if not _FS_ID.match(fs_id):
        raise ValueError(f"{fs_id!r} is not a file system id (fs-0123abcd...)")
    kind = FILE_SYSTEMS[scheme]
    path = "/" + path.strip("/")
    if kind == "FSxLustre" and path == "/":
        raise ValueError("an FSx for Lustre path starts with the file system's mount name: fsx://fs-id/MOUNT/path")
    if ".." in path.split("/"):
        raise ValueError("the path may not contain ..")
    return kind, fs_id, path


def parse_s3_uri(raw) -> str:
    text = parse_str(raw)
    split_s3(text)
    return text


def parse_bool_or_s3(raw):
    """yes/no in any boolean spelling, or an s3:// URI (a flag that takes an optional location)."""
    if isinstance(raw, str) and raw.strip().startswith("s3://"):
        try:
            return parse_s3_uri(raw.strip())
        except ValueError as err:
            raise ValueError(f"malformed S3 URI ({err})") from None
    try:
        return parse_bool(raw)
    except ValueError:
        raise ValueError("expected yes/no or an s3:// URI") from None
