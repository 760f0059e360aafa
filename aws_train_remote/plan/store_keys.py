"""The exact keys a launch writes its inputs under, and their manifests read back (for gc).

A key is the tool's only when it has one of these shapes, and a manifest only when its bytes are
the ones its name promises (a launch names every manifest by the sha256 of its bytes):

- <prefix>/store/objects/<sha256>              plan/store.py: a large file, a pack or a tree
- <prefix>/store/manifests/<sha256>.json       plan/store.py: a File or Pipe input version
- <prefix>/inputs/<sha256>/<relative path>     plan/uploads.py: a FastFile or sharded version ...
- <prefix>/manifests/<sha256>.json             ... recorded by this manifest, written last

Everything else under the prefix (a user's README, csv files, a hand-written manifest) is not the
tool's, and gc leaves it alone. Pure: keys and bytes in, values out.
"""
from __future__ import annotations

import hashlib
import json
import re

from .store import store_root

HEX64 = re.compile(r"[0-9a-f]{64}")
# Folders inside a store root: a --prefix ending in one of them (or in a version's hash) points
# inside a store, not at its root (gc --prefix aws-train-remote/store took the store's manifests for
# prefix-version manifests).
INNER_NAMES = ("store", "objects", "manifests", "inputs")


class UnreadableManifest(ValueError):
    """A manifest-shaped key whose bytes are not a manifest this tool wrote."""


def prefix_base(prefix: str) -> str:
    """<prefix>/ ("" for none), as the launch joins keys (spec strips the slashes)."""
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def _hex_name(rest: str, suffix: str = ""):
    if suffix:
        if not rest.endswith(suffix):
            return None
        rest = rest[:-len(suffix)]
    return rest if HEX64.fullmatch(rest) else None


def store_object_digest(prefix: str, key: str):
    """The sha256 of a store object's key, None for any other key."""
    head = store_root(prefix) + "objects/"
    return _hex_name(key[len(head):]) if key.startswith(head) else None


def store_manifest_digest(prefix: str, key: str):
    head = store_root(prefix) + "manifests/"
    return _hex_name(key[len(head):], ".json") if key.startswith(head) else None


def version_manifest_digest(prefix: str, key: str):
    head = prefix_base(prefix) + "manifests/"
    return _hex_name(key[len(head):], ".json") if key.startswith(head) else None


def version_folder(prefix: str, digest: str) -> str:
    return f"{prefix_base(prefix)}inputs/{digest}/"


def version_of(prefix: str, key: str):
    """(digest, relative path) of a key under <prefix>/inputs/<sha256>/, None for any other key."""
    head = prefix_base(prefix) + "inputs/"
    if not key.startswith(head):
        return None
    digest, sep, rel = key[len(head):].partition("/")
    return (digest, rel) if sep and rel and HEX64.fullmatch(digest) else None


def _checked_json(body: bytes, digest: str):
    if hashlib.sha256(body).hexdigest() != digest:
        raise UnreadableManifest("its bytes are not the ones its name promises (a launch names a manifest "
                                 "by the sha256 of its bytes)")
    try:
        return json.loads(body)
    except ValueError:
        raise UnreadableManifest("not JSON") from None


def read_store_manifest(body: bytes, digest: str, bucket: str, prefix: str) -> set:
    """The object keys a store manifest names: [{"prefix": s3://<bucket>/<prefix>/store/objects/},
    <sha256>, ...] (plan/store.py StoreInput.manifest). Raises UnreadableManifest otherwise."""
    entries = _checked_json(body, digest)
    objects_at = store_root(prefix) + "objects/"
    if not (isinstance(entries, list) and entries and isinstance(entries[0], dict)
            and entries[0].get("prefix") == f"s3://{bucket}/{objects_at}"):
        raise UnreadableManifest(f"not a ManifestFile of this store (its first entry must be "
                                 f"{{\"prefix\": \"s3://{bucket}/{objects_at}\"}})")
    names = entries[1:]
    if not all(isinstance(n, str) and HEX64.fullmatch(n) for n in names):
        raise UnreadableManifest("names something other than store objects")
    return {objects_at + n for n in names}


def _tool_entry(f) -> bool:
    return (isinstance(f, dict) and set(f) == {"path", "size", "sha256"} and isinstance(f["path"], str)
            and f["path"] and type(f["size"]) is int and f["size"] >= 0 and isinstance(f["sha256"], str)
            and HEX64.fullmatch(f["sha256"]) is not None)


def read_version_manifest(body: bytes, digest: str) -> dict:
    """relative path -> size of each file a prefix version's manifest records. Only the bytes
    plan/uploads.py manifest_bytes writes count ({"files": [{"path", "sha256", "size"}, ...],
    "version": 1}, keys sorted, no spaces): a hand-written JSON of a similar shape, named by its
    own sha256, is not the tool's. Raises UnreadableManifest."""
    data = _checked_json(body, digest)
    files = data.get("files") if isinstance(data, dict) else None
    if not (isinstance(files, list) and set(data) == {"version", "files"} and data["version"] == 1
            and all(_tool_entry(f) for f in files)
            and json.dumps(data, sort_keys=True, separators=(",", ":")).encode() == body):
        raise UnreadableManifest("not a prefix-version manifest of this tool")
    return {f["path"]: f["size"] for f in files}


def inner_name(prefix: str):
    """The last component of a prefix when it names a folder inside a store root (store, objects,
    manifests, inputs, a version's sha256), else None."""
    last = prefix.strip("/").rsplit("/", 1)[-1]
    return last if last in INNER_NAMES or HEX64.fullmatch(last) else None


def holds_a_store(prefix: str, keys) -> bool:
    """Whether these keys (a listing of <prefix>/) hold anything a launch with this prefix writes."""
    return any(store_object_digest(prefix, k) or store_manifest_digest(prefix, k) or version_of(prefix, k)
               for k in keys)
