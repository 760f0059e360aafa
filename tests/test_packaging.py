"""Issue 21.1: the package installs as users install it and is ready to publish. `python -m build`
makes an sdist and a wheel (no isolation: everything it needs is in the test extra, so no
download), `twine check` passes, the sdist holds what its test suite reads (MANIFEST.in: tests/
with its projects, demo/, scripts/, docs/, bench/), the wheel holds only the package, and the
installed wheel's `--help` names the documentation site, whose address is one constant that the
metadata repeats."""
import configparser
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser as MetadataParser

from conftest import REPO

from aws_train_remote._version import DOCS_URL, __version__

# What the sdist must hold beyond the package: what the tests read (conftest and the real projects,
# the demo and its data, the scripts the README runs, the docs the suite builds) and the project's
# own texts. MANIFEST.in grafts these folders whole; the walk below checks every file of them.
GRAFTED = ("tests", "demo", "scripts", "docs", "bench")
REQUIRED = ("README.md", "CHANGELOG.md", "setup.cfg", "pyproject.toml", "MANIFEST.in", "tests/conftest.py",
            "tests/projects/hf_lora/train.py", "demo/train.py", "demo/data/train.csv", "scripts/bootstrap.sh",
            "docs/conf.py", "docs/_static/flow.svg")
# What a build, a test run, the demo or the docs build leave in a work tree, and MANIFEST.in leaves out.
LEFT_BEHIND = ("__pycache__", ".pytest_cache", "build", "dist", "_build", "output", ".atr-cache")
GENERATED = ("docs/reference/cli-generated.md",)


def _checkout(tmp_path):
    """A copy of the work tree as a clone has it: building in place would write build/ and
    egg-info into the tree that other tests (and people) are using."""
    def ignore(folder, names):
        rel = os.path.relpath(folder, REPO)
        return {n for n in names if n in LEFT_BEHIND or n.startswith(".") or n.endswith((".egg-info", ".pyc"))
                or os.path.normpath(os.path.join(rel, n)) in GENERATED}

    tree = tmp_path / "src"
    shutil.copytree(REPO, tree, ignore=ignore)
    return tree


def _files_under(tree, folders):
    out = set()
    for folder in folders:
        for root, dirs, files in os.walk(tree / folder):
            out |= {os.path.relpath(os.path.join(root, f), tree) for f in files}
    return out


def test_documentation_address_is_one_constant():
    """setup.cfg cannot read DOCS_URL from the package: the test keeps the two in step."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    urls = dict(line.split(" = ", 1) for line in cfg["metadata"]["project_urls"].strip().splitlines())
    assert urls["Documentation"] == DOCS_URL
    assert urls["Changelog"] == f"{DOCS_URL}/changelog.html"
    assert DOCS_URL.startswith("https://") and not DOCS_URL.endswith("/")


def test_help_names_the_documentation_not_a_readme(tmp_path):
    """A pip user has no README.md or docs/ folder: `aws-train-remote --help`, each subcommand's
    and a script's generated --help name the site instead."""
    from aws_train_remote.cli.main import build_parser as cli_parser
    from aws_train_remote.spec.flags import ScriptDefinition
    from aws_train_remote.spec.flags import build_parser as script_parser

    cli = cli_parser()
    helps = [cli.format_help()]
    helps += [p.format_help() for p in next(a for a in cli._actions if hasattr(a, "choices") and a.choices).choices.values()]
    script = ScriptDefinition(script=str(tmp_path / "train.py"), inputs=(("train", "data"),))
    helps += [script_parser(script, {}).format_help(), script_parser(script, {}, show_all=True).format_help()]
    for text in helps:
        assert DOCS_URL in text, text
        assert "README" not in text and "docs/" not in text.replace(DOCS_URL, ""), text
    assert f"{DOCS_URL}/flags.html" in helps[-1]


def test_sdist_and_wheel_build_check_and_install(tmp_path):
    tree = _checkout(tmp_path)
    dist = tmp_path / "dist"
    # sdist, then the wheel from the unpacked sdist (build's default): the sdist must build too
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(tree)],
                           capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    sdist, = dist.glob("*.tar.gz")
    wheel, = dist.glob("*.whl")
    assert sdist.name == f"aws_train_remote-{__version__}.tar.gz"
    assert wheel.name == f"aws_train_remote-{__version__}-py3-none-any.whl"

    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    with tarfile.open(sdist) as archive:
        top = f"aws_train_remote-{__version__}/"
        in_sdist = {m.name[len(top):] for m in archive.getmembers() if m.isfile()}
    missing = sorted((set(REQUIRED) | _files_under(tree, GRAFTED)) - in_sdist)
    assert not missing, f"MANIFEST.in leaves out what the tests need: {missing[:20]}"
    assert not [n for n in in_sdist if "__pycache__" in n or n.endswith(".pyc") or n in GENERATED]

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = MetadataParser().parsestr(archive.read(f"aws_train_remote-{__version__}.dist-info/METADATA").decode())
    outside = [n for n in names if not n.startswith(("aws_train_remote/", f"aws_train_remote-{__version__}.dist-info/"))]
    assert not outside, outside
    assert "aws_train_remote/runtime/bootstrap.py" in names
    assert metadata["Version"] == __version__
    assert f"Documentation, {DOCS_URL}" in metadata.get_all("Project-URL")
    assert {"sandbox", "mlflow", "docs"} <= set(metadata.get_all("Provides-Extra"))

    # installed as a user installs it (no editable link to this tree): the console script runs and
    # its --help names the site
    target = tmp_path / "installed"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                                "--disable-pip-version-check", "--target", str(target), str(wheel)],
                               capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    ran = subprocess.run([str(target / "bin" / "aws-train-remote"), "--help"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert ran.returncode == 0 and DOCS_URL in ran.stdout, ran.stdout + ran.stderr
    where = subprocess.run([sys.executable, "-c", "import aws_train_remote; print(aws_train_remote.__file__)"],
                           capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp_path))
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
