"""The argv that travels to the container: the user's tokens, exactly as typed, minus the
flags that the container replaces (every --sagemaker-* flag and the path flags, which the
runtime re-adds pointing at /opt/ml)."""
from __future__ import annotations


def strip_flags(argv, remove: dict) -> list:
    """Drop each occurrence of a flag in `remove` (flag -> nargs: 0, 1 or '?') with its value.

    Mirrors argparse's token rules: `--flag=value` is one token; an optional ('?') value is
    taken only when the next token does not look like a flag; after `--` nothing is a flag.
    """
    out = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.extend(argv[i:])
            break
        name = token.split("=", 1)[0] if token.startswith("--") else token
        nargs = remove.get(name)
        if nargs is None:
            out.append(token)
            i += 1
            continue
        i += 1
        if "=" in token or nargs == 0:
            continue
        if nargs == 1 and i < len(argv):
            i += 1
        elif nargs == "?" and i < len(argv) and not _looks_like_flag(argv[i]):
            i += 1
    return out


def _looks_like_flag(token: str) -> bool:
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)  # argparse treats negative numbers as values when no option looks like one
        return False
    except ValueError:
        return True
