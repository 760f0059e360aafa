"""Lay a File channel of the input store out as the user's folder, before the script starts.

SageMaker downloads a ManifestFile channel's objects somewhere under /opt/ml/input/data/<channel>/
(where exactly is not documented: a user report shows the whole key under the channel folder).
Each object's file name is its sha256, so each is found by name wherever it landed. The objects
are moved aside, the folders SageMaker made for them removed, and the tree object (named by the
job's hyperparameters) says where every file goes: a large file is moved into place, a small one
is cut out of its pack, a file identical to one already placed is hard-linked to it, and every
file gets its mode. Empty folders are made.

Every byte is checked before the script sees it: the tree against its name, a large file against
its name, each file cut from a pack against the sha256 its tree entry gives (a pack's own name is
the hash of its members' hashes, not of its bytes). One object that differs fails the job in one
line naming it. The path rules (`unsafe_path`) are the launch's too (plan/uploads.py), so a job
never fails on a name the launcher could have refused. Standard library only.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

from .. import contract

HASH_NAME = re.compile(r"^[0-9a-f]{64}$")
NAME_MAX = 255  # bytes in one name on the container's file systems (ext4, xfs)
PATH_MAX = 4096  # bytes in a whole path on Linux, its terminating NUL included
_CHUNK = 1024 * 1024


class LayoutError(Exception):
    """The channel does not hold what its tree names (an object deleted from S3 after launch, say)."""


def unsafe_path(rel, base: str):
    """Why a file or folder at `rel` (a tree path, '/'-separated, relative) cannot be laid out
    under the folder `base`, or None. Anything else Linux takes in a name is kept as it is: a
    backslash, a newline, spaces, any UTF-8 (the container's file systems store them)."""
    if not isinstance(rel, str) or not rel:
        return "an empty path"
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "a name that is not valid UTF-8"
    if "\0" in rel:
        return "a NUL character in the name"
    if rel.startswith("/"):
        return "an absolute path"
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "an empty, '.' or '..' path component"
    longest = max(len(part.encode("utf-8")) for part in parts)
    if longest > NAME_MAX:
        return f"a name of {longest} bytes (Linux file systems take {NAME_MAX})"
    full = len(os.path.join(base, rel).encode("utf-8"))
    if full >= PATH_MAX:
        return f"a path of {full} bytes in the container, {base}/... (Linux takes {PATH_MAX - 1})"
    return None


def _safe_target(channel_dir: str, rel) -> str:
    """The file's place in the channel; a path that would leave it, or that Linux cannot hold, is refused."""
    reason = unsafe_path(rel, channel_dir)
    if reason:
        raise LayoutError(f"unsafe path in the tree: {rel!r} ({reason})")
    return os.path.join(channel_dir, *rel.split("/"))


def _sha256_file(path: str) -> str:
    digest, buffer = hashlib.sha256(), bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb") as fh:
        while True:
            count = fh.readinto(buffer)
            if not count:
                return digest.hexdigest()
            digest.update(view[:count])


def _differs(obj: str, what: str) -> LayoutError:
    """One line naming the object; the advice is what a launch does (aws/store_check.py): it checks
    every object of the version against S3's SHA-256 checksum and sends again one that differs."""
    return LayoutError(f"object {obj} {what}: it was changed in S3 after the launch; launching again checks "
                       "every object's checksum and sends the ones that differ")


def _collect(channel_dir: str, aside: str) -> dict:
    """Move every hash-named file under the channel folder into `aside`; remove the folders left
    empty. Returns sha256 -> path in `aside`."""
    found = {}
    for dirpath, _, names in os.walk(channel_dir, topdown=False):
        for name in names:
            if HASH_NAME.match(name):
                target = os.path.join(aside, name)
                os.replace(os.path.join(dirpath, name), target)
                found[name] = target
        if dirpath != channel_dir:
            try:
                os.rmdir(dirpath)
            except OSError:
                pass  # holds something that is not ours: left as it is
    return found


def _read_tree(objects: dict, tree_sha: str) -> dict:
    if tree_sha not in objects:
        raise LayoutError(f"its tree object {tree_sha} is not in the channel")
    with open(objects[tree_sha], "rb") as fh:
        body = fh.read()
    if hashlib.sha256(body).hexdigest() != tree_sha:
        raise _differs(tree_sha, "(the tree) holds other bytes than its name says")
    tree = json.loads(body.decode("utf-8"))
    if tree.get("version") != contract.TREE_VERSION:
        raise LayoutError(f"tree version {tree.get('version')!r}, this runtime reads {contract.TREE_VERSION}")
    return tree


def lay_out(channel_dir: str, tree_sha: str) -> int:
    """Lay the channel's files out from its tree, each checked against its sha256; returns how many
    files were placed."""
    aside = channel_dir.rstrip(os.sep) + ".atr-objects"
    shutil.rmtree(aside, ignore_errors=True)
    os.makedirs(aside)
    try:
        objects = _collect(channel_dir, aside)
        tree = _read_tree(objects, tree_sha)
        rows = []  # (path, size, sha256, mode, object, offset)
        for obj, files in tree["objects"]:
            offset = 0
            for path, size, sha, mode in files:
                rows.append((path, size, sha, mode, obj, offset))
                offset += size
        missing = sorted({row[4] for row in rows} - set(objects))
        if missing:
            raise LayoutError(f"{len(missing)} of its objects are missing (first: {missing[0]}); were they deleted "
                              "from S3 after the launch? Launching again uploads them")
        targets = [_safe_target(channel_dir, row[0]) for row in rows]  # every path checked before any is written
        dirs = [_safe_target(channel_dir, rel) for rel in tree.get("dirs", [])]
        placed = {}  # sha256 -> (the first path that holds it, its mode): its bytes were checked
        made, pack = set(), (None, b"")  # folders made; the pack in memory (the tree lists object by object)
        for (path, size, sha, mode, obj, offset), target in zip(rows, targets):
            folder = os.path.dirname(target)
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            source, mode = objects[obj], mode & 0o777  # permission bits only: never set-id bits
            twin, twin_mode = placed.get(sha, (None, None))
            if twin is not None and twin_mode == mode:
                try:
                    os.link(twin, target)
                    continue
                except OSError:  # a filesystem without hard links
                    shutil.copyfile(twin, target)
            elif twin is not None:
                shutil.copyfile(twin, target)  # the same bytes with another mode: a link would share it
            elif obj == sha and offset == 0:
                if os.path.getsize(source) != size or _sha256_file(source) != obj:
                    raise _differs(obj, f"holds other bytes than its name says (the file {path!r})")
                os.replace(source, target)
                objects[obj] = target  # a later path may still cut from it
            else:  # a pack (at most 8 MiB, plan/store.py): read once, cut in memory
                if pack[0] != obj:
                    with open(source, "rb") as fh:
                        pack = (obj, fh.read())
                part = pack[1][offset:offset + size]
                if len(part) != size or hashlib.sha256(part).hexdigest() != sha:
                    raise _differs(obj, f"(a pack) holds other bytes for {path!r} than its tree names")
                with open(target, "wb") as fh:
                    fh.write(part)
            os.chmod(target, mode)
            placed.setdefault(sha, (target, mode))
        for folder in dirs:
            os.makedirs(folder, exist_ok=True)
        return len(rows)
    finally:
        shutil.rmtree(aside, ignore_errors=True)
