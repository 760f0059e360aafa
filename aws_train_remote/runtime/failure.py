"""/opt/ml/output/failure: written once (a script that wrote its own keeps it), error first,
because DescribeTrainingJob's FailureReason is only the first 1024 characters. No
"AlgorithmError: " prefix: SageMaker adds it to FailureReason itself."""
from __future__ import annotations

import os
import re

_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*)(: .*)?$")


def error_from_stderr(lines) -> tuple:
    """(error line, traceback tail) from the last Python traceback in `lines`, or (None, tail)."""
    lines = [line.rstrip() for line in lines]
    start = max((i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")),
                default=None)
    if start is None:
        return None, [line for line in lines if line.strip()][-10:]
    block = lines[start:]
    error = None
    for line in reversed(block):
        if line and not line.startswith((" ", "\t")) and _ERROR_LINE.match(line.split(" ", 1)[0].rstrip(":")):
            error = line
            break
    frames = [line for line in block[1:] if line.strip() and line.strip(" ^~") != ""]
    return error, [block[0]] + frames[-10:]


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
