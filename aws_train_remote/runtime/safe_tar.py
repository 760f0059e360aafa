"""Safe extraction of tar archives (the code bundle in the container, model.tar.gz on the
user's machine): no absolute paths, no '..', no links that escape, no devices or FIFOs; and,
unpacking into a folder that already holds files, nothing of the user's lost.

Standard library only, and safe without `tarfile.data_filter`, which framework images with a
Python older than 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4 lack. Checking names up front is not
enough: with `a -> .` and then `a/b -> ..` extracted, `a/b/x` lands outside. So each member is
checked just before it is written, against what is already on disk: its parent folder is
resolved through the links extracted so far, a link's target is resolved from there, and no
member may replace a link already extracted (a later link could otherwise re-aim an earlier one).

Into a destination (unpack_into): the archive is extracted into a staging folder inside it (the
same file system, so every move is a rename), then merged in. A path already there is never
deleted or written through: it is "in the way" and the whole unpack is refused before anything
moves, unless the caller asked to overwrite, which replaces only the archive's own files (a folder
is never replaced by a file, a link is replaced, never followed). The merge is all or nothing: a
failed move undoes the moves before it, and Ctrl-C waits for the few renames to finish (issue 17.7).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tarfile
import tempfile
import threading
from dataclasses import dataclass

STAGING = ".aws-train-remote-unpack-"


class UnsafeArchive(Exception):
    pass


class PathsInTheWay(Exception):
    """The destination already holds paths the archive would replace; nothing was written.
    `paths` are relative to the destination; `folders` are those of them that are folders where
    the archive has a file (overwriting never deletes a folder)."""

    def __init__(self, dest: str, paths, folders=()):
        self.dest, self.paths, self.folders = dest, tuple(paths), tuple(folders)
        super().__init__(f"{shown(self.paths)} already in {dest}")


@dataclass(frozen=True)
class Unpacked:
    files: int  # files delivered (folders not counted)
    skipped: tuple = ()  # why each unsafe member was left out (skip_unsafe=True)
    replaced: tuple = ()  # paths, relative to the destination, that held something before (overwrite=True)


def shown(items, limit: int = 5, sep: str = ", ") -> str:
    """`a, b, c and 4 more`: a list for one line."""
    items = list(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _check_name(name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith("/") or os.path.isabs(name) or ".." in parts:
        raise UnsafeArchive(f"unsafe path in archive: {name!r}")


def _check_folders(root: str, parent: str, name: str) -> None:
    """The nearest existing folder above a member must be a folder: `a` then `a/b` in one archive
    otherwise failed in tarfile with NotADirectoryError, which the download took for a --dest that
    is a file (the member is an archive's own clash, left out like an unsafe one)."""
    path = parent
    while not os.path.lexists(path) and _inside(root, path) and path != root:
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise UnsafeArchive(f"member lies under a file extracted before it: {name!r}")


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
    _check_folders(root, parent, member.name)
    if os.path.islink(target):
        raise UnsafeArchive(f"member replaces a link extracted before it: {member.name!r}")
    if not member.isdir() and os.path.isdir(target) and target != parent:
        raise UnsafeArchive(f"member replaces a folder extracted before it: {member.name!r}")
    if member.isdir() and os.path.lexists(target) and not os.path.isdir(target):
        raise UnsafeArchive(f"folder replaces a file extracted before it: {member.name!r}")
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


def _extract(archive: str, root: str, skip_unsafe: bool):
    """(files written, reasons of the members left out) for `archive` extracted into the existing
    real folder `root`. An unreadable archive always raises UnsafeArchive; an unsafe member raises
    it too unless `skip_unsafe`, which leaves that member out and goes on."""
    count, skipped = 0, []
    # Pythons without data_filter have no FilterError either
    refusals = (UnsafeArchive, tarfile.FilterError) if hasattr(tarfile, "FilterError") else (UnsafeArchive,)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                try:
                    target_of(root, member)
                    member.mode &= 0o777  # no setuid/setgid/sticky from an archive
                    if hasattr(tarfile, "data_filter"):
                        tar.extract(member, root, filter="tar")  # a second line of defence where it exists
                    else:
                        tar.extract(member, root)
                except refusals as err:
                    if not skip_unsafe:
                        raise
                    skipped.append(str(err) if isinstance(err, UnsafeArchive) else f"{type(err).__name__}: {err}")
                    continue
                count += 0 if member.isdir() else 1
    except tarfile.TarError as err:  # includes the FilterError of newer Pythons
        raise UnsafeArchive(f"{type(err).__name__}: {err}") from None
    except EOFError:
        raise UnsafeArchive("the archive is truncated") from None
    return count, tuple(skipped)


def safe_extract(archive: str, dest: str) -> int:
    """Extract `archive` (any compression tarfile reads) into `dest`; return the count of files
    (folders not counted). Raises UnsafeArchive for an unsafe or unreadable archive; what was
    extracted before the refusal stays in `dest` (use unpack_into for all-or-nothing)."""
    os.makedirs(dest, exist_ok=True)
    return _extract(archive, os.path.realpath(dest), False)[0]


def extract_into(archive: str, dest: str, overwrite: bool = True) -> int:
    """unpack_into for a folder the job itself writes (the script's --model-dir, a fresh cache
    folder): the archive's files replace files of the same name, as the script writing its model
    there would; nothing else is deleted. Returns the count of files."""
    return unpack_into(archive, dest, overwrite=overwrite).files


def unpack_into(archive: str, dest: str, *, overwrite: bool = False, skip_unsafe: bool = False) -> Unpacked:
    """All or nothing: `archive` merged into the folder `dest` (made if missing). Raises
    UnsafeArchive (an unsafe member, unless `skip_unsafe`; an unreadable archive), PathsInTheWay
    or NotADirectoryError, each with `dest` exactly as it was. Ctrl-C raises KeyboardInterrupt
    once the destination is back as it was (during the extraction) or whole (during the merge)."""
    return deliver_into(lambda folder: _extract(archive, os.path.realpath(folder), skip_unsafe), dest,
                        overwrite=overwrite)


def deliver_into(fill, dest: str, *, overwrite: bool = False) -> Unpacked:
    """unpack_into's guarantees for files from anywhere: `fill(folder)` writes them into an empty
    staging folder (on dest's file system) and returns (files, skipped); then they are merged into
    `dest` all or nothing, as an archive's members would be (an uncompressed model's files, issue 19.5)."""
    dest = os.path.abspath(dest)
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise NotADirectoryError(f"{dest} is a file, not a folder")
    with _CtrlCDeferred() as ctrl_c:
        if not os.path.isdir(dest):
            return _unpack_fresh(fill, dest, ctrl_c)
        staging = tempfile.mkdtemp(prefix=STAGING, dir=dest)
        try:
            with ctrl_c.allowed():
                files, skipped = fill(staging)
            moves, clashes, folders = _plan(staging, dest, "", overwrite)
            if clashes:
                raise PathsInTheWay(dest, clashes, folders)
            return Unpacked(files, skipped, _merge(staging, dest, moves))
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _unpack_fresh(fill, dest: str, ctrl_c) -> Unpacked:
    """A missing destination: staged beside it, then renamed into place in one step."""
    made, staging = [], None
    try:
        _make_folders(os.path.dirname(dest), made)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.unpack-", dir=os.path.dirname(dest))
        folder = os.path.join(staging, "model")
        os.mkdir(folder)  # the permissions mkdir gives (not mkdtemp's private 0700) travel with the rename
        with ctrl_c.allowed():
            files, skipped = fill(folder)
        os.rename(folder, dest)
        return Unpacked(files, skipped)
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        if not os.path.isdir(dest):
            for parent in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(parent)


def _make_folders(path: str, made: list) -> None:
    """os.makedirs, noting in `made` each folder it makes (outermost first), so a refusal can
    remove them again."""
    missing = []
    while not os.path.isdir(path) and path != os.path.dirname(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        os.mkdir(folder)
        made.append(folder)


def _plan(staging: str, dest: str, rel: str, overwrite: bool):
    """(moves, clashes, folders): the staged entries to move in as (relative path, replaces
    something), the paths in the way, and those of them that are folders. A real folder on both
    sides is merged entry by entry; a link in `dest` is never entered."""
    moves, clashes, folders = [], [], []
    for name in sorted(os.listdir(os.path.join(staging, rel))):
        path = os.path.join(rel, name)
        ours, theirs = os.path.join(staging, path), os.path.join(dest, path)
        if not os.path.lexists(theirs):
            moves.append((path, False))
        elif _real_folder(ours) and _real_folder(theirs):
            more = _plan(staging, dest, path, overwrite)
            moves += more[0]
            clashes += more[1]
            folders += more[2]
        elif _real_folder(theirs):
            clashes.append(path)
            folders.append(path)
        elif overwrite:
            moves.append((path, True))
        else:
            clashes.append(path)
    return moves, clashes, folders


def _real_folder(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _merge(staging: str, dest: str, moves) -> tuple:
    """Move the planned entries in; any failure undoes the renames made so far. Returns the
    relative paths that replaced something (kept aside until the end, then deleted)."""
    aside, undo, replaced = None, [], []
    try:
        for number, (path, replaces) in enumerate(moves):
            if replaces:
                aside = aside or tempfile.mkdtemp(prefix=STAGING + "replaced-", dir=dest)
                _rename(os.path.join(dest, path), os.path.join(aside, str(number)), undo)
                replaced.append(path)
            _rename(os.path.join(staging, path), os.path.join(dest, path), undo)
    except BaseException:
        for source, target in reversed(undo):
            with contextlib.suppress(OSError):
                os.rename(target, source)
        if aside:
            with contextlib.suppress(OSError):
                os.rmdir(aside)  # empty once every replaced path went back; never deleted otherwise
        raise
    if aside:
        shutil.rmtree(aside, ignore_errors=True)  # what --overwrite replaced; a link goes, never its target
    return tuple(replaced)


def _rename(source: str, target: str, undo: list) -> None:
    os.rename(source, target)
    undo.append((source, target))


class _CtrlCDeferred:
    """Ctrl-C held back for the whole unpack except the extraction into the staging folder (which
    it may cut short at once: the staging folder is thrown away whole), then raised as
    KeyboardInterrupt when nothing is half done: the destination as it was, or whole after the
    merge, whose renames take milliseconds. A second Ctrl-C never cuts the clean-up short. Only
    where Ctrl-C means KeyboardInterrupt (Python's own handler, main thread); elsewhere, no change."""

    def __init__(self):
        self.pending = False
        self.now = False  # inside allowed(): act at once
        self.previous = None

    def _note(self, number, frame):
        if self.now:
            self.now = False  # the clean-up that follows is not to be interrupted
            raise KeyboardInterrupt
        self.pending = True

    @contextlib.contextmanager
    def allowed(self):
        if self.pending:
            raise KeyboardInterrupt
        self.now = True
        try:
            yield
        finally:
            self.now = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, kind, value, traceback):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.pending and not (kind is not None and issubclass(kind, KeyboardInterrupt)):
            raise KeyboardInterrupt  # the user pressed Ctrl-C: it wins over a result or another error
        return False
