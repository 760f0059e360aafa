"""The upload plan: every object a launch needs in S3, named by content.

- code:    <prefix>/code/<sha256 of the bundle>/sourcedir.tar.gz
- driver:  <prefix>/driver/<sha256>/atr.pyz, the runtime as a zip application (once per version)
- inputs in File and Pipe mode: the input store, <prefix>/store/ (plan/store.py): content-
           addressed objects (large files, packs of small files, the version's tree) and a
           ManifestFile per version, written last.
- inputs in FastFile mode or sharded: <prefix>/inputs/<manifest hash>/<relative path>, and the
           manifest <prefix>/manifests/<manifest hash>.json, written last: a prefix whose
           manifest exists is complete, so an interrupted upload is never taken for a finished one.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from dataclasses import dataclass

from .. import contract
from ..errors import UsageError
from . import bundle_needs, source, store
from .hashcache import FileChanged, hash_stable
from .source import require_utf8

S3_KEY_LIMIT = 1024  # bytes of UTF-8, S3's limit on an object key


@dataclass(frozen=True)
class PlannedFile:
    local: str
    relpath: str
    size: int
    sha256: str
    key: str
    stamp: tuple = ()  # (size, mtime_ns, ctime_ns, inode, device) when hashed: a change after it is caught


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
    inputs: tuple  # StoreInput or InputUpload, local inputs only
    skipped: tuple = ()
    warnings: tuple = ()
    entry: PlannedFile = None  # tuning only: the toolkit's entry archive (contract.ENTRY_ARCHIVE)
    shipped: tuple = ()  # (relpath, why): in the bundle although an ignore rule matches it

    def singles(self) -> tuple:
        return (self.code, self.driver) + ((self.entry,) if self.entry else ())

    def store_inputs(self) -> list:
        return [i for i in self.inputs if isinstance(i, store.StoreInput)]

    def prefix_inputs(self) -> list:
        return [i for i in self.inputs if isinstance(i, InputUpload)]

    def describe(self, bucket: str) -> list:
        """JSON-able rows for the dry run: every object a launch needs, by key and size; a relaunch
        sends only those S3 does not hold yet."""
        rows = [{"local": f.local, "size": f.size, "sha256": f.sha256, "key": f.key} for f in self.singles()]
        for item in self.prefix_inputs():
            rows += [{"local": f.local, "size": f.size, "sha256": f.sha256, "key": f.key} for f in item.files]
        for item in self.store_inputs():
            rows += [{k: v for k, v in row.items() if k in ("key", "kind", "size", "files", "local")}
                     for row in item.describe(bucket)["objects"]]
        return rows


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


def input_entries(location: str, flag: str) -> tuple:
    """([(relative posix path, path to read, os.stat of it)], [empty folders]) of an input
    folder, symlinks followed and loops cut (a link back to a folder above is not entered), sorted
    by path. Refuses, in one line each: a folder it cannot list, a name that is not UTF-8, a broken
    link, a special file. Only links pay for realpath: a folder of 10,000 files lists in
    milliseconds."""
    found, empty = [], []

    def walk(real_dir: str, rel_dir: str, ancestors: frozenset) -> bool:
        try:
            with os.scandir(real_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            raise UsageError(flag, os.path.join(location, rel_dir), f"cannot list this folder ({err.strerror})",
                             "fix its permissions or point the flag at another folder") from None
        held = False
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                entry.name.encode("utf-8")  # its folders were checked already
            except UnicodeEncodeError:
                require_utf8(flag, os.path.join(location, rel))
            try:
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    is_dir, is_file = os.path.isdir(real), os.path.isfile(real)
                else:
                    real = entry.path
                    is_dir, is_file = entry.is_dir(), entry.is_file()
                if is_dir:
                    if real not in ancestors:  # a link to a folder above would repeat the tree forever
                        held = walk(real, rel, ancestors | {real}) or held
                    continue
                if is_file:
                    found.append((rel, entry.path, entry.stat()))
                    held = True
                    continue
            except OSError as err:
                raise UsageError(flag, os.path.join(location, rel), f"cannot be read ({err.strerror or err})",
                                 "fix its permissions, or leave it out of the input") from None
            if not os.path.exists(real):
                raise UsageError(flag, os.path.join(location, rel), "broken symlink",
                                 "remove it or make it point at a file")
            raise UsageError(flag, os.path.join(location, rel), "not a regular file (a FIFO, socket or "
                             "device)", "remove it from the input folder")
        if not held and rel_dir:
            empty.append(rel_dir)
        return held

    root = os.path.realpath(location)
    walk(root, "", frozenset({root}))
    found.sort(key=lambda f: f[0])
    # a folder is worth keeping only when nothing under it is kept already
    kept = sorted(d for d in empty if not any(e.startswith(d + "/") for e in empty))
    return found, kept


def input_files(location: str, flag: str) -> list:
    """(relative posix path, path to read) of every file under an input folder, sorted by path."""
    return [(rel, full) for rel, full, _ in input_entries(location, flag)[0]]


def hash_input_file(flag: str, path: str, hash_file, st=None) -> tuple:
    """(sha256, stamp), or one line naming the file that cannot be read. `st`: the file's os.stat
    when the caller has it (a hash cache then need not stat it again)."""
    try:
        return hash_file(path, st)
    except FileChanged:
        raise UsageError(flag, path, "kept changing while it was read", "launch again once it is written") from None
    except OSError as err:
        raise UsageError(flag, path, f"cannot be read ({err.strerror or err})",
                         "fix its permissions, or leave it out of the input") from None


def shown_path(path: str) -> str:
    """A path as one printable line (a name may hold a newline or a control character)."""
    return path if path.isprintable() else repr(path)


def check_layout_paths(name: str, flag: str, location: str, paths, single: bool = False) -> None:
    """Each path of a File input as the runtime will lay it out in the container
    (/opt/ml/input/data/<name>/<path>), judged by the runtime's own rules (runtime/input_tree.py):
    one line naming the first it would refuse, before anything is hashed or sent."""
    from ..runtime.input_tree import unsafe_path

    base = contract.Layout(contract.DEFAULT_ROOT).channel_dir(name)
    for rel in paths:
        reason = unsafe_path(rel, base)
        if reason:
            where = location if single else os.path.join(location, rel)
            raise UsageError(flag, shown_path(where), f"the job could not lay this file out: {reason}",
                             "rename it (or move it out of the input folder)")


def uses_store(mode: str, distribution: str) -> bool:
    """File and Pipe inputs are ManifestFile channels over the store. FastFile needs a prefix, and a
    sharded input is split by S3 key, which must be one key per file: those keep a prefix per version."""
    return mode in ("File", "Pipe") and distribution != "sharded"


def _hash_uncached(path: str, st=None) -> tuple:
    return hash_stable(path)  # it stats the file around the read itself


def plan_input(name: str, location: str, prefix: str, hash_file=_hash_uncached, flag: str = None, mode: str = "File",
               distribution: str = "replicated"):
    """An input's upload: a StoreInput (File, Pipe) or an InputUpload (a prefix per version)."""
    flag = flag or f"--{name.replace('_', '-')}"
    require_utf8(flag, location)
    dirs = []
    if os.path.isdir(location):
        entries, dirs = input_entries(location, flag)
        if not entries:
            raise UsageError(flag, location, "empty folder (SageMaker refuses an empty channel)",
                             "put the data in it, or point the flag at the folder that holds it")
        single = False
    elif os.path.isfile(location):
        entries = [(os.path.basename(location), location, os.stat(location))]
        single = True
    else:
        raise UsageError(flag, location, "not a regular file or folder", "point the flag at a file or folder")
    if mode == "File" and uses_store(mode, distribution):  # the runtime lays these paths out: what it
        # would refuse is refused now, before a file is hashed
        check_layout_paths(name, flag, location, [rel for rel, _, _ in entries] + dirs, single)
    hashed = []
    for rel, full, st in entries:
        sha, stamp = hash_input_file(flag, full, hash_file, st)
        hashed.append((rel, full, stamp[0], sha, tuple(stamp), stat.S_IMODE(st.st_mode) & 0o777))
    if uses_store(mode, distribution):
        longest = _key(prefix, "store", "manifests", "0" * 64 + ".json")
        if len(longest.encode("utf-8")) > S3_KEY_LIMIT:
            raise UsageError("--sagemaker-prefix", prefix, f"its S3 keys would be {len(longest.encode('utf-8'))} "
                             f"bytes, over S3's {S3_KEY_LIMIT}", "shorten the prefix")
        members = [store.Member(rel, full, size, sha, perm, stamp) for rel, full, size, sha, stamp, perm in hashed]
        return store.plan_store_input(name, mode, members, dirs, prefix)
    manifest = manifest_bytes([(rel, size, sha) for rel, _, size, sha, _, _ in hashed])
    mhash = hashlib.sha256(manifest).hexdigest()
    prefix_key = _key(prefix, "inputs", mhash) + "/"
    longest = max(hashed, key=lambda h: len(h[0].encode("utf-8")))[0]
    key_bytes = len((prefix_key + longest).encode("utf-8"))
    if key_bytes > S3_KEY_LIMIT:
        raise UsageError(flag, os.path.join(location, longest), f"its S3 key would be {key_bytes} bytes, over "
                         f"S3's {S3_KEY_LIMIT}", "shorten the path (or --sagemaker-prefix)")
    files = tuple(PlannedFile(full, rel, size, sha, prefix_key + rel, stamp)
                  for rel, full, size, sha, stamp, _ in hashed)
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


