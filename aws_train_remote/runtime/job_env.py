"""A job's own Python environment on this machine (local mode and the sandbox), so that
installing a job's requirements never changes the user's interpreter, and the job sees what a
container would give it: its requirements, its own project, not the user's editable installs.

In a real container the runtime installs requirements into the image's Python, as the toolkit
does. Here that Python is the user's own (often their virtualenv): a pinned `tabulate==0.9.0`
would downgrade theirs. So every job runs in two layers of virtualenv:

- a cached environment, kept under ATR_LOCAL_ENVS and keyed on what it holds (the requirement
  lines from an index or a remote URL, local wheels by content, nested and constraints files, local
  find-links folders: requirements.Split.key) and the interpreter. It sees the user's
  site-packages after its own through a .pth file of plain paths, so torch and the like are reused,
  not downloaded again, and pip never touches them ("outside environment"). Plain paths, not site
  folders: the user's own .pth files are not run, so an editable install in the user's environment
  (which works through one) is not seen by the job -- the container would not have it either.
- a layer of this job's own, made afresh in the job's folder: local folders and editable lines of
  the requirements, and the code folder itself when it is a Python project (requirements.is_project),
  installed by pip from the code folder as the toolkit does. The cache never holds code that can
  change under the same requirements text, and an editable install points into this job's code
  for as long as the job lives. The script's own `pip install` at run time lands here too.

Standard library only.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

from . import requirements as reqs

ENVS_ENV = "ATR_LOCAL_ENVS"  # set by the local executor: where job environments are kept
_DONE = ".atr-complete"
_PARENT_PTH = "_atr_parent_site.pth"
_PIP = ["-m", "pip", "install", "--disable-pip-version-check"]


class EnvError(Exception):
    """The job's environment cannot be made: venv or pip failed; the message says why, pip's error first."""


def parent_site_dirs() -> list:
    """The site-packages folders of the interpreter running this, in its sys.path order."""
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]


def env_key(split_key: str, python: str) -> str:
    """The requirements' key, the interpreter, and the user environment it sees: two virtualenvs of
    one Python are different parents (they link to the same binary)."""
    digest = hashlib.sha256()
    for part in (split_key, os.path.realpath(python), sys.version, *parent_site_dirs()):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def job_python(root: str, job_dir: str, code_dir: str, requirements_path, python: str, log, *,
               project: bool = False) -> str:
    """The interpreter that runs the job: the cached environment for `requirements_path` (made
    once per key), under a layer made in `job_dir` for this job alone. pip sees this process's
    environment, so ${VAR} in a requirements file is read from the same one."""
    try:
        split = reqs.read_split(requirements_path, code_dir) if requirements_path else reqs.Split()
    except reqs.RequirementsError as err:
        raise EnvError(f"requirements: {err}") from None
    named = ["-r", os.path.relpath(requirements_path, code_dir)] if requirements_path else []
    cached = cached_env(root, split, code_dir, python, log, named)
    return job_layer(job_dir, cached, split, code_dir, python, log, named, project=project)


def cached_env(root: str, split, code_dir: str, python: str, log, named=()) -> str:
    """The folder of the cached environment for `split`. Concurrent hosts and jobs wait for each
    other on a lock; a half-made environment (killed during pip) has no completion mark and is
    made again."""
    import fcntl

    key = env_key(split.key, python)
    folder = os.path.join(root, key)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, f".{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(folder, _DONE)):
            log(f"job environment {folder} (cached)")
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        log(f"creating the job environment {folder} (your own Python environment stays untouched)")
        parents = parent_site_dirs()
        # pip from the user's environment when it has one (a venv made without it is ready in 50 ms,
        # and Python's bundled setuptools does not shadow theirs); its own only when it needs one
        site = make_venv(python, folder, with_pip=bool(split.cached) and not has_pip(parents))
        with open(os.path.join(site, _PARENT_PTH), "w", encoding="utf-8") as fh:
            fh.write("\n".join(parents) + "\n")  # appended to sys.path: the job's own packages win
        if split.cached:
            run_pip(os.path.join(folder, "bin", "python"), split.options + split.cached, [], code_dir, named)
        open(os.path.join(folder, _DONE), "w").close()
        return folder


def job_layer(job_dir: str, cached: str, split, code_dir: str, python: str, log, named=(), *,
              project: bool = False) -> str:
    """This job's own virtualenv over the cached one: what must be installed afresh each job."""
    shutil.rmtree(job_dir, ignore_errors=True)
    project = project and not reqs.installs_code_folder(split, code_dir)  # `-e .` already does
    needs_pip = bool(split.fresh) or project
    base_site = site_packages(cached)
    site = make_venv(python, job_dir, with_pip=needs_pip and not has_pip([base_site, *parent_site_dirs()]))
    with open(os.path.join(site, "_atr_job_base.pth"), "w", encoding="utf-8") as fh:
        # a site folder, not a plain path: the cached environment's own .pth files (its link to the
        # user's packages, an editable VCS install) work in this layer too
        fh.write(f"import site; site.addsitedir({base_site!r})\n")
    bin_python = os.path.join(job_dir, "bin", "python")
    write_torchrun(job_dir, bin_python)
    extra = ["."] if project else []  # pip runs in the code folder
    if needs_pip:
        shown = " ".join([line for line, _ in split.fresh] + extra)
        log(f"installing for this job alone (they may change between jobs): pip install {shown}"
            + (" (the code folder is a Python project)" if project else ""))
        run_pip(bin_python, split.options + split.fresh, extra, code_dir, named)
    return bin_python


