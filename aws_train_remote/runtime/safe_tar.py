"""Safe extraction of tar archives (the code bundle in the container, model.tar.gz on the
user's machine): no absolute paths, no '..', no links that escape, no devices or FIFOs.

Standard library only, and safe without `tarfile.data_filter`, which framework images with a
Python older than 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4 lack. Checking names up front is not
enough: with `a -> .` and then `a/b -> ..` extracted, `a/b/x` lands outside. So each member is
checked just before it is written, against what is already on disk: its parent folder is
resolved through the links extracted so far, a link's target is resolved from there, and no
member may replace a link already extracted (a later link could otherwise re-aim an earlier one).
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile


class UnsafeArchive(Exception):
    pass


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _check_name(name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith("/") or os.path.isabs(name) or ".." in parts:
        raise UnsafeArchive(f"unsafe path in archive: {name!r}")


def target_of(root: str, member: tarfile.TarInfo) -> str:
    """Where `member` would be written, given what is on disk now; raises UnsafeArchive."""
    name = member.name.rstrip("/")
    _check_name(name)
    if member.isdev() or member.isfifo() or member.ischr() or member.isblk():
        raise UnsafeArchive(f"device or FIFO in archive: {member.name!r}")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeArchive(f"unsupported member type in archive: {member.name!r}")
    head, base = os.path.split(name)
    parent = os.path.realpath(os.path.join(root, head))
    if not _inside(root, parent):
        raise UnsafeArchive(f"path escapes the destination through a link: {member.name!r}")
    target = os.path.join(parent, base) if base not in ("", ".") else parent
    if os.path.islink(target):
        raise UnsafeArchive(f"member replaces a link extracted before it: {member.name!r}")
    if not member.isdir() and os.path.isdir(target) and target != parent:
        raise UnsafeArchive(f"member replaces a folder extracted before it: {member.name!r}")
    if member.issym():
        link = member.linkname
        if not link or os.path.isabs(link) or link.startswith("\\"):
            raise UnsafeArchive(f"absolute link in archive: {member.name!r} -> {link!r}")
        if not _inside(root, os.path.realpath(os.path.join(parent, link))):
            raise UnsafeArchive(f"link escapes the destination: {member.name!r} -> {link!r}")
    if member.islnk():
        _check_name(member.linkname)
        source = os.path.realpath(os.path.join(root, member.linkname))
        if not _inside(root, source) or not os.path.isfile(source):
            raise UnsafeArchive(f"hard link to a file outside the archive: {member.name!r} -> {member.linkname!r}")
    return target


def safe_extract(archive: str, dest: str) -> int:
    """Extract `archive` (any compression tarfile reads) into `dest`; return the count of files
    (folders not counted). Raises UnsafeArchive for an unsafe or unreadable archive; what was
    extracted before the refusal stays in `dest` (use extract_into for all-or-nothing)."""
    os.makedirs(dest, exist_ok=True)
    root = os.path.realpath(dest)
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                target_of(root, member)
                member.mode &= 0o777  # no setuid/setgid/sticky from an archive
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, root, filter="tar")  # a second line of defence where it exists
                else:
                    tar.extract(member, root)
                count += 0 if member.isdir() else 1
    except tarfile.TarError as err:  # includes the FilterError of newer Pythons
        raise UnsafeArchive(f"{type(err).__name__}: {err}") from None
    except EOFError:
        raise UnsafeArchive("the archive is truncated") from None
    return count


def extract_into(archive: str, dest: str) -> int:
    """All or nothing: extract beside `dest`, then move the entries in; a refused archive leaves
    `dest` exactly as it was."""
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".extract-", dir=parent)
    try:
        count = safe_extract(archive, staging)
        os.makedirs(dest, exist_ok=True)
        for name in os.listdir(staging):
            target = os.path.join(dest, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif os.path.lexists(target):
                os.unlink(target)
            os.replace(os.path.join(staging, name), target)
        return count
    finally:
        shutil.rmtree(staging, ignore_errors=True)