_DRIVER_PATH = f"{contract.DEFAULT_ROOT}/input/data/{contract.DRIVER_CHANNEL}/{contract.DRIVER_FILE}"
ENTRY_SCRIPT = (
    '"""Run by SageMaker\'s training toolkit in a tuning trial: hand over to aws-train-remote\'s runtime."""\n'
    "import runpy\nimport sys\n\n"
    "sys.argv = sys.argv[:1]  # the runtime reads the trial's hyperparameters itself\n"
    f"runpy.run_path({_DRIVER_PATH!r}, run_name='__main__')\n").encode()


def plan_entry(prefix: str, cache_dir: str) -> PlannedFile:
    """The tuning entry archive: one deterministic tar.gz holding contract.ENTRY_FILE."""
    import gzip
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(contract.ENTRY_FILE)
        info.size, info.mode, info.mtime = len(ENTRY_SCRIPT), 0o644, 0
        tar.addfile(info, io.BytesIO(ENTRY_SCRIPT))
    data = gzip.compress(raw.getvalue(), mtime=0)
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(cache_dir, f"entry-{digest}.tar.gz")
    with open(path, "wb") as fh:
        fh.write(data)
    return PlannedFile(path, contract.ENTRY_ARCHIVE, len(data), digest,
                       _key(prefix, "entry", digest, contract.ENTRY_ARCHIVE))


