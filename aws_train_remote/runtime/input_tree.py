"""Lay a File channel of the input store out as the user's folder, before the script starts.

SageMaker downloads a ManifestFile channel's objects somewhere under /opt/ml/input/data/<channel>/
(where exactly is not documented: a user report shows the whole key under the channel folder).
Each object's file name is its sha256, so each is found by name wherever it landed. The objects
are moved aside, the folders SageMaker made for them removed, and the tree object (named by the
job's hyperparameters) says where every file goes: a large file is moved into place, a small one
is cut out of its pack, a file identical to one already placed is hard-linked to it, and every
file gets its mode. Empty folders are made. Standard library only.
"""
from __future__ import annotations

import json
import os
import re
import shutil

from .. import contract

HASH_NAME = re.compile(r"^[0-9a-f]{64}$")


class LayoutError(Exception):
    """The channel does not hold what its tree names (an object deleted from S3 after launch, say)."""


def _safe_target(channel_dir: str, rel: str) -> str:
    """The file's place in the channel; a path that would leave it is refused."""
    if rel.startswith("/") or "\\" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
        raise LayoutError(f"unsafe path in the tree: {rel!r}")
    return os.path.join(channel_dir, *rel.split("/"))


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


def lay_out(channel_dir: str, tree_sha: str) -> int:
    """Lay the channel's files out from its tree; returns how many files were placed."""
    aside = channel_dir.rstrip(os.sep) + ".atr-objects"
    shutil.rmtree(aside, ignore_errors=True)
    os.makedirs(aside)
    try:
        objects = _collect(channel_dir, aside)
        if tree_sha not in objects:
            raise LayoutError(f"its tree object {tree_sha} is not in the channel")
        with open(objects[tree_sha], encoding="utf-8") as fh:
            tree = json.load(fh)
        if tree.get("version") != contract.TREE_VERSION:
            raise LayoutError(f"tree version {tree.get('version')!r}, this runtime reads {contract.TREE_VERSION}")
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
        placed = {}  # sha256 -> (the first path that holds it, its mode)
        made, pack = set(), (None, b"")  # folders made; the pack in memory (the tree lists object by object)
        for path, size, sha, mode, obj, offset in rows:
            target = _safe_target(channel_dir, path)
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
                if os.path.getsize(source) != size:
                    raise LayoutError(f"{path}: object {obj} has the wrong size")
                os.replace(source, target)
                objects[obj] = target  # a later path may still cut from it
            else:  # a pack (at most 8 MiB, plan/store.py): read once, cut in memory
                if pack[0] != obj:
                    with open(source, "rb") as fh:
                        pack = (obj, fh.read())
                if offset + size > len(pack[1]):
                    raise LayoutError(f"pack {obj} is shorter than its tree says")
                with open(target, "wb") as fh:
                    fh.write(pack[1][offset:offset + size])
            os.chmod(target, mode)
            placed.setdefault(sha, (target, mode))
        for rel in tree.get("dirs", []):
            os.makedirs(_safe_target(channel_dir, rel), exist_ok=True)
        return len(rows)
    finally:
        shutil.rmtree(aside, ignore_errors=True)
