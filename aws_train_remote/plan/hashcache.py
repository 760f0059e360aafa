"""A local cache of file hashes keyed by (path, size, mtime, inode), so a relaunch does not
re-read unchanged files. A stale entry can only cost a re-hash, never a wrong hash: any change
of size, mtime or inode misses the cache."""
from __future__ import annotations

import json
import os

from .uploads import sha256_file


class HashCache:
    def __init__(self, path: str):
        self.path = path
        self._entries = None
        self._dirty = False

    def _load(self):
        if self._entries is None:
            try:
                with open(self.path, encoding="utf-8") as fh:
                    self._entries = json.load(fh)
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def __call__(self, path: str) -> str:
        """sha256 of `path`, from the cache when the file's stat is unchanged."""
        entries = self._load()
        st = os.stat(path)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        key = os.path.abspath(path)
        hit = entries.get(key)
        if hit and hit[:3] == stamp:
            return hit[3]
        digest = sha256_file(path)
        entries[key] = stamp + [digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        if not self._dirty:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self._entries, fh)
        os.replace(tmp, self.path)
        self._dirty = False
