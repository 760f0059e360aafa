"""File identity: a file's sha256 with the stat stamp it was read under, and a local cache of
those hashes so a relaunch does not re-read unchanged files.

The stamp is (size, mtime_ns, ctime_ns, inode, device). An in-place edit that keeps the size
and puts the mtime back (`cp -p`, `touch -r`, `tar x`) still moves ctime, which no user call can
set, so it misses the cache. On a filesystem with coarse timestamps a change within the same tick
would keep even ctime, so a file touched within RACY_NS of being hashed is never cached (git's
"racily clean" rule). A stale entry can only cost a re-hash, never a wrong hash.
"""
from __future__ import annotations

import hashlib
import os
import time

from ..paths import read_json_dict, write_json_atomic

CHUNK = 1024 * 1024
RACY_NS = 2_000_000_000  # FAT/SMB/some NFS keep 1-2 s timestamps
HASH_ATTEMPTS = 3


class FileChanged(Exception):
    """The file changed while it was being read (its stamp moved)."""


def stamp_of(st) -> list:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_stable(path: str, hasher=None) -> tuple:
    """(sha256, stamp) of a file that did not change while it was read; raises FileChanged after
    HASH_ATTEMPTS tries, OSError when it cannot be read."""
    hasher = hasher or sha256_file
    for _ in range(HASH_ATTEMPTS):
        before = stamp_of(os.stat(path))
        digest = hasher(path)
        if stamp_of(os.stat(path)) == before:
            return digest, before
    raise FileChanged(path)


class HashCache:
    def __init__(self, path: str, clock_ns=time.time_ns):
        self.path = path
        self.clock_ns = clock_ns
        self._entries = None
        self._dirty = False

    def _load(self):
        if self._entries is None:
            self._entries = read_json_dict(self.path)
        return self._entries

    def __call__(self, path: str, st=None) -> tuple:
        """(sha256, stamp) of `path`, from the cache when its stamp is unchanged. `st`: the os.stat a
        folder listing already has, so the file is not stat'ed twice."""
        entries = self._load()
        stamp = stamp_of(st if st is not None else os.stat(path))
        key = path if os.path.isabs(path) else os.path.abspath(path)
        hit = entries.get(key)
        if isinstance(hit, list) and len(hit) == len(stamp) + 1 and hit[:-1] == stamp:
            return hit[-1], stamp
        digest, stamp = hash_stable(path, sha256_file)
        if self.clock_ns() - max(stamp[1], stamp[2]) > RACY_NS:
            entries[key] = stamp + [digest]
            self._dirty = True
        return digest, stamp

    def save(self) -> None:
        """Write atomically (a reader never sees half a file); a concurrent launch's entries may be
        lost, which only costs a re-hash."""
        if self._dirty:
            write_json_atomic(self.path, self._entries)
            self._dirty = False
