"""Links in the folders that leave the machine (checkpoints, model, output): one rule, every mode.

- A link whose target lies inside the folder stays a link, written relative so it survives the
  move -- or, where the storage holds no links (S3, so the checkpoint location), becomes a copy
  of what it points at, as SageMaker's own checkpoint sync uploads a link's target.
- A link that leaves the folder is replaced by what it points at (a file, or a folder's files).
- A dangling link, a link into a folder that holds it (a loop) and anything that is neither a
  file nor a folder are skipped, each named in one line.
- A file that vanishes or changes while the folder is read (a trainer saving every step) is
  normal: it is left out of this pass, never an error.

`entries` reads a folder under that rule (local mode packs model.tar.gz and syncs checkpoints
with it); `seal` applies it in place (the runtime, at the end of the job, to the model and output
folders, so the artifact SageMaker packs is self-contained too). Standard library only.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

_GONE = (FileNotFoundError, NotADirectoryError)  # vanished between listing and reading: not news


@dataclass(frozen=True)
class Entry:
    rel: str  # posix path in the folder, as stored
    kind: str  # "file", "link" (kept: `source` is its relative text) or "dir" (an empty folder)
    source: str  # file: the path to read (through any link); dir: its path
    stat: os.stat_result = None  # file: os.stat of what is read


def _inside(root: str, path: str) -> bool:
    # rstrip: for "/", root + os.sep would be "//", and a link to "/" no loop (the whole disk copied)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


def link_text(rel: str, target_rel: str) -> str:
    """The relative text of a link stored at `rel` that points at `target_rel` (both in the folder)."""
    return os.path.relpath(target_rel or ".", os.path.dirname(rel) or ".").replace(os.sep, "/")


def entries(folder: str, keep_links: bool = True) -> tuple:
    """([Entry] sorted by path, [one line per thing skipped]) for `folder` under the rule above;
    keep_links=False for a storage without links (every link followed, loops cut). A folder that
    does not exist gives nothing."""
    root = os.path.realpath(folder)
    found, skipped = [], []
    if os.path.isdir(root):
        _walk(root, root, "", frozenset({root}), keep_links, found, skipped)
    found.sort(key=lambda e: e.rel.encode("utf-8", "surrogateescape"))
    return found, skipped


def _walk(root, real_dir, rel_dir, ancestors, keep_links, found, skipped) -> bool:
    """Add real_dir's contents (stored under rel_dir) to `found`; True when it added any."""
    try:
        with os.scandir(real_dir) as it:
            listing = sorted(it, key=lambda e: e.name)
    except _GONE:
        return False
    except OSError as err:
        skipped.append(f"{rel_dir or '.'}: cannot list it ({err.strerror or err})")
        return False
    held = False
    for item in listing:
        rel = _join(rel_dir, item.name)
        try:
            held = _entry(root, item, rel, ancestors, keep_links, found, skipped) or held
        except _GONE:
            continue
        except OSError as err:
            skipped.append(f"{rel}: cannot be read ({err.strerror or err})")
    if not held and rel_dir and keep_links:
        found.append(Entry(rel_dir, "dir", real_dir))  # an empty folder: kept (a link may point at it)
        held = True
    return held


def _entry(root, item, rel, ancestors, keep_links, found, skipped) -> bool:
    if item.is_symlink():
        target = os.path.realpath(item.path)
        if not os.path.exists(target):
            if os.path.lexists(item.path):  # else it went while we looked: not news
                skipped.append(f"dangling link {rel} -> {os.readlink(item.path)}")
            return False
        if keep_links and _inside(root, target):
            found.append(Entry(rel, "link", link_text(rel, os.path.relpath(target, root).replace(os.sep, "/")
                                                      if target != root else "")))
            return True
        if os.path.isdir(target):
            if target in ancestors or _inside(target, os.path.dirname(item.path)):
                skipped.append(f"link loop {rel} -> {os.readlink(item.path)} (a folder that holds it)")
                return False
            return _walk(root, target, rel, ancestors | {target}, keep_links, found, skipped)
        if os.path.isfile(target):
            found.append(Entry(rel, "file", item.path, os.stat(item.path)))
            return True
        skipped.append(f"{rel}: links to something that is neither a file nor a folder")
        return False
    if item.is_dir(follow_symlinks=False):  # its path is real: its folder's is, and it is no link
        return _walk(root, item.path, rel, ancestors | {item.path}, keep_links, found, skipped)
    if item.is_file(follow_symlinks=False):
        found.append(Entry(rel, "file", item.path, item.stat(follow_symlinks=False)))
        return True
    skipped.append(f"{rel}: neither a file nor a folder (a FIFO, socket or device)")
    return False


