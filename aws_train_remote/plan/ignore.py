"""gitignore-style rules (.gitignore, .sagemakerignore) and the files we never ship.

Covers the gitignore syntax people use: comments, `!` negation, trailing `/` for folders,
patterns with a `/` anchored to their file's folder, `*`, `?`, `[...]` and `**`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

IGNORE_FILES = (".gitignore", ".sagemakerignore")

# Never shipped, whatever the ignore files say: VCS data, environments, caches, secrets.
ALWAYS_SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "__pycache__",
                    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".ipynb_checkpoints", ".aws",
                    ".ssh", ".gnupg", ".idea", ".vscode", "node_modules", ".atr-cache"}
_SECRET_FILES = re.compile(
    r"^(\.env(\..*)?|.*\.env|.*\.pem|.*\.key|.*\.p12|.*\.pfx|id_rsa.*|id_dsa.*|id_ecdsa.*|id_ed25519.*|"
    r"credentials|\.netrc|\.pypirc|\.git-credentials|\.dockercfg|.*\.pyc|\.DS_Store)$")


def always_skip_file(name: str) -> bool:
    return bool(_SECRET_FILES.match(name))


def is_virtualenv(names) -> bool:
    return "pyvenv.cfg" in names


@dataclass(frozen=True)
class Rule:
    regex: object
    negate: bool
    dir_only: bool


def _translate(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def parse_rules(text: str) -> tuple:
    rules = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        regex = re.compile(("^" if anchored else "^(?:.*/)?") + body + "$")
        rules.append(Rule(regex, negate, dir_only))
    return tuple(rules)


def is_ignored(rules_by_base, relpath: str, is_dir: bool) -> bool:
    """rules_by_base: [(base relpath or '', rules[, lead]), ...] from the top down; the last
    match wins. `lead` is the root's path below an ancestor folder whose .gitignore applies."""
    ignored = False
    for entry in rules_by_base:
        base, rules = entry[0], entry[1]
        lead = entry[2] if len(entry) > 2 else ""
        if base:
            if not relpath.startswith(base + "/"):
                continue
            local = relpath[len(base) + 1 :]
        else:
            local = relpath
        local = lead + local
        for rule in rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(local):
                ignored = not rule.negate
    return ignored


def ancestor_gitignores(root: str) -> list:
    """('', rules, lead) for each .gitignore between the enclosing git repository's top and
    `root` (exclusive), as git applies them; [] outside a repository."""
    import os

    chain = []
    current = root
    while True:
        parent = os.path.dirname(current)
        if parent == current:
            return []
        chain.append(parent)
        if os.path.exists(os.path.join(parent, ".git")):
            break
        current = parent
    if os.path.exists(os.path.join(root, ".git")):
        return []
    out = []
    for ancestor in reversed(chain):
        path = os.path.join(ancestor, ".gitignore")
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                lead = os.path.relpath(root, ancestor).replace(os.sep, "/") + "/"
                out.append(("", parse_rules(fh.read()), lead))
    return out
