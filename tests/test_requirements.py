"""Issue 18, items 3 and 4: requirements mean what pip means in every mode, and a source folder
that is a Python project is installed before the script starts.

The split of a requirements file is tested on literal files; then real pip, offline (local
packages only, no build isolation: setuptools comes from this venv), in local mode, the sandbox
and the runtime as a container runs it."""
import json
import os
import subprocess
import sys
import textwrap

from conftest import REPO, write_script
from runtime_job import JobRoot
from test_job_env import make_wheel, user_venv

from aws_train_remote import contract
from aws_train_remote.runtime import job_env
from aws_train_remote.runtime.requirements import is_project, logical_lines, read_split

OFFLINE_PIP = {"PIP_NO_BUILD_ISOLATION": "0", "PIP_NO_INDEX": "1"}  # pip's spelling of "no build isolation"
ROLE = "arn:aws:iam::123456789012:role/DemoRole"


def write(folder, files: dict) -> None:
    for rel, text in files.items():
        path = os.path.join(str(folder), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(textwrap.dedent(text))


def package(name: str, value: str, src: bool = False) -> dict:
    """A setuptools project `name` whose module says `value` (flat, or a src/ layout)."""
    return {"pyproject.toml": f"""
                [build-system]
                requires = ["setuptools>=61"]
                build-backend = "setuptools.build_meta"
                [project]
                name = "{name}"
                version = "0.1"
                """,
            f"{'src/' if src else ''}{name}/__init__.py": f"VALUE = {value!r}\n"}


def under(prefix: str, files: dict) -> dict:
    return {f"{prefix}/{rel}": text for rel, text in files.items()}


# --- the split, on literal files -------------------------------------------------------------------

def test_lines_are_read_as_pip_reads_them():
    text = "numpy==1.0 \\\n  --hash=sha256:abc  # pinned\n# a comment\n\n--index-url ${IDX}/simple\nx#y\n"
    assert logical_lines(text, {"IDX": "https://mirror"}) == [
        (1, "numpy==1.0   --hash=sha256:abc", "numpy==1.0   --hash=sha256:abc"),
        (5, "--index-url ${IDX}/simple", "--index-url https://mirror/simple"),
        (6, "x#y", "x#y")]  # '#' starts a comment only at the start or after whitespace


def test_what_may_change_under_the_same_text_is_never_cached(tmp_path):
    """Local folders and editable lines are installed afresh each job; index names, remote URLs,
    pinned VCS commits and local archives (by content) are cached. Nested -r files are relative
    to the file naming them, requirement paths to the code folder (pip's rules)."""
    sha = "a" * 40
    write(tmp_path, {
        "envs/requirements.txt": f"""
            -r ../common.txt
            -c constraints.txt
            --find-links ./wheels
            -e ./libs/edit
            ./libs/plain
            plain2 @ file://{tmp_path}/libs/plain2
            ./dist/tool-1.0-py3-none-any.whl
            numpy==1.26 ; python_version >= "3.9"
            lib @ git+https://github.com/o/lib@{sha}
            lib2 @ git+https://github.com/o/lib2@main
            https://example.com/pkg-1.0.tar.gz
            """,
        "common.txt": "requests[socks]>=2\n-e git+https://github.com/o/x#egg=x\n",
        "envs/constraints.txt": "numpy<2\n",
        "envs/wheels/w-1.0-py3-none-any.whl": "wheel bytes",
        "dist/tool-1.0-py3-none-any.whl": "tool bytes",
        "libs/plain/setup.py": "", "libs/edit/setup.py": "", "libs/plain2/setup.py": ""})
    split = read_split(str(tmp_path / "envs" / "requirements.txt"), str(tmp_path), {})
    assert [line for line, _ in split.fresh] == [
        "-e git+https://github.com/o/x#egg=x", "-e ./libs/edit", "./libs/plain",
        f"plain2 @ file://{tmp_path}/libs/plain2", "lib2 @ git+https://github.com/o/lib2@main"]
    assert [line for line, _ in split.cached] == [
        "requests[socks]>=2", "./dist/tool-1.0-py3-none-any.whl", 'numpy==1.26 ; python_version >= "3.9"',
        f"lib @ git+https://github.com/o/lib@{sha}", "https://example.com/pkg-1.0.tar.gz"]
    assert [line for line, _ in split.options] == [
        f"-c {tmp_path}/envs/constraints.txt", f"--find-links {tmp_path}/envs/wheels"]  # as pip resolves them
    assert dict(split.fresh)["./libs/plain"] == "line 6 of envs/requirements.txt"

    def key_after(change):
        change()
        return read_split(str(tmp_path / "envs" / "requirements.txt"), str(tmp_path), {}).key

    key = split.key
    assert key_after(lambda: write(tmp_path, {"libs/plain/mod.py": "changed"})) == key  # installed afresh anyway
    for rel in ("common.txt", "envs/constraints.txt", "envs/wheels/w-1.0-py3-none-any.whl",
                "dist/tool-1.0-py3-none-any.whl"):
        changed = key_after(lambda: write(tmp_path, {rel: open(tmp_path / rel).read() + "numpy!=1.5\n"}))
        assert changed != key, rel  # the cached environment depends on each of these
        key = changed


def test_a_python_project_is_a_folder_pip_can_install(tmp_path):
    assert not is_project(str(tmp_path))
    (tmp_path / "pyproject.toml").write_text("[tool.black]\nline-length = 100\n")
    assert not is_project(str(tmp_path))  # only tool settings: not a package (uv agrees)
    (tmp_path / "pyproject.toml").write_text('[tool.black]\n\n[build-system]\nrequires = ["hatchling"]\n')
    assert is_project(str(tmp_path))
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    assert is_project(str(tmp_path))


def test_a_pip_failure_line_carries_pips_own_error():
    result = subprocess.CompletedProcess([], 1, "Looking in links: /w\n",
                                         "ERROR: Invalid requirement: '../libs/x' (from envs/r.txt line 1)\n"
                                         "Hint: It looks like a path. File '../libs/x' does not exist.\n")
    first, *rest = job_env.pip_failure("pip install -r envs/r.txt", result).splitlines()
    assert first == ("pip install -r envs/r.txt failed (exit 1): ERROR: Invalid requirement: '../libs/x' "
                     "(from envs/r.txt line 1)")
    assert rest[-1].startswith("Hint: It looks like a path")


# --- real pip -------------------------------------------------------------------------------------

READS_LIBS = """
    from aws_train_remote import training_main
    def main(args):
        import atrtinylib, liba, libb
        print("job sees", liba.VALUE, libb.VALUE, "tinylib", atrtinylib.__version__)
    if __name__ == "__main__":
        training_main(main)
    """


def test_local_lines_changed_between_two_local_jobs_are_the_new_code(tmp_path):
    """Item 3: `-e ./libs/liba` failed the second job (its editable install pointed into the first
    job's deleted code folder) and `./libs/libb` ran the first job's code after it changed; a
    requirements file in a subfolder with lines relative to the code folder failed in local mode
    (pip ran from the subfolder). Now pip runs from the code folder, as in the container, the local
    lines are installed afresh each job, and the rest (a wheel from the subfolder's line) is cached."""
    proj = tmp_path / "proj"
    requirements = "-r ../common.txt\n-e ./libs/liba\n./wheels/atrtinylib-1.0-py3-none-any.whl\n"
    write(proj, {"envs/requirements.txt": requirements,
                 "common.txt": "./libs/libb\n", **under("libs/liba", package("liba", "a1")),
                 **under("libs/libb", package("libb", "b1"))})
    (proj / "wheels").mkdir()
    make_wheel(proj / "wheels", "1.0")
    write_script(proj, READS_LIBS)
    env = dict(os.environ, PYTHONPATH=REPO, **OFFLINE_PIP)

    def local():
        return subprocess.run([sys.executable, "train.py", "--sagemaker-run", "local", "--sagemaker-requirements",
                               "envs/requirements.txt"], cwd=proj, env=env, capture_output=True, text=True, timeout=240)

    first = local()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[algo-1] job sees a1 b1 tinylib 1.0" in first.stdout
    write(proj, {"libs/liba/liba/__init__.py": "VALUE = 'a2'\n", "libs/libb/libb/__init__.py": "VALUE = 'b2'\n"})
    second = local()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "[algo-1] job sees a2 b2 tinylib 1.0" in second.stdout
    assert "(cached)" in second.stdout + second.stderr  # the wheel's environment: reused, only local lines installed

    write(proj, {"envs/requirements.txt": "../libs/liba\n"})  # relative to the file: pip does not read it so
    third = local()  # issue 18.7: refused at launch (pip, from the code folder, would fail in the job)
    assert third.returncode == 2 and third.stderr.count("\n") == 1 and "local job" not in third.stdout, third.stderr
    assert ("--sagemaker-requirements=../libs/liba: line 1 of envs/requirements.txt names ../libs/liba: read from "
            "the source folder (where pip runs), it lies outside the source folder") in third.stderr


def test_a_src_layout_project_is_installed_and_the_users_editable_install_hides_nothing(tmp_path):
    """Item 4: the job could not `import mypkg` (a src/ layout), while local mode passed only because
    it saw the user's own editable install. Now the project is installed in the job, and a job whose
    source folder is not the project (scripts/) fails in local mode as it would on SageMaker, whether
    the user's environment has the package as an editable install or on PYTHONPATH."""
    proj = tmp_path / "proj"
    write(proj, package("mypkg", "from the job", src=True))
    script = """
        import mypkg  # the user's environment has it: `pip install -e .`
        from aws_train_remote import training_main
        def main(args):
            print("mypkg at", mypkg.__file__)
        if __name__ == "__main__":
            training_main(main)
        """
    write_script(proj, script)
    (proj / "scripts").mkdir()
    write_script(proj / "scripts", script)
    python = user_venv(tmp_path / "uservenv")
    env = dict(os.environ, PYTHONPATH=REPO, **OFFLINE_PIP)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(proj)], env=env, check=True,
                   capture_output=True)

    result = subprocess.run([python, "train.py", "--sagemaker-run", "local"], cwd=proj, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    where = next(line for line in result.stdout.splitlines() if "mypkg at" in line).split("mypkg at ")[1]
    assert ".atr-job-env" in where and str(proj) not in where  # the job's own install, not the user's tree
    assert "pip install . (the code folder is a Python project)" in result.stdout

    # nor does a PYTHONPATH in the user's shell reach the job (a container has only the request's)
    shell = dict(env, PYTHONPATH=os.pathsep.join([REPO, str(proj / "src")]))
    hidden = subprocess.run([python, "train.py", "--sagemaker-run", "local"], cwd=proj / "scripts", env=shell,
                            capture_output=True, text=True, timeout=240)
    assert hidden.returncode != 0
    assert "ModuleNotFoundError: No module named 'mypkg'" in hidden.stderr


def test_the_project_is_installed_in_the_sandbox(tmp_path, sandbox, monkeypatch):
    for key, value in OFFLINE_PIP.items():
        monkeypatch.setenv(key, value)  # the sandbox runs its jobs with its own environment
    write(tmp_path, package("mypkg", "sandboxed", src=True))
    write_script(tmp_path, """
        from aws_train_remote import training_main
        def main(args):
            import mypkg
            print("mypkg says", mypkg.VALUE)
        if __name__ == "__main__":
            training_main(main)
        """)
    result = subprocess.run([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE],
                            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[algo-1] mypkg says sandboxed" in result.stdout


def test_in_a_container_pip_runs_in_the_code_folder_and_installs_the_project(tmp_path):
    """The runtime as SageMaker runs it (no job environments): the image's Python gets the project and
    the requirements in one `pip install -r envs/requirements.txt .` from the code folder, as the
    toolkit's `pip install . -r requirements.txt`; a failure's line carries pip's error."""
    image_python = user_venv(tmp_path / "image")  # stands in for the image's Python: pip installs into it
    files = {**package("mypkg", "p1", src=True), **under("libs/liba", package("liba", "a1")),
             "envs/requirements.txt": "./libs/liba\n",
             "train.py": "import liba, mypkg\nprint('container sees', liba.VALUE, mypkg.VALUE)\n"}
    env = dict(os.environ, PYTHONPATH=REPO, **OFFLINE_PIP)
    env.pop(job_env.ENVS_ENV, None)

    def run(folder, requirements_text):
        job = JobRoot(tmp_path / folder / "opt" / "ml")
        job.code({**files, "envs/requirements.txt": requirements_text})
        job.configure(hps={contract.HP_REQUIREMENTS: json.dumps("envs/requirements.txt")})
        result = subprocess.run([image_python, "-m", "aws_train_remote.runtime"], cwd=str(tmp_path),
                                env=dict(env, SAGEMAKER_BASE_DIR=job.root), capture_output=True, text=True,
                                timeout=240)
        return job, result

    _, good = run("good", "./libs/liba\n")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "container sees a1 p1" in good.stdout
    assert "pip install -r envs/requirements.txt . (the code folder is a Python project)" in good.stderr

    job, bad = run("bad", "../libs/liba\n")
    assert bad.returncode == 1
    with open(job.layout.failure_file) as fh:
        first = fh.readline()
    assert first.startswith("ClientError: pip install -r envs/requirements.txt . failed (exit 1): "
                            "ERROR: Invalid requirement: '../libs/liba'"), first
