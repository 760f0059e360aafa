"""The job's folders on their way out of the machine: the checkpoint folder's changes since the
last sync (local mode's and the sandbox's checkpoint sync), and the model and output folders packed
into one archive. Links follow runtime/links.py; a file that vanishes or changes while it is read
(a trainer saving every step) is left for the next pass, never an error (issue 18.11a).
"""
from __future__ import annotations

import os
import tarfile
import time

from ..runtime import links


def scan_changes(local_dir: str, seen: dict, skipped: list = None) -> tuple:
    """(changed, removed) relative paths since `seen` (relpath -> stamp), which is updated to the
    folder's current state. The folder is read as a storage without links reads it (runtime/links.py):
    every link followed, loops cut; a dangling link is left out and named in `skipped`. A file that
    vanishes or changes while it is listed is simply not there this time (issue 18.11a)."""
    found, notes = links.entries(local_dir, keep_links=False)
    if skipped is not None:
        skipped.extend(notes)
    # the inode too: a link re-pointed at another file of the same size and time is a change
    current = {e.rel: (e.stat.st_size, e.stat.st_mtime_ns, e.stat.st_ino) for e in found}
    changed = sorted(rel for rel, stamp in current.items() if seen.get(rel) != stamp)
    removed = sorted(set(seen) - set(current))
    seen.clear()
    seen.update(current)
    return changed, removed


def churned(path: str, stamp) -> bool:
    """Whether the file at `path` vanished or changed since it was listed with `stamp` (an upload
    that failed then is the trainer's churn, not a storage failure)."""
    try:
        st = os.stat(path)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns, st.st_ino) != stamp


def pack_folders(folders: list, archive: str, on_skip) -> bool:
    """One archive of several hosts' folders (given in host order: algo-1 first), links as
    runtime/links.py rules: kept inside the folder, followed out of it, dangling ones skipped and
    named through on_skip(folder, line). A path that more than one host wrote is packed once, from
    the first host that has it -- usually the master, the one that should write the model -- so
    unpacking never sees duplicates; nor a path under another host's file or link. Returns whether
    the archive holds any file or link."""
    chosen = {}
    for root in folders:
        found, skipped = links.entries(root, keep_links=True)
        for line in skipped:
            on_skip(root, line)
        for entry in found:
            chosen.setdefault(entry.rel, (root, entry))
    kept = [(root, e) for rel, (root, e) in sorted(chosen.items()) if not _under_a_file(rel, chosen)]
    with tarfile.open(archive, "w:gz") as tar:
        for root, entry in kept:
            line = _add_entry(tar, entry)
            if line:
                on_skip(root, line)
    return any(e.kind != "dir" for _, e in kept)


def _under_a_file(rel: str, chosen: dict) -> bool:
    """Whether a folder above `rel` was packed as a file or link (by another host): not packable."""
    parts = rel.split("/")
    return any("/".join(parts[:i]) in chosen and chosen["/".join(parts[:i])][1].kind != "dir"
               for i in range(1, len(parts)))


def _add_entry(tar, entry):
    """One entry of runtime/links.py into the archive. A file gone since it was listed is left out;
    one that cannot be read is too, and the line naming it is returned."""
    if entry.kind == "file":
        try:
            fh = open(entry.source, "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            return f"{entry.rel}: cannot be read ({err.strerror or err})"
        with fh:
            tar.addfile(tar.gettarinfo(arcname=entry.rel, fileobj=fh), fh)
        return None
    info = tarfile.TarInfo(entry.rel)
    info.mtime = int(time.time())
    if entry.kind == "link":
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.source, 0o777
    else:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)
    return None
