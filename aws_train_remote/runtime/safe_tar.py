"""Safe extraction of tar archives (the code bundle in the container, model.tar.gz on the
user's machine): no absolute paths, no '..', no links that escape, no devices or FIFOs.
Standard library only; works on every Python 3 an image may have."""
from __future__ import annotations

import os
import tarfile


class UnsafeArchive(Exception):
    pass


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def check_members(tar: tarfile.TarFile, dest: str) -> list:
    root = os.path.realpath(dest)
    members = []
    for member in tar.getmembers():
        name = member.name
        if name.startswith("/") or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise UnsafeArchive(f"unsafe path in archive: {name!r}")
        target = os.path.realpath(os.path.join(root, name))
        if not _inside(root, target):
            raise UnsafeArchive(f"path escapes the destination: {name!r}")
        if member.isdev() or member.isfifo() or member.ischr() or member.isblk():
            raise UnsafeArchive(f"device or FIFO in archive: {name!r}")
        if member.issym() or member.islnk():
            link = member.linkname
            base = os.path.dirname(target) if member.issym() else root
            resolved = os.path.realpath(os.path.join(base, link))
            if os.path.isabs(link) or not _inside(root, resolved):
                raise UnsafeArchive(f"link escapes the destination: {name!r} -> {link!r}")
        members.append(member)
    return members


def safe_extract(archive: str, dest: str) -> int:
    """Extract `archive` (any compression tarfile reads) into `dest`; return the member count."""
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        members = check_members(tar, dest)
        for member in members:
            member.mode &= 0o777  # no setuid/setgid/sticky from an archive
            if hasattr(tarfile, "data_filter"):
                tar.extract(member, dest, filter="tar")
            else:  # pragma: no cover - Python < 3.8.17 / 3.9.17
                tar.extract(member, dest)
    return len(members)
