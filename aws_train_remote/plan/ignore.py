"""gitignore-style rules (.gitignore, .sagemakerignore) and the files we never ship.

Covers the gitignore syntax people use: comments, `!` negation, trailing `/` for folders,
patterns with a `/` anchored to their file's folder, `*`, `?`, `[...]` and `**`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

IGNORE_FILES = (".gitignore", ".sagemakerignore")
EXPLICIT_FILE = ".sagemakerignore"  # a `!name` line here ships even a file we never ship by default

# Never shipped unless a .sagemakerignore names them with `!`: VCS data, environments, caches,
# credentials. Each kind says why in the dry run.
_DIR_REASONS = {
    "version control data": {".git", ".hg", ".svn"},
    "virtual environment": {".venv", "venv", ".tox", ".nox", "node_modules"},
    "cache": {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".ipynb_checkpoints", ".atr-cache"},
    "editor settings": {".idea", ".vscode"},
    "credentials folder": {".aws", ".ssh", ".gnupg", ".kube", ".docker", ".azure", ".gcloud"},
}
ALWAYS_SKIP_DIRS = set().union(*_DIR_REASONS.values())
_SECRET_FILES = re.compile(
    r"^(\.env(\..*)?|.*\.env|\.envrc|.*\.pem|.*\.key|.*\.p12|.*\.pfx|.*\.jks|.*\.keystore|"
    r"id_rsa.*|id_dsa.*|id_ecdsa.*|id_ed25519.*|credentials|credentials\.json|service[-_]account.*\.json|"
    r"application_default_credentials\.json|client_secrets?\.json|\.netrc|_netrc|\.pypirc|\.npmrc|\.yarnrc|"
    r"\.boto|\.s3cfg|\.pgpass|\.git-credentials|\.dockercfg|\.htpasswd|.*\.tfvars|.*\.tfstate(\..*)?)$",
    re.IGNORECASE)
_CLUTTER_FILES = re.compile(r"^(.*\.pyc|\.DS_Store)$")


def skip_reason(name: str, is_dir: bool, parent: str = ""):
    """Why a file or folder named `name` (inside folder `parent`) is never shipped by default, or None."""
    if is_dir:
        if parent == ".config" and name == "gcloud":  # gcloud's application-default credentials
            return "credentials folder"
        for reason, names in _DIR_REASONS.items():
            if name in names:
                return reason
        return None
    if _SECRET_FILES.match(name):
        return "secret (credentials or keys)"
    if _CLUTTER_FILES.match(name):
        return "cache"
    return None


def path_skip_reason(relpath: str, is_dir: bool):
    """skip_reason for every component of a path (a link's target is judged by where it leads)."""
    parts = [p for p in relpath.split("/") if p]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        reason = skip_reason(part, is_dir or not last, parts[i - 1] if i else "")
        if reason:
            return reason
    return None


def always_skip_file(name: str) -> bool:
    return skip_reason(name, False) is not None


def is_virtualenv(names) -> bool:
    return "pyvenv.cfg" in names


IGNORED_BY_RULE = "ignored by .gitignore or .sagemakerignore"
PROJECT_FILES = ("setup.py", "pyproject.toml")
BUILD_OUTPUT = "build output of a Python project (the job builds it afresh)"


def is_build_output(name: str, sibling_names) -> bool:
    """setuptools' `build/` and `*.egg-info` beside a setup.py or pyproject.toml. Shipped, a stale
    build/lib is installed instead of the code: the archive's times are all equal, and setuptools
    takes an equal time for "up to date" and skips copying the changed source."""
    return (name == "build" or name.endswith(".egg-info")) and any(f in sibling_names for f in PROJECT_FILES)


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


def last_match(rules_by_base, relpath: str, is_dir: bool):
    """rules_by_base: [(base relpath or '', rules[, lead]), ...] from the top down. The last rule
    that matches decides: "ignore", "include" (a `!` rule), or None when no rule matches.
    `lead` is the root's path below an ancestor folder whose .gitignore applies."""
    verdict = None
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
                verdict = "include" if rule.negate else "ignore"
    return verdict


def is_ignored(rules_by_base, relpath: str, is_dir: bool) -> bool:
    return last_match(rules_by_base, relpath, is_dir) == "ignore"


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