def has_pip(site_dirs) -> bool:
    return any(os.path.isdir(os.path.join(folder, "pip")) for folder in site_dirs)


def make_venv(python: str, folder: str, with_pip: bool) -> str:
    """A virtualenv at `folder`; returns its site-packages folder."""
    made = subprocess.run([python, "-m", "venv", *([] if with_pip else ["--without-pip"]), folder],
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise EnvError(f"python -m venv failed: {(made.stderr or made.stdout).strip()[-500:]}")
    return site_packages(folder)


def site_packages(folder: str) -> str:
    """A POSIX virtualenv's site-packages (venv's own layout), else asked of its interpreter."""
    site = os.path.join(folder, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    if os.path.isdir(site):
        return site
    return subprocess.run([os.path.join(folder, "bin", "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def write_torchrun(job_dir: str, bin_python: str) -> None:
    """torchrun beside the job's interpreter (the runtime takes that one first), so torchrun and
    its workers run in the job's environment, not in the one a torchrun on PATH belongs to."""
    path = os.path.join(job_dir, "bin", "torchrun")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"#!{bin_python}\nimport sys\nfrom torch.distributed.run import main\n"
                 "if __name__ == '__main__':\n    sys.exit(main())\n")
    os.chmod(path, 0o755)


def run_pip(bin_python: str, lines: list, args: list, code_dir: str, named=()) -> None:
    """pip install of `lines` ((line, origin) pairs, written to a requirements file of their own)
    and `args`, run from the code folder as in the container, so relative paths mean the same in
    every mode. pip's messages and ours name the user's file (`named`) and line, not the derived one."""
    with tempfile.TemporaryDirectory(prefix="atr-req-") as tmp:
        derived = os.path.join(tmp, "requirements.txt")
        with open(derived, "w", encoding="utf-8") as fh:
            fh.write("\n".join(line for line, _ in lines) + "\n")
        command = [bin_python, *_PIP] + (["-r", derived] if lines else []) + args
        result = subprocess.run(command, cwd=code_dir, capture_output=True, text=True)
    out, err = (_as_written(text, derived, lines) for text in (result.stdout, result.stderr))
    sys.stdout.write(out)
    sys.stderr.write(err)
    if result.returncode != 0:
        what = "pip install " + " ".join([*(named if lines else []), *args])
        raise EnvError(pip_failure(what, subprocess.CompletedProcess(command, result.returncode, out, err)))


def _as_written(text: str, derived: str, lines: list) -> str:
    """pip's "line 3 of /tmp/.../requirements.txt" as the line of the user's file it came from."""
    def origin(match):
        number = int(match.group(1))
        return lines[number - 1][1] if 0 < number <= len(lines) else match.group(0)

    return re.sub(r"line (\d+) of " + re.escape(derived), origin, text or "").replace(derived, "requirements")


def pip_failure(what: str, result) -> str:
    """One line that carries pip's own error, then the tail of its output."""
    lines = [line.rstrip() for line in ((result.stderr or "") + "\n" + (result.stdout or "")).splitlines()]
    generic = ("subprocess-exited-with-error", "metadata-generation-failed")
    errors = [line.strip() for line in lines if line.strip().startswith("ERROR:")]
    errors = errors or [line.strip() for line in lines if line.strip().startswith("error:")
                        and not line.strip().endswith(generic)]
    errors = errors or [line.strip() for line in lines if line.strip()][-1:]
    tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-15:])
    return f"{what} failed (exit {result.returncode}): {errors[0] if errors else 'no output'}\n{tail}"
