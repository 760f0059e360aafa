"""A job's own Python environment on this machine (local mode and the sandbox), so that
installing a job's requirements never changes the user's interpreter.

In a real container the runtime installs requirements into the image's Python, as the toolkit
does. Here that Python is the user's own (often their virtualenv): a pinned `tabulate==0.9.0`
would downgrade theirs. Instead each set of requirements gets a virtualenv, cached under
ATR_LOCAL_ENVS by the requirements' hash and the interpreter, which also sees the user's
packages -- after its own -- through a .pth file, so torch and the like are reused, not
downloaded again, and pip never touches them ("outside environment"). Standard library only.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

ENVS_ENV = "ATR_LOCAL_ENVS"  # set by the local executor: where job environments are kept
_DONE = ".atr-complete"


def parent_site_dirs() -> list:
    """The site-packages folders of the interpreter running this, in its sys.path order."""
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]


def env_key(requirements_text: bytes, python: str) -> str:
    digest = hashlib.sha256()
    for part in (requirements_text, os.path.realpath(python).encode(), sys.version.encode()):
        digest.update(part + b"\0")
    return digest.hexdigest()[:16]


def job_python(root: str, requirements_path: str, python: str, log) -> str:
    """The interpreter of the job's environment, created (and its requirements installed) once per
    key. Concurrent hosts of one job wait for each other on a lock; a half-made environment
    (killed during pip) has no completion mark and is made again."""
    import fcntl
    import shutil

    with open(requirements_path, "rb") as fh:
        key = env_key(fh.read(), python)
    folder = os.path.join(root, key)
    bin_python = os.path.join(folder, "bin", "python")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, f".{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(folder, _DONE)):
            log(f"job environment {folder} (cached)")
            return bin_python
        shutil.rmtree(folder, ignore_errors=True)
        log(f"creating the job environment {folder} (your own Python environment stays untouched)")
        made = subprocess.run([python, "-m", "venv", folder], capture_output=True, text=True)
        if made.returncode != 0:
            raise OSError(f"python -m venv failed: {(made.stderr or made.stdout).strip()[-500:]}")
        site = subprocess.run([bin_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        with open(os.path.join(site, "_atr_parent_site.pth"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(parent_site_dirs()) + "\n")  # appended to sys.path: the job's own packages win
        result = subprocess.run([bin_python, "-m", "pip", "install", "--disable-pip-version-check", "-r",
                                 requirements_path], cwd=os.path.dirname(requirements_path),
                                capture_output=True, text=True)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"pip install -r {os.path.basename(requirements_path)} failed "
                               f"(exit {result.returncode}):\n{tail}")
        open(os.path.join(folder, _DONE), "w").close()
        return bin_python