def bundle_selection(spec, also_exclude=()) -> source.Selection:
    """The code bundle's files: the source folder plus each dependency under _atr_deps/. What the
    job cannot run without (the entry point, the requirements and the paths they name) is in it,
    or refused now (plan/bundle_needs.py)."""
    exclude = [i.location for i in spec.inputs if not i.is_remote] + list(also_exclude)
    exclude += [spec.model_dir, spec.local_output_dir, spec.local_checkpoint_dir]
    if spec.checkpoint_initial and not spec.checkpoint_initial.startswith("s3://"):
        exclude.append(spec.checkpoint_initial)
    needed = bundle_needs.needs(spec)
    main = bundle_needs.ship_needs(source.select_files(spec.source_dir, exclude=exclude), needed, spec.source_dir,
                                   exclude)
    files, skipped = list(main.files), list(main.skipped)
    for dep in spec.dependencies:
        sel = source.select_files(dep.folder, exclude=exclude, flag=dep.flag, prefix=dep.bundle_path + "/")
        files += sel.files
        skipped += [(f"{dep.bundle_path}/{rel}", why) for rel, why in sel.skipped]
    return source.Selection(tuple(sorted(files, key=lambda f: f.relpath)), tuple(skipped), main.shipped)


@dataclass(frozen=True)
class Scan:
    """What a launch would ship, read and hashed but not yet written anywhere."""
    selection: source.Selection
    inputs: tuple  # InputUpload


def scan(spec, cache_dir: str, hash_file=_hash_uncached) -> Scan:
    """Select the code and hash the inputs. Reads only: a bad file is refused before anything
    is written, locally or in AWS."""
    selection = bundle_selection(spec, also_exclude=[cache_dir])
    inputs = tuple(plan_input(i.name, i.location, spec.prefix, hash_file, i.flag, i.mode, i.distribution)
                   for i in spec.inputs if not i.is_remote)
    return Scan(selection, inputs)


def write_plan(spec, scanned: Scan, cache_dir: str) -> UploadPlan:
    """Write the code bundle and the driver under <cache_dir>/bundles; the plan names them."""
    bundle_dir = os.path.join(cache_dir, "bundles")
    os.makedirs(bundle_dir, exist_ok=True)
    tmp = os.path.join(bundle_dir, f".bundle-{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            digest = source.write_bundle(scanned.selection.files, out)
    except BaseException:
        os.unlink(tmp)
        raise
    bundle_path = os.path.join(bundle_dir, f"{digest}.tar.gz")
    os.replace(tmp, bundle_path)
    code = PlannedFile(bundle_path, contract.BUNDLE_FILE, os.path.getsize(bundle_path), digest,
                       _key(spec.prefix, "code", digest, contract.BUNDLE_FILE))
    driver = plan_driver(spec.prefix, bundle_dir)
    entry = plan_entry(spec.prefix, bundle_dir) if getattr(spec, "tune", None) else None
    return UploadPlan(code, driver, scanned.inputs, scanned.selection.skipped,
                      tuple(source.bundle_warnings(scanned.selection)), entry, scanned.selection.shipped)


def build_upload_plan(spec, cache_dir: str, hash_file=_hash_uncached) -> UploadPlan:
    return write_plan(spec, scan(spec, cache_dir, hash_file), cache_dir)
