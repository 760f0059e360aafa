"""Colour and block characters on a terminal: one colour per host, fixed by its name; statuses
and errors by what they mean. Plain text when the stream is not a terminal, when NO_COLOR is set
(https://no-color.org) or TERM is dumb. Plain ANSI codes: no library on this path."""
from __future__ import annotations

import os
import re
import zlib

RESET = "\033[0m"
HOST_COLORS = ("\033[36m", "\033[33m", "\033[35m", "\033[32m", "\033[34m", "\033[31m")
GOOD, BAD, WARN, BUSY = "\033[32m", "\033[31m", "\033[33m", "\033[1m"
# SageMaker's primary and secondary statuses by meaning; any other (Starting, Training, ...) is BUSY
STATUS_COLORS = {"InProgress": BUSY, "Completed": GOOD, "Failed": BAD, "Stopped": WARN, "Stopping": WARN,
                 "MaxRuntimeExceeded": BAD, "MaxWaitTimeExceeded": BAD, "Interrupted": WARN, "Restarting": WARN}
SPARKS = "▁▂▃▄▅▆▇█"


def use_color(stream, environ=None) -> bool:
    """Colour for `stream`: a terminal, NO_COLOR unset or empty, TERM not dumb."""
    environ = os.environ if environ is None else environ
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def blocks_ok(stream) -> bool:
    """Whether `stream` can print the block characters of bars and sparklines (UTF-8)."""
    return "utf" in (getattr(stream, "encoding", None) or "").lower()


def host_color(host: str) -> str:
    """algo-N always gets the Nth colour, whoever prints first; another name a colour of its own
    hash (crc32: the same in every run, unlike hash())."""
    number = re.search(r"(\d+)$", host)
    index = int(number.group(1)) - 1 if number and int(number.group(1)) > 0 else zlib.crc32(host.encode())
    return HOST_COLORS[index % len(HOST_COLORS)]


def paint(text: str, color: str, on: bool = True) -> str:
    return f"{color}{text}{RESET}" if on and color else text


def status_color(status: str) -> str:
    return STATUS_COLORS.get(status, BUSY)


def paint_status_line(line: str, on: bool = True) -> str:
    """A line that starts with a status ("Failed: job, ...", "status: Training - ...") or an error
    ("failure reason: ...") with that word coloured by its meaning."""
    if not on:
        return line
    if line.startswith(("failure reason:", "error:")):
        head, sep, rest = line.partition(":")
        return paint(head + sep, BAD) + rest
    match = re.match(r"^(status: )?([A-Z][A-Za-z]+)(:| - |$)", line)
    if not match or (not match.group(1) and match.group(2) not in STATUS_COLORS):
        return line
    start, end = match.span(2)
    return line[:start] + paint(line[start:end], status_color(match.group(2))) + line[end:]