def seal_outputs(layout, log) -> None:
    """The end of the job on every host: the model and output folders made self-contained before
    SageMaker (or local mode, the sandbox) packs them. Our own copying never fails the job."""
    for label, folder in (("model", layout.model_dir), ("output", layout.output_data_dir)):
        try:
            replaced = seal(folder, lambda line, label=label: log(f"{label}: {line}"))
        except Exception as err:  # noqa: BLE001 - whatever it is, the script's outcome stands
            log(f"{label}: links left as they are ({type(err).__name__}: {err})")
            continue
        if replaced:
            names = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
            log(f"{label}: {names}: link{'s' if len(replaced) > 1 else ''} out of the folder replaced by "
                "what they point at")


def seal(folder: str, log) -> list:
    """Apply the rule in place before `folder` leaves the machine: a link leaving it is replaced by
    a copy of its target, a link inside it that is absolute or leaves and re-enters is rewritten
    relative, a dangling one is removed; each thing skipped is named through `log`. Returns the
    paths of the links replaced. Never raises for one link: a failure is logged, the rest goes on."""
    root = os.path.realpath(folder)
    if not os.path.isdir(root):
        return []
    replaced = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                continue
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            try:
                if _seal_link(root, path, rel, log):
                    replaced.append(rel)
            except _GONE:
                continue
            except OSError as err:
                log(f"{rel}: link left as it is ({err.strerror or err})")
    return replaced


def _seal_link(root: str, path: str, rel: str, log) -> bool:
    text = os.readlink(path)
    target = os.path.realpath(path)
    if not os.path.exists(target):
        os.unlink(path)
        log(f"skipped dangling link {rel} -> {text} (removed, so the archive holds only what can be read)")
        return False
    if _inside(root, target):
        lexical = os.path.normpath(os.path.join(os.path.dirname(rel), text))
        if os.path.isabs(text) or lexical == ".." or lexical.startswith(".." + os.sep):
            relative = link_text(rel, os.path.relpath(target, root).replace(os.sep, "/") if target != root else "")
            _replace(path, lambda tmp: os.symlink(relative, tmp))
        return False
    if os.path.isfile(target):
        _replace(path, lambda tmp: shutil.copy2(target, tmp))
        return True
    if not os.path.isdir(target):
        os.unlink(path)
        log(f"skipped {rel} -> {text}: neither a file nor a folder (removed)")
        return False
    if _inside(target, os.path.dirname(path)):  # `up -> ..`: a copy would hold the folder itself
        os.unlink(path)
        log(f"skipped link loop {rel} -> {text} (a folder that holds it; removed)")
        return False
    parents = {os.path.realpath(os.path.join(root, *rel.split("/")[:i])) for i in range(len(rel.split("/")))}
    found, skipped = [], []
    _walk(root, target, rel, frozenset(parents | {target}), True, found, skipped)
    for line in skipped:
        log(f"skipped {line}")

    def build(tmp):
        os.mkdir(tmp)
        shutil.copystat(target, tmp)
        for entry in found:
            dest = os.path.join(tmp, *entry.rel[len(rel) + 1:].split("/")) if entry.rel != rel else tmp
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if entry.kind == "link":
                os.symlink(entry.source, dest)
            elif entry.kind == "dir":
                os.makedirs(dest, exist_ok=True)
            else:
                try:
                    shutil.copy2(entry.source, dest)
                except _GONE:
                    pass
    _replace(path, build)
    return True


def _replace(path: str, build) -> None:
    """Build the replacement beside `path`, then swap it in (the link is gone only once it is ready)."""
    parent = os.path.dirname(path)
    tmp = tempfile.mkdtemp(prefix=".atr-link-", dir=parent)
    staged = os.path.join(tmp, "x")
    try:
        build(staged)
        os.unlink(path)
        os.rename(staged, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
