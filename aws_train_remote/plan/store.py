"""The input store: a local input version as content-addressed objects named by a manifest.

Layout under <prefix>/store/ in the bucket (shared by every input, version and project there):

- objects/<sha256>: a large file's bytes (named by its sha256), a pack of small files (named by
  the sha256 of its members' sha256s and sizes in order, so naming an unchanged pack re-reads no
  file), or a version's tree (named by the sha256 of its JSON).
- manifests/<sha256>.json: the S3 ManifestFile a channel names: the objects prefix, then the
  objects of one version. Written after every object it names, so a manifest that exists is
  complete.

A pack is the plain concatenation of a run of consecutive small files in path order; a File
channel's runtime cuts each file out by offset (the tree says where). In a Pipe channel a large
file also ends the pack before it, so streaming the version's objects in order carries exactly
the files' bytes in path order. Where a pack ends depends on the paths, not on the bytes before
them: a file ends its pack when the hash of its path falls under its weight / PACK_TARGET, or the
pack would pass PACK_MAX, or (Pipe) a large file comes next. So one changed small file changes one
pack (two when its size moved a boundary), and an added or removed file does not shift the packs
after it.

Files in, objects and bytes out; nothing here touches the network.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import NamedTuple

from .. import contract
from .hashcache import FileChanged, stamp_of

SMALL_FILE = 1024 * 1024  # a file under this size goes into a pack (bench/pack_sizes.py)
PACK_TARGET = 4 * 1024 * 1024  # the average weight of a pack ...
PACK_MAX = 8 * 1024 * 1024  # ... and the most bytes one may hold
FILE_WEIGHT = 4096  # what one file adds to a pack's weight besides its bytes: many empty files still split


class Member(NamedTuple):
    """One input file as the store sees it (a tuple: a folder of 10,000 files makes 10,000)."""
    relpath: str
    local: str
    size: int
    sha256: str
    mode: int
    stamp: tuple = ()


@dataclass(frozen=True)
class StoreObject:
    """One object of the store: a large file, a pack of small files, or a tree."""
    sha256: str
    size: int
    kind: str  # "file", "pack" or "tree"
    members: tuple = ()  # Member: the file, or the pack's files in order
    body: bytes = None  # a tree's JSON

    def relpaths(self) -> list:
        return [m.relpath for m in self.members]


@dataclass(frozen=True)
class StoreInput:
    """One local input version in the store (File and Pipe channels)."""
    name: str
    mode: str
    objects: tuple  # StoreObject (Pipe: in path order, the order it streams them)
    tree: StoreObject
    prefix: str  # the bucket prefix, "" for none

    @property
    def files(self) -> tuple:
        return tuple(m for obj in self.objects for m in obj.members)

    def objects_key(self) -> str:
        return store_root(self.prefix) + "objects/"

    def object_key(self, sha: str) -> str:
        return self.objects_key() + sha

    def manifest_entries(self) -> list:
        """The manifest's suffixes: each object once and the tree last (File); every object in
        path order, repeats kept, no tree (Pipe: the stream is exactly the files' bytes)."""
        if self.mode == "Pipe":
            return [obj.sha256 for obj in self.objects]
        return [obj.sha256 for obj in self.unique_objects()]

    def manifest(self, bucket: str) -> bytes:
        return json.dumps([{"prefix": f"s3://{bucket}/{self.objects_key()}"}, *self.manifest_entries()],
                          separators=(",", ":")).encode()

    def manifest_key(self, bucket: str) -> str:
        digest = hashlib.sha256(self.manifest(bucket)).hexdigest()
        return f"{store_root(self.prefix)}manifests/{digest}.json"

    def unique_objects(self) -> list:
        """Every object this version needs in the store, once each, the tree included."""
        seen, out = set(), []
        for obj in (*self.objects, self.tree):
            if obj.sha256 not in seen:
                seen.add(obj.sha256)
                out.append(obj)
        return out

    def describe(self, bucket: str) -> dict:
        packs = [o for o in self.unique_objects() if o.kind == "pack"]
        return {"input": self.name, "layout": "manifest", "mode": self.mode,
                "manifest": self.manifest_key(bucket), "tree": self.object_key(self.tree.sha256),
                "files": len(self.files), "bytes": sum(m.size for m in self.files),
                "objects": [{"key": self.object_key(o.sha256), "kind": o.kind, "size": o.size,
                             "files": len(o.members) if o.kind != "tree" else None,
                             **({"local": o.members[0].local} if o.kind == "file" else {})}
                            for o in self.unique_objects()],
                "packs": len(packs)}


def store_root(prefix: str) -> str:
    """<prefix>/store/ (store/ for no prefix): where every input version of that prefix lives."""
    return "/".join(p for p in (prefix.strip("/"), "store") if p) + "/"


def _boundary(member: Member, target: int = PACK_TARGET) -> bool:
    """Whether this small file ends its pack: decided by its path and weight, not by what precedes it."""
    draw = int.from_bytes(hashlib.sha256(member.relpath.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    return draw < (member.size + FILE_WEIGHT) / target


def pack_sha256(members) -> str:
    """A pack's name: the sha256 of its members' sha256s and sizes in order, which fixes its bytes."""
    listing = "".join(f"{m.sha256} {m.size}\n" for m in members)
    return hashlib.sha256(("atr-pack-1\n" + listing).encode()).hexdigest()


def group(members, small: int = SMALL_FILE, pack_max: int = PACK_MAX, in_order: bool = False,
          target: int = PACK_TARGET) -> list:
    """The members (sorted by path) split into runs: a run of small files is one pack, a large file
    stands alone. Returns [("pack" | "file", [Member])]. `in_order` (Pipe): a large file ends the
    pack before it, so the objects in order are the files in path order; otherwise (File) small
    files pack across the large ones between them."""
    if not in_order:
        large = [("file", [m]) for m in members if m.size >= small]
        return large + group([m for m in members if m.size < small], small, pack_max, True, target)
    runs, current, size = [], [], 0
    for member in members:
        if member.size >= small:
            if current:
                runs.append(("pack", current))
                current, size = [], 0
            runs.append(("file", [member]))
            continue
        if current and size + member.size > pack_max:
            runs.append(("pack", current))
            current, size = [], 0
        current.append(member)
        size += member.size
        if _boundary(member, target):
            runs.append(("pack", current))
            current, size = [], 0
    if current:
        runs.append(("pack", current))
    return runs


def tree_body(dirs, objects) -> bytes:
    """The version's tree: for each object, the files it holds in order as [path, size, sha256,
    mode] (a file's offset is the sizes before it), and the empty folders. Canonical JSON, so an
    unchanged version has the same tree object; about 110 bytes a file."""
    rows = [[obj.sha256, [[m.relpath, m.size, m.sha256, m.mode] for m in obj.members]] for obj in objects]
    body = {"version": contract.TREE_VERSION, "objects": rows, "dirs": sorted(dirs)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def plan_store_input(name: str, mode: str, members, dirs, prefix: str, small: int = SMALL_FILE,
                     pack_max: int = PACK_MAX) -> StoreInput:
    """`members` sorted by path."""
    objects = []
    for kind, run in group(members, small, pack_max, in_order=mode == "Pipe"):
        if kind == "file":
            objects.append(StoreObject(run[0].sha256, run[0].size, "file", tuple(run)))
        else:
            objects.append(StoreObject(pack_sha256(run), sum(m.size for m in run), "pack", tuple(run)))
    body = tree_body(dirs, objects)
    tree = StoreObject(hashlib.sha256(body).hexdigest(), len(body), "tree", (), body)
    return StoreInput(name, mode, tuple(objects), tree, prefix)


def read_pack(obj: StoreObject) -> bytes:
    """A pack's bytes: its files in order, each checked against the stamp it was hashed under and
    against its sha256 (raises FileChanged naming the first that moved), so the checksum a launch
    sends with the pack is that of the bytes the tree names (about 5 ms for a full pack)."""
    parts = []
    for m in obj.members:
        try:
            with open(m.local, "rb") as fh:
                data = fh.read()
                now = stamp_of(os.fstat(fh.fileno()))
        except OSError:
            raise FileChanged(m.local) from None
        if len(data) != m.size or (m.stamp and now != list(m.stamp)) or hashlib.sha256(data).hexdigest() != m.sha256:
            raise FileChanged(m.local)
        parts.append(data)
    return b"".join(parts)
