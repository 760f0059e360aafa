"""Local mode never changes the user's Python environment (issue 8, item 1): a job's
requirements go into a cached job environment that sees the user's packages after its own."""
import base64
import hashlib
import os
import subprocess
import sys
import zipfile

from conftest import REPO, write_script

from aws_train_remote.runtime import job_env


def make_wheel(folder, version: str) -> str:
    """A minimal pure-Python wheel of `atrtinylib` (built by hand: no network, no build backend)."""
    name = f"atrtinylib-{version}-py3-none-any.whl"
    path = os.path.join(str(folder), name)
    files = {"atrtinylib/__init__.py": f"__version__ = {version!r}\n",
             f"atrtinylib-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: atrtinylib\nVersion: {version}\n",
             f"atrtinylib-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
                                                     "Tag: py3-none-any\n"}
    record = []
    for rel, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(text.encode())}")
    record.append(f"atrtinylib-{version}.dist-info/RECORD,,")
    files[f"atrtinylib-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text)
    return path


def user_venv(folder) -> str:
    """A user's virtualenv in a fraction of a second: no pip of its own (pip, setuptools and the rest
    come from this venv through a .pth, as plain paths after its own site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = job_env.site_packages(str(folder))
    with open(os.path.join(site, "_dev.pth"), "w") as fh:
        fh.write("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    return os.path.join(str(folder), "bin", "python")


def freeze(python) -> str:
    return subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True).stdout


def test_requirements_of_a_local_job_leave_the_users_venv_untouched(tmp_path):
    python = user_venv(tmp_path / "uservenv")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index", make_wheel(tmp_path, "2.0")], check=True)
    project = tmp_path / "proj"
    (project / "wheels").mkdir(parents=True)
    make_wheel(project / "wheels", "1.0")
    (project / "requirements.txt").write_text("./wheels/atrtinylib-1.0-py3-none-any.whl\n")
    write_script(project, """
        import atrtinylib, sys
        from aws_train_remote import training_main
        def main(args):
            print("job sees atrtinylib", atrtinylib.__version__, "python", sys.executable)
        if __name__ == "__main__":
            training_main(main)
        """)
    before = freeze(python)
    env = dict(os.environ, PYTHONPATH=REPO)
    for attempt in (1, 2):
        result = subprocess.run([python, "train.py", "--sagemaker-run", "local"], cwd=project, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[algo-1] job sees atrtinylib 1.0" in result.stdout
        assert f"python {python}" not in result.stdout  # the job ran in its own environment
    assert "(cached)" in result.stdout + result.stderr  # the second run reused it
    after = freeze(python)
    assert after == before and "atrtinylib-2.0-py3-none-any.whl" in after
    mine = subprocess.run([python, "-c", "import atrtinylib; print(atrtinylib.__version__)"], capture_output=True,
                          text=True, env=env, cwd=tmp_path).stdout.strip()
    assert mine == "2.0"
