"""Choosing the files of the source bundle and packing them into a deterministic tar.gz.

Honours .gitignore and .sagemakerignore (nested ones too), always skips VCS data,
virtualenvs, caches and secrets, follows symlinks that stay inside the root and refuses
ones that escape it. The same tree always gives the same bytes, so the bundle is named
by its sha256 and uploaded once.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass

from ..errors import UsageError
from . import ignore

LARGE_BUNDLE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    relpath: str  # posix, inside the bundle
    path: str  # absolute path to read (symlinks resolved)
    size: int
    executable: bool


@dataclass(frozen=True)
class Selection:
    files: tuple  # SourceFile, sorted by relpath
    skipped: tuple  # (relpath, reason) of everything kept out; a folder once, with a trailing "/"
    shipped: tuple = ()  # (relpath, why) shipped although an ignore rule matches it (plan/bundle_needs.py)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def largest(self, n: int = 10) -> list:
        return sorted(self.files, key=lambda f: -f.size)[:n]


def select_files(root: str, exclude=(), flag: str = "--sagemaker-source", prefix: str = "",
                 ignore_files: bool = True) -> Selection:
    """Files under `root` to ship. `exclude`: absolute folders left out (inputs, output dirs).

    A symlink is judged by its name AND by where it leads: `settings.txt -> .env` is a secret.
    A `!name` line in a .sagemakerignore ships what the always-skip rules would keep out.
    ignore_files=False: the ignore files' rules are not applied, only the always-skip list (a folder the
    job needs although an ignore rule matches it, plan/bundle_needs.py).
    """
    root = os.path.realpath(root)
    excluded = {os.path.realpath(p) for p in exclude}
    files, skipped = [], []

    def walk(real_dir: str, rel_dir: str, rules, explicit, ancestors=frozenset()):
        if real_dir in ancestors:  # a symlink back to a folder above: a loop
            return
        ancestors = ancestors | {real_dir}
        try:
            names = sorted(os.listdir(real_dir))
        except OSError as err:
            raise UsageError(flag, os.path.join(root, rel_dir), f"cannot list ({err.strerror})",
                             "fix the permissions or ignore the folder in .sagemakerignore") from None
        local_rules, local_explicit = list(rules), list(explicit)
        for ignore_name in ignore.IGNORE_FILES:
            if ignore_name in names:
                parsed = (rel_dir, ignore.parse_rules(_read_ignore_file(flag, os.path.join(real_dir, ignore_name))))
                if ignore_files:
                    local_rules.append(parsed)
                if ignore_name == ignore.EXPLICIT_FILE:
                    local_explicit.append(parsed)
        parent = os.path.basename(rel_dir)
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            require_utf8(flag, os.path.join(root, rel))
            full = os.path.join(real_dir, name)
            is_dir = os.path.isdir(full)
            shown = rel + "/" if is_dir else rel
            real = os.path.realpath(full)
            wanted = ignore.last_match(local_explicit, rel, is_dir) == "include"
            reason = ignore.skip_reason(name, is_dir, parent)
            if reason is None and is_dir and ignore.is_virtualenv(_safe_listdir(full)):
                reason = "virtual environment"
            if reason is None and is_dir and ignore.is_build_output(name, names):
                reason = ignore.BUILD_OUTPUT
            if reason is None and real != full and (real == root or real.startswith(root + os.sep)):
                target = os.path.relpath(real, root).replace(os.sep, "/")
                why = ignore.path_skip_reason(target, is_dir)
                reason = f"link to {target}: {why}" if why else None
            if reason and not wanted:
                skipped.append((shown, reason))
                continue
            if not wanted and ignore.is_ignored(local_rules, rel, is_dir):
                skipped.append((shown, ignore.IGNORED_BY_RULE))
                continue
            if real != root and not real.startswith(root + os.sep):
                raise UsageError(flag, os.path.join(root, rel), f"symlink escapes the source folder (to {real})",
                                 "copy the target into the folder, or list it in .sagemakerignore")
            if any(real == e or real.startswith(e + os.sep) for e in excluded):
                skipped.append((shown, "an input or output folder (an input travels as its own channel)"))
                continue
            if is_dir:
                walk(real, rel, local_rules, local_explicit, ancestors)
            elif os.path.isfile(real):
                st = os.stat(real)
                files.append(SourceFile(prefix + rel, real, st.st_size, bool(st.st_mode & 0o111)))
            else:
                skipped.append((shown, "not a regular file (broken link, FIFO, socket or device)"))

    walk(root, "", ignore.ancestor_gitignores(root) if ignore_files else [], [])
    files.sort(key=lambda f: f.relpath)
    return Selection(tuple(files), tuple(skipped))


def _read_ignore_file(flag: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError as err:
        raise UsageError(flag, path, f"cannot be read as an ignore file ({err.strerror or err})",
                         "make it a plain text file, or remove it") from None


def require_utf8(flag: str, path: str) -> None:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise UsageError(flag, shown, "file name is not valid UTF-8 (S3 keys and the tar bundle need UTF-8)",
                         "rename the file") from None


def _safe_listdir(path: str) -> list:
    try:
        return os.listdir(path)
    except OSError:
        return []


def write_bundle(files, out) -> str:
    """Write a deterministic tar.gz of `files` to the binary file `out`; return its sha256."""
    digest = hashlib.sha256()

    class _Hashing(io.RawIOBase):
        def writable(self):
            return True

        def write(self, data):
            digest.update(data)
            return out.write(data)

    sink = _Hashing()
    with gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for f in sorted(files, key=lambda f: f.relpath):
                info = tarfile.TarInfo(f.relpath)
                info.size = f.size
                info.mtime = 0
                info.mode = 0o755 if f.executable else 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(f.path, "rb") as fh:
                    tar.addfile(info, fh)
    return digest.hexdigest()


def bundle_warnings(selection: Selection) -> list:
    if selection.size <= LARGE_BUNDLE_BYTES:
        return []
    top = ", ".join(f"{f.relpath} ({f.size / 1e6:.1f} MB)" for f in selection.largest(5))
    return [f"source bundle is {selection.size / 1e6:.0f} MB; largest files: {top}. "
            "Move data to an input or list it in .sagemakerignore."]
