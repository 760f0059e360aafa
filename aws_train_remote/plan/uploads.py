"""The upload plan: every object a launch needs in S3, named by content.

- code:    <prefix>/code/<sha256 of the bundle>/sourcedir.tar.gz
- driver:  <prefix>/driver/<sha256>/atr.pyz, the runtime as a zip application (once per version)
- inputs:  <prefix>/inputs/<manifest hash>/<relative path>, and the manifest
           <prefix>/manifests/<manifest hash>.json, written last: a prefix whose manifest
           exists is complete, so an interrupted upload is never taken for a finished one.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass

from .. import contract
from . import source

CHUNK = 1024 * 1024


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class PlannedFile:
    local: str
    relpath: str
    size: int
    sha256: str
    key: str


@dataclass(frozen=True)
class InputUpload:
    name: str
    manifest_hash: str
    prefix_key: str  # ends with "/"
    manifest_key: str
    manifest: bytes
    files: tuple  # PlannedFile
    single_file: bool = False


@dataclass(frozen=True)
class UploadPlan:
    code: PlannedFile
    driver: PlannedFile
    inputs: tuple  # InputUpload, local inputs only
    skipped: tuple = ()
    warnings: tuple = ()

    def all_files(self):
        yield self.code
        yield self.driver
        for item in self.inputs:
            yield from item.files

    def describe(self) -> list:
        """JSON-able rows for the dry run: what would be uploaded, by size, hash and key."""
        return [{"local": f.local, "size": f.size, "sha256": f.sha256, "key": f.key} for f in self.all_files()]


def _key(prefix: str, *parts: str) -> str:
    return "/".join(p for p in (prefix, *parts) if p)


def runtime_files() -> list:
    """The files of the driver channel: the whole package (small, stdlib-importable), so the
    bootstrap runs from it and the user's script can `import aws_train_remote` in any image."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = []
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, os.path.dirname(package)).replace(os.sep, "/")
                found.append((full, rel))
    return found


def manifest_bytes(entries) -> bytes:
    """Canonical manifest: sorted (path, size, sha256); its sha256 names the input prefix."""
    rows = [{"path": rel, "size": size, "sha256": sha} for rel, size, sha in sorted(entries)]
    return json.dumps({"version": 1, "files": rows}, sort_keys=True, separators=(",", ":")).encode()


def plan_input(name: str, location: str, prefix: str, hash_file=sha256_file) -> InputUpload:
    if os.path.isdir(location):
        entries = []
        for dirpath, dirnames, filenames in os.walk(location, followlinks=True):
            dirnames.sort()
            for fname in sorted(filenames):
                full = os.path.join(dirpath, fname)
                if os.path.isfile(full):
                    rel = os.path.relpath(full, location).replace(os.sep, "/")
                    entries.append((rel, full))
        single = False
    else:
        entries = [(os.path.basename(location), location)]
        single = True
    hashed = [(rel, full, os.path.getsize(full), hash_file(full)) for rel, full in entries]
    manifest = manifest_bytes([(rel, size, sha) for rel, _, size, sha in hashed])
    mhash = hashlib.sha256(manifest).hexdigest()
    prefix_key = _key(prefix, "inputs", mhash) + "/"
    files = tuple(PlannedFile(full, rel, size, sha, prefix_key + rel) for rel, full, size, sha in hashed)
    return InputUpload(name, mhash, prefix_key, _key(prefix, "manifests", f"{mhash}.json"), manifest, files, single)


DRIVER_MAIN = b"""import sys
from aws_train_remote.runtime.bootstrap import main
sys.exit(main())
"""


def write_driver(out) -> str:
    """The runtime as one deterministic zip application (python3 runs it directly, and the
    script imports aws_train_remote from it); returns its sha256."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        entries = [(rel, full) for full, rel in runtime_files()]
        for rel, full in sorted(entries):
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(full, "rb") as fh:
                zf.writestr(info, fh.read())
        info = zipfile.ZipInfo("__main__.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        zf.writestr(info, DRIVER_MAIN)
    data = buffer.getvalue()
    out.write(data)
    return hashlib.sha256(data).hexdigest()


def plan_driver(prefix: str, cache_dir: str) -> PlannedFile:
    os.makedirs(cache_dir, exist_ok=True)
    tmp = os.path.join(cache_dir, f".driver-{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        digest = write_driver(out)
    path = os.path.join(cache_dir, f"driver-{digest}.pyz")
    os.replace(tmp, path)
    return PlannedFile(path, contract.DRIVER_FILE, os.path.getsize(path), digest,
                       _key(prefix, "driver", digest, contract.DRIVER_FILE))


def bundle_selection(spec, also_exclude=()) -> source.Selection:
    """The code bundle's files: the source folder plus each dependency under _atr_deps/."""
    exclude = [i.location for i in spec.inputs if not i.is_s3] + list(also_exclude)
    exclude += [spec.model_dir, spec.local_output_dir, spec.local_checkpoint_dir]
    if spec.checkpoint_initial and not spec.checkpoint_initial.startswith("s3://"):
        exclude.append(spec.checkpoint_initial)
    main = source.select_files(spec.source_dir, exclude=exclude)
    files, skipped = list(main.files), list(main.skipped)
    for dep in spec.dependencies:
        sel = source.select_files(dep.folder, exclude=exclude, flag=dep.flag, prefix=dep.bundle_path + "/")
        files += sel.files
        skipped += [f"{dep.bundle_path}/{s}" for s in sel.skipped]
    return source.Selection(tuple(sorted(files, key=lambda f: f.relpath)), tuple(skipped))


def build_upload_plan(spec, cache_dir: str, hash_file=sha256_file) -> UploadPlan:
    """Select, pack and hash everything; the bundle is written under <cache_dir>/bundles."""
    selection = bundle_selection(spec, also_exclude=[cache_dir])
    bundle_dir = os.path.join(cache_dir, "bundles")
    os.makedirs(bundle_dir, exist_ok=True)
    tmp = os.path.join(bundle_dir, f".bundle-{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        digest = source.write_bundle(selection.files, out)
    bundle_path = os.path.join(bundle_dir, f"{digest}.tar.gz")
    os.replace(tmp, bundle_path)
    code = PlannedFile(bundle_path, contract.BUNDLE_FILE, os.path.getsize(bundle_path), digest,
                       _key(spec.prefix, "code", digest, contract.BUNDLE_FILE))
    driver = plan_driver(spec.prefix, bundle_dir)
    inputs = tuple(plan_input(i.name, i.location, spec.prefix, hash_file) for i in spec.inputs if not i.is_s3)
    return UploadPlan(code, driver, inputs, selection.skipped,
                      tuple(source.bundle_warnings(selection)))

