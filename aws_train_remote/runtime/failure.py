"""/opt/ml/output/failure: written once (a script that wrote its own keeps it), error first,
because DescribeTrainingJob's FailureReason is only the first 1024 characters. No
"AlgorithmError: " prefix: SageMaker adds it to FailureReason itself."""
from __future__ import annotations

import os
import re

_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*)(: .*)?$")
_RANK_PREFIX = re.compile(r"^\[[A-Za-z_]*\d+\]:\s?")  # torchrun's "[rank1]: " before each worker line
# the launcher's own report of a failed worker: the worker's exception comes first
_LAUNCHER_ERRORS = ("ChildFailedError", "torch.distributed.elastic")


def _bare(line: str) -> str:
    return _RANK_PREFIX.sub("", line)


def error_from_stderr(lines) -> tuple:
    """(error line, traceback tail) from the last Python traceback in `lines`, or (None, tail).
    Under torchrun, the last traceback is torchrun's ChildFailedError; the failing rank's own
    traceback before it is the one that says what went wrong, so it is preferred."""
    lines = [line.rstrip() for line in lines]
    starts = [i for i, line in enumerate(lines) if _bare(line).startswith("Traceback (most recent call last)")]
    if not starts:
        return None, [line for line in lines if line.strip()][-10:]
    blocks = [(start, _error_line(lines[start:end])) for start, end in zip(starts, starts[1:] + [len(lines)])]
    own = [b for b in blocks if b[1] and not any(name in b[1] for name in _LAUNCHER_ERRORS)]
    start, error = (own or blocks)[-1]
    end = next((s for s in starts if s > start), len(lines))
    block = lines[start:end]
    frames = [line for line in block[1:] if line.strip() and line.strip(" ^~") != ""]
    return error, [block[0]] + frames[-10:]


def _error_line(block):
    """The exception line of one traceback: the first unindented line after its last frame."""
    bare = [_bare(line) for line in block]
    frames = [i for i, line in enumerate(bare) if line.startswith('  File "')]
    for line in bare[(frames[-1] + 1) if frames else 1:]:
        if line and not line.startswith((" ", "\t")):
            return line if _ERROR_LINE.match(line.split(" ", 1)[0].rstrip(":")) else None
    return None


def failure_text(exit_code, command, stderr_lines) -> str:
    error, tail = error_from_stderr(stderr_lines)
    head = error or f"the script exited with status {exit_code}"
    parts = [head, f"ExitCode {exit_code}"]
    if exit_code in (137, -9):
        parts.append('ExtraInfo "OutOfMemory: Process killed by SIGKILL (signal 9)"')
    parts.append("Last lines of stderr:")
    parts += tail
    parts.append(f"Command {' '.join(command)!r}")
    return "\n".join(parts) + "\n"


def write_failure_once(layout, text: str) -> bool:
    """False if the script already wrote its own failure file (its words win)."""
    path = layout.failure_file
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return False
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True
