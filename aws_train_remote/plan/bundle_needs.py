"""What the job must find in its code bundle: the entry point, the requirements file and every
local path that file names (a wheel, a project folder, a nested -r/-c file, a --find-links folder).

The runtime refuses a job whose entry point or requirements file is not in the bundle, and pip
fails on a path that is not there: found in the job, after everything was created and billed.
So they are judged at launch, against the selection, before anything is written or sent:
- a path an ignore rule (.gitignore, .sagemakerignore) leaves out is shipped anyway, and the dry
  run says so: nobody means to leave out the script they run or the wheel they install
  (GitHub's Python .gitignore ignores `dist/`);
- a path the always-skip list leaves out (a secret, an environment, a cache) or an input folder
  holds is refused in one line: only a `!` line in .sagemakerignore ships those, on purpose;
- a relative path that does not exist, or that lies outside the source folder, is refused in one
  line: the source folder is all the job receives. An absolute path is left alone: the image may
  hold it (a custom image with its wheels under /opt).
A dependencies= folder needs none of this: it goes on PYTHONPATH, with no entry point and no
requirements of its own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError
from ..runtime import requirements as req
from . import ignore, source

OUTSIDE_FIX = ("move it into the source folder, or drop the line and ship its folder as a dependency "
               "(dependencies=, which puts it on PYTHONPATH)")
MOVE_FIX = "move it into the source folder"


@dataclass(frozen=True)
class Need:
    relpath: str  # posix, relative to the source folder
    why: str  # "it is the entry point", "line 2 of requirements.txt names it"
    flag: str
    written: str  # as the user wrote it, for a refusal
    whole: bool = False  # a folder of distributions (--find-links): an ignore rule inside it yields too


def needs(spec) -> list:
    """Every path of the source folder the job cannot run without, or UsageError for one it can
    never reach."""
    found = [Need(spec.script, "it is the entry point", "--sagemaker-script", spec.script)]
    if spec.requirements:
        found.append(Need(spec.requirements, "it is the requirements file", "--sagemaker-requirements",
                          spec.requirements))
        root = os.path.realpath(spec.source_dir)
        _read(root, os.path.join(root, spec.requirements), dict(spec.environment), found, set())
    return found


def _read(root: str, path: str, environ: dict, found: list, seen: set) -> None:
    """The local paths of one requirements (or constraints) file, with the files it includes.
    pip runs from the code folder (runtime/bootstrap.py), so a requirement's path is relative to
    it; a nested -r/-c file, and a --find-links folder that exists there, to the naming file."""
    if os.path.realpath(path) in seen:
        return
    seen.add(os.path.realpath(path))
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            text = fh.read()
    except OSError as err:
        raise UsageError("--sagemaker-requirements", _rel(root, path), f"cannot be read ({err.strerror or err})",
                         "fix its permissions, or the line that names it") from None
    here, shown = os.path.dirname(path), _rel(root, path)
    for number, written, line in req.logical_lines(text, environ):
        origin = f"line {number} of {shown}"
        requirement, options = req.split_options(line)
        if requirement:
            _local(root, root, req.requirement_path(requirement, root), written, origin, found)
            continue
        try:
            pairs = req.parse_options(options)
        except req.RequirementsError as err:
            raise UsageError("--sagemaker-requirements", written, f"{origin}: {err}", "fix the line") from None
        for name, value in pairs:
            if name in ("requirement", "constraint"):
                target = _local(root, here, req.local_location(value or ""), written, origin, found, fix=MOVE_FIX,
                                base_name="the file that names it")
                if target:
                    _read(root, target, environ, found, seen)
            elif name == "editable":
                _local(root, root, req.requirement_path(value or "", root), written, origin, found)
            elif name == "find-links":  # pip only warns about a folder that is not there
                local = req.local_location(value or "")
                base = here if local and os.path.exists(os.path.join(here, local)) else root
                _local(root, base, local, written, origin, found, must_exist=False, whole=True, fix=MOVE_FIX,
                       base_name="the file that names it" if base == here else "the source folder (where pip runs)")


def _local(root: str, base: str, local, written: str, origin: str, found: list, must_exist: bool = True,
           whole: bool = False, fix: str = OUTSIDE_FIX, base_name: str = "the source folder (where pip runs)"):
    """Record the path `local` (relative to `base`) as needed; its absolute path, or None when it
    is not ours to judge: a URL, an absolute path, an unset ${VAR} pip expands in the job."""
    if not local or os.path.isabs(local) or "${" in local:
        return None
    full = os.path.normpath(os.path.join(base, local))
    if not _inside(root, full) or not _inside(root, os.path.realpath(full)):
        raise UsageError("--sagemaker-requirements", written,
                         f"{origin} names {local}: read from {base_name}, it lies outside the source folder, "
                         "which is all the job receives", fix)
    if not os.path.exists(full):
        if not must_exist:
            return None
        raise UsageError("--sagemaker-requirements", written, f"{origin} names {local}: no such file or folder "
                         "(pip would fail in the job)", "fix the path: relative to the source folder "
                         "(a -r or -c file: to the file that names it)")
    rel = _rel(root, full)
    if rel != ".":  # the source folder itself (`-e .`): the bundle is that folder
        found.append(Need(rel, f"{origin} names it", "--sagemaker-requirements", written, whole))
    return full


def _within(relpath: str, folder: str) -> bool:
    """`relpath` is `folder` or lies under it (either may end with "/")."""
    relpath, folder = relpath.rstrip("/"), folder.rstrip("/")
    return relpath == folder or relpath.startswith(folder + "/")


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _rel(root: str, path: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def ship_needs(selection: source.Selection, found, root: str, exclude=()) -> source.Selection:
    """The selection with every needed path in it: what an ignore rule left out is added (and
    listed in `shipped`), what the always-skip list or an input folder keeps out is refused."""
    root = os.path.realpath(root)
    have = {f.relpath for f in selection.files}
    added, shipped, dropped, more_skipped = [], [], set(), []
    for need in found:
        full = os.path.join(root, need.relpath)
        is_dir = os.path.isdir(full)
        if any(_within(need.relpath, rel) for rel, _ in shipped):
            continue  # shipped with a folder another need named
        covering = next(((rel, why) for rel, why in selection.skipped
                         if rel.rstrip("/") == need.relpath or (rel.endswith("/") and _within(need.relpath, rel))),
                        None)
        if covering is None and not (is_dir and need.whole):
            continue  # selected; inside a selected project folder, the user's ignore rules stand
        if covering is None:  # a --find-links folder: the wheels an ignore rule (`*.whl`) leaves out go too
            parts = [(rel, why) for rel, why in selection.skipped
                     if _within(rel, need.relpath) and rel.rstrip("/") != need.relpath
                     and why == ignore.IGNORED_BY_RULE]
        else:
            _refuse_unless_ignored(need, covering[1], is_dir)
            parts = [(need.relpath + ("/" if is_dir else ""), covering[1])]
            if covering[0].rstrip("/") == need.relpath:
                dropped.add(covering[0])
        for rel, _ in parts:
            files, skipped = _walk(root, rel, exclude, need.flag)
            added += [f for f in files if f.relpath not in have]
            have |= {f.relpath for f in files}
            more_skipped += skipped
            shipped.append((rel, need.why))
            dropped.add(rel)
    if not shipped:
        return selection
    files = tuple(sorted(list(selection.files) + added, key=lambda f: f.relpath))
    skipped = tuple(s for s in selection.skipped if s[0] not in dropped) + tuple(more_skipped)
    return source.Selection(files, skipped, selection.shipped + tuple(shipped))


def _refuse_unless_ignored(need: Need, reason: str, is_dir: bool) -> None:
    """Only an ignore rule yields to a need; a secret, an environment, a cache or an input folder
    does not (the name may hold credentials: nothing ships it but a `!` line, on purpose)."""
    why_not = reason if reason != ignore.IGNORED_BY_RULE else ignore.path_skip_reason(need.relpath, is_dir)
    if why_not:
        raise UsageError(need.flag, need.written, f"{need.why}, but the code bundle leaves {need.relpath} out "
                         f"({why_not}), so the job would fail",
                         f"rename or move it, or ship it on purpose with a `!{need.relpath}` line in .sagemakerignore")


def _walk(root: str, rel: str, exclude, flag: str) -> tuple:
    """The files of `rel` (a file, or a folder with a trailing "/"), ignore rules set aside; the
    always-skip list and excluded folders still apply inside a folder."""
    full = os.path.join(root, rel.rstrip("/"))
    if not rel.endswith("/"):
        st = os.stat(full)
        return [source.SourceFile(rel, os.path.realpath(full), st.st_size, bool(st.st_mode & 0o111))], []
    inner = source.select_files(full, exclude=exclude, flag=flag, prefix=rel, ignore_files=False)
    return list(inner.files), [(rel + path, why) for path, why in inner.skipped]
