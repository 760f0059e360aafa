"""What the job asks pip to install, read as pip reads it: a requirements file split into the
lines a cached job environment may hold and the lines that must be installed afresh in every job,
and whether the code folder is itself a Python project. Standard library only.

pip's rules followed here (pip's req_file.py and "Requirements File Format"): a requirement line
that is a path (`./libs/mylib`, `-e ./libs/mylib`, `dist/x.whl`) is relative to the current
folder, which is why pip always runs from the code folder; a nested `-r`/`-c` file is relative to
the file that names it; `--find-links DIR` too when DIR exists there; `${VAR}` is expanded from
the environment; ` #` starts a comment; a line ending in `\\` continues on the next.

A local folder, an editable line, a `file:` folder or a VCS reference that is not a full commit
may change from one job to the next without a change to the requirements' text, so it is never
part of a cached environment: it goes to `fresh`. A local archive (a wheel, an sdist) is cached,
keyed on its content. Everything the cached part depends on -- its lines, nested files, the
content of constraints files and of local `--find-links`/index folders -- makes up `key`.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_VCS = ("git+", "hg+", "svn+", "bzr+")
_COMMIT = re.compile(r"@[0-9a-fA-F]{40}(#|$)")
_ARCHIVES = (".whl", ".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tbz", ".tar.xz", ".txz")
# pip's options that take a value, by every spelling a requirements file may use
_VALUED = {"-r": "requirement", "--requirement": "requirement", "-c": "constraint", "--constraint": "constraint",
           "-e": "editable", "--editable": "editable", "-f": "find-links", "--find-links": "find-links",
           "-i": "index-url", "--index-url": "index-url", "--extra-index-url": "extra-index-url",
           "--no-binary": "no-binary", "--only-binary": "only-binary", "--trusted-host": "trusted-host",
           "--use-feature": "use-feature"}
_BUILD_SYSTEM = re.compile(r"""(?m)^\s*(\[\s*["']?build-system["']?\s*\]|["']?build-system["']?\s*[.=])""")


class RequirementsError(Exception):
    """A requirements file (or one it includes) cannot be read."""


@dataclass
class Split:
    """A requirements file, split. `cached` and `fresh` are lines for two derived requirements
    files; `options` (indexes, find-links made absolute, constraints as absolute paths) go into
    both. pip runs on each from the code folder, so their relative requirement paths still mean
    what they meant in the user's file."""

    cached: list = field(default_factory=list)  # of (line, where: "line 3 of envs/req.txt")
    fresh: list = field(default_factory=list)
    options: list = field(default_factory=list)
    keyed: list = field(default_factory=list)  # what the cached environment depends on, in order

    @property
    def key(self) -> str:
        return hashlib.sha256("\0".join(self.keyed).encode()).hexdigest()[:16]


def _quote(value: str) -> str:
    """Quoted for pip's option parser only when it must be (a path with a space)."""
    return shlex.quote(value) if re.search(r"""[\s'"\\]""", value) else value


def is_project(code_dir: str) -> bool:
    """A folder pip can install: setup.py, or pyproject.toml with a [build-system] table (without
    one, a pyproject.toml is only tool settings -- uv treats such a project as not a package too)."""
    if os.path.isfile(os.path.join(code_dir, "setup.py")):
        return True
    try:
        with open(os.path.join(code_dir, "pyproject.toml"), encoding="utf-8", errors="replace") as fh:
            return bool(_BUILD_SYSTEM.search(fh.read()))
    except OSError:
        return False


def installs_code_folder(split: Split, code_dir: str) -> bool:
    """Whether a line already installs the code folder itself (`-e .`, `.[dev]`, `file:.`), the
    common way to make a project importable: a second `.` for the project beside it makes pip
    refuse the pair (`-e .` with `.`: ResolutionImpossible), so the project is installed once."""
    here = os.path.realpath(code_dir)
    for line, _ in split.fresh:
        text = line[3:] if line.startswith("-e ") else line
        try:
            text = " ".join(shlex.split(text))
        except ValueError:
            continue
        if "@" in text.split(";")[0] and not _URL.match(text):
            text = text.split("@", 1)[1]  # PEP 508 `name @ file:.`
        target = _local_location(re.split(r"\s*;\s*|\s+", text.strip())[0])
        if target and os.path.realpath(os.path.join(here, re.sub(r"\[[^\]]*\]$", "", target))) == here:
            return True
    return False


def logical_lines(text: str, environ) -> list:
    """pip's preprocessing: continuation lines joined, comments and blank lines dropped, ${VAR}
    expanded (an unset one is left as written, as pip does). Triples of (first line number,
    as written, expanded)."""
    joined, pending, first = [], [], 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.endswith("\\") and not _COMMENT.match(line):
            first = first or number
            pending.append(line[:-1])
            continue
        joined.append((first or number, "".join(pending) + (" " + line if _COMMENT.match(line) and pending else line)))
        pending, first = [], 0
    if pending:
        joined.append((first, "".join(pending)))
    out = []
    for number, line in joined:
        line = _COMMENT.sub("", line).strip()
        if line:
            out.append((number, line, _ENV_VAR.sub(lambda m: environ.get(m.group(1)) or m.group(0), line)))
    return out


def split_options(line: str) -> tuple:
    """pip's break_args_options: the words before the first one starting with '-' are the
    requirement (markers may hold spaces and quotes, so they are not shell-split), the rest options."""
    words = line.split(" ")
    for i, word in enumerate(words):
        if word.startswith("-"):
            return " ".join(words[:i]), " ".join(words[i:])
    return line, ""


def parse_options(text: str) -> list:
    """(name, value) pairs of an option string: `-r x`, `-rx`, `--requirement=x`, `--pre`."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise RequirementsError(f"cannot split the options {text!r}: {err}") from None
    pairs, i = [], 0
    while i < len(words):
        word, value = words[i], None
        if word.startswith("--") and "=" in word:
            word, value = word.split("=", 1)
        elif not word.startswith("--") and len(word) > 2 and word[:2] in _VALUED:
            word, value = word[:2], word[2:]
        if word in _VALUED and value is None:
            i += 1
            value = words[i] if i < len(words) else ""
        pairs.append((_VALUED.get(word, word), value))
        i += 1
    return pairs


def read_split(path: str, cwd: str, environ=None) -> Split:
    """The requirements file at `path` (nested files followed), split for a pip running in `cwd`."""
    split = Split()
    _read_into(split, path, cwd, dict(os.environ if environ is None else environ), set())
    return split


def _read_into(split: Split, path: str, cwd: str, environ: dict, seen: set) -> None:
    real = os.path.realpath(path)
    if real in seen:
        return  # pip would recurse for ever; its own error says so when it runs
    seen.add(real)
    text = _read_text(path)
    shown = os.path.relpath(real, os.path.realpath(cwd))
    split.keyed.append(f"file {shown}")
    for number, written, line in logical_lines(text, environ):
        requirement, options = split_options(line)
        if requirement:  # written as is: pip expands ${VAR} itself, so no secret lands in a file of ours
            kind = classify(requirement, cwd)
            if kind == "fresh":
                split.fresh.append((written, f"line {number} of {shown}"))
            else:
                split.cached.append((written, f"line {number} of {shown}"))
                split.keyed.append(f"line {line} {kind}")
            continue
        for name, value in parse_options(options):
            _option(split, name, value, path, cwd, environ, seen, f"line {number} of {shown}")


def _option(split, name, value, path, cwd, environ, seen, origin) -> None:
    here = os.path.dirname(os.path.abspath(path))
    local = _local_location(value or "")
    if name == "requirement" and local is not None:  # pip: relative to the file that names it
        _read_into(split, os.path.join(here, local), cwd, environ, seen)
    elif name == "constraint" and local is not None:
        target = os.path.abspath(os.path.join(here, local))
        split.options.append((f"-c {_quote(target)}", origin))
        split.keyed.append(f"constraints {_constraints_digest(target, environ, set())}")
    elif name == "editable":
        split.fresh.append((f"-e {_quote(value)}", origin))  # an editable install points into this job's code
    elif name in ("find-links", "index-url", "extra-index-url") and local:
        folder = local
        if name == "find-links" and not os.path.isabs(folder) and os.path.exists(os.path.join(here, folder)):
            folder = os.path.join(here, folder)  # pip: relative to the requirements file when it exists there
        folder = os.path.abspath(os.path.join(cwd, folder))
        shown = folder if name == "find-links" else "file://" + folder
        split.options.append((f"--{name} {_quote(shown)}", origin))
        split.keyed.append(f"{name} {tree_digest(folder)}")
    elif name == "requirement":  # a requirements file at a URL: cached on its address
        split.cached.append((f"-r {_quote(value)}", origin))
        split.keyed.append(f"line -r {value}")
    else:  # --pre, --no-index, an http(s) index, --require-hashes, ...: as written, for both installs
        text = f"--{name.lstrip('-')}" if value is None else f"--{name.lstrip('-')} {_quote(value)}"
        split.options.append((text, origin))
        split.keyed.append(f"option {text}")


def classify(requirement: str, cwd: str) -> str:
    """'cached' for a name from an index or a remote URL, 'archive:<sha256>' for a local wheel or
    sdist (cached on its content), 'fresh' for what may change under the same text: a local folder,
    a `file:` folder, a VCS reference that is not a full commit, a local VCS repository."""
    text = requirement.strip()
    if "@" in text.split(";")[0] and not _URL.match(text) and not text.startswith(_VCS):
        text = text.split("@", 1)[1].strip()  # PEP 508 `name @ url`
    target = re.split(r"\s*;\s*|\s+", text)[0]
    if target.startswith(_VCS):
        if target.split("+", 1)[1].startswith("file:"):
            return "fresh"
        return "cached" if _COMMIT.search(target) else "fresh"
    if target.lower().startswith(("http://", "https://")):
        return "cached"
    local = _local_location(target) if target.lower().startswith("file:") else None
    if local is None:
        looks_like_path = "/" in target or os.sep in target or target.startswith(".")
        bare = re.sub(r"\[[^\]]*\]$", "", target)  # ./libs/mylib[extra]
        if looks_like_path or (bare.lower().endswith(_ARCHIVES) and os.path.isfile(os.path.join(cwd, bare))):
            local = bare
        else:
            return "cached"  # a requirement specifier: from an index
    full = os.path.join(cwd, local)
    if os.path.isfile(full) and full.lower().endswith(_ARCHIVES):
        return "archive:" + file_digest(full)
    return "fresh"


def requirement_path(requirement: str, cwd: str):
    """The local file or folder a requirement line names, as written and relative to `cwd` unless
    absolute (`./libs/x`, `dist/x.whl`, `file:../x`, `name @ file:./x`; extras dropped), or None for
    a name from an index, a remote URL or a VCS reference. classify's reading of a line, for the
    launcher, which checks that each such path travels with the job."""
    text = requirement.strip()
    if "@" in text.split(";")[0] and not _URL.match(text) and not text.startswith(_VCS):
        text = text.split("@", 1)[1].strip()  # PEP 508 `name @ url`
    target = re.split(r"\s*;\s*|\s+", text)[0]
    if target.startswith(_VCS):
        return None
    if target.lower().startswith("file:"):
        local = _local_location(target)
        return re.sub(r"\[[^\]]*\]$", "", local) if local else None
    if _URL.match(target):
        return None
    bare = re.sub(r"\[[^\]]*\]$", "", target)
    looks_like_path = "/" in target or os.sep in target or target.startswith(".")
    if looks_like_path or (bare.lower().endswith(_ARCHIVES) and os.path.isfile(os.path.join(cwd, bare))):
        return bare
    return None


def local_location(value: str):
    """The path an option's value (`-e`, `-r`, `--find-links`) names locally; None for a URL."""
    return _local_location(value)


def _local_location(value: str):
    """The path a `file:` URL or a plain path names; None for a remote URL."""
    if value.lower().startswith("file:"):
        parsed = urlparse(value)
        return unquote(parsed.path) if parsed.netloc in ("", "localhost") else None
    if _URL.match(value):
        return None
    return value


def file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(folder: str) -> str:
    """The names and contents of the files under `folder` (a find-links or index folder)."""
    digest = hashlib.sha256()
    if os.path.isfile(folder):
        return file_digest(folder)
    for dirpath, dirnames, names in os.walk(folder):
        dirnames.sort()
        for name in sorted(names):
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                digest.update(f"{os.path.relpath(full, folder)}\0{file_digest(full)}\0".encode())
    return digest.hexdigest()


def _constraints_digest(path: str, environ: dict, seen: set) -> str:
    """A constraints file's content with every file it includes (pip reads -r/-c inside a
    constraints file as constraints too)."""
    real = os.path.realpath(path)
    if real in seen:
        return ""
    seen.add(real)
    parts = []
    for _, _, line in logical_lines(_read_text(path), environ):
        requirement, options = split_options(line)
        parts.append(line)
        for name, value in ([] if requirement else parse_options(options)):
            if name in ("requirement", "constraint") and _local_location(value or "") is not None:
                parts.append(_constraints_digest(os.path.join(os.path.dirname(real), _local_location(value)),
                                                 environ, seen))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise RequirementsError(f"cannot read {path}: {err.strerror or err}") from None
    return raw.decode("utf-8-sig", errors="replace")
