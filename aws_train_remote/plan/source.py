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
    skipped: tuple  # relpaths skipped by the always-skip rules (secrets, environments)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def largest(self, n: int = 10) -> list:
        return sorted(self.files, key=lambda f: -f.size)[:n]


def select_files(root: str, exclude=(), flag: str = "--sagemaker-source", prefix: str = "") -> Selection:
    """Files under `root` to ship. `exclude`: absolute folders left out (inputs, output dirs)."""
    root = os.path.realpath(root)
    excluded = {os.path.realpath(p) for p in exclude}
    files, skipped = [], []

    def walk(real_dir: str, rel_dir: str, rules, ancestors=frozenset()):
        if real_dir in ancestors:  # a symlink back to a folder above: a loop
            return
        ancestors = ancestors | {real_dir}
        try:
            names = sorted(os.listdir(real_dir))
        except OSError as err:
            raise UsageError(flag, os.path.join(root, rel_dir), f"cannot list ({err.strerror})",
                             "fix the permissions or ignore the folder in .sagemakerignore") from None
        local_rules = list(rules)
        for ignore_name in ignore.IGNORE_FILES:
            if ignore_name in names:
                with open(os.path.join(real_dir, ignore_name), encoding="utf-8", errors="replace") as fh:
                    local_rules.append((rel_dir, ignore.parse_rules(fh.read())))
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(real_dir, name)
            is_dir = os.path.isdir(full)
            if is_dir and (name in ignore.ALWAYS_SKIP_DIRS or
                           ignore.is_virtualenv(_safe_listdir(full))):
                skipped.append(rel + "/")
                continue
            if not is_dir and ignore.always_skip_file(name):
                skipped.append(rel)
                continue
            if ignore.is_ignored(local_rules, rel, is_dir):
                continue
            real = os.path.realpath(full)
            if real != root and not real.startswith(root + os.sep):
                raise UsageError(flag, os.path.join(root, rel), f"symlink escapes the source folder (to {real})",
                                 "copy the target into the folder, or list it in .sagemakerignore")
            if any(real == e or real.startswith(e + os.sep) for e in excluded):
                continue
            if is_dir:
                walk(real, rel, local_rules, ancestors)
            elif os.path.isfile(real):
                st = os.stat(real)
                files.append(SourceFile(prefix + rel, real, st.st_size, bool(st.st_mode & 0o111)))

    walk(root, "", ignore.ancestor_gitignores(root))
    files.sort(key=lambda f: f.relpath)
    return Selection(tuple(files), tuple(skipped))


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
