"""Choosing and packing the source: ignore files, the never-shipped list, symlinks, determinism."""
import io
import os
import subprocess
import tarfile

import pytest

from aws_train_remote.errors import UsageError
from aws_train_remote.plan import ignore
from aws_train_remote.plan.source import (
    LARGE_BUNDLE_BYTES,
    Selection,
    SourceFile,
    bundle_warnings,
    select_files,
    write_bundle,
)


def tree(root, files):
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)


def names(root, **kw):
    return [f.relpath for f in select_files(str(root), **kw).files]


@pytest.mark.parametrize("pattern,path,is_dir,ignored", [
    ("*.log", "a/b/x.log", False, True),
    ("/build", "build", True, True),
    ("/build", "src/build", True, False),
    ("data/", "data", False, False),
    ("data/", "x/data", True, True),
    ("docs/**/*.md", "docs/a/b/c.md", False, True),
    ("**/tmp", "a/tmp", True, True),
    ("sub/*.txt", "sub/a.txt", False, True),
    ("sub/*.txt", "other/sub/a.txt", False, False),
    ("file[0-9].csv", "file7.csv", False, True),
])
def test_gitignore_patterns(pattern, path, is_dir, ignored):
    assert ignore.is_ignored([("", ignore.parse_rules(pattern))], path, is_dir) is ignored


def test_ignore_files_nested_and_negation(tmp_path):
    tree(tmp_path, {"train.py": "", "big.ckpt": "", "keep.ckpt": "", "notes.tmp": "",
                    "sub/a.py": "", "sub/cache.bin": "", "sub/.gitignore": "*.bin\n",
                    ".gitignore": "*.ckpt\n!keep.ckpt\n", ".sagemakerignore": "*.tmp\n"})
    assert names(tmp_path) == [".gitignore", ".sagemakerignore", "keep.ckpt", "sub/.gitignore", "sub/a.py", "train.py"]


def test_parent_gitignore_applies_inside_a_repository(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    tree(tmp_path, {".gitignore": "project/output/\n*.pyc\n", "project/train.py": "", "project/output/m.bin": ""})
    assert names(tmp_path / "project") == ["train.py"]


def test_secrets_environments_and_vcs_never_ship(tmp_path):
    tree(tmp_path, {"train.py": "", ".env": "K=1", ".env.prod": "K=2", "server.pem": "", "id_rsa": "", "id_ed25519.pub": "",
                    ".aws/credentials": "", ".git/config": "", "myenv/pyvenv.cfg": "", "myenv/lib/x.py": "",
                    "__pycache__/a.pyc": "", ".netrc": "", "credentials": "", "src/mod.py": ""})
    selection = select_files(str(tmp_path))
    assert [f.relpath for f in selection.files] == ["src/mod.py", "train.py"]
    assert {".env", ".env.prod", "server.pem", "id_rsa", "id_ed25519.pub", ".aws/", ".git/", "myenv/",
            "__pycache__/", ".netrc", "credentials"} <= {rel for rel, _ in selection.skipped}


SECRETS = {".envrc": "export K=1", ".boto": "[Credentials]", ".s3cfg": "access_key=x", ".npmrc": "//r/:_authToken=x",
           ".netrc": "machine m", ".pypirc": "[pypi]", "service-account-prod.json": "{}", "credentials.json": "{}",
           ".config/gcloud/application_default_credentials.json": "{}", ".kube/config": "token: x",
           ".docker/config.json": "{}", "nested/.env": "K=1", "keys/deploy.pem": "-----"}


def test_issue7_secret_files_never_ship_and_are_listed_with_a_reason(tmp_path):
    tree(tmp_path, {"train.py": "", "src/mod.py": "", **SECRETS})
    selection = select_files(str(tmp_path))
    assert [f.relpath for f in selection.files] == ["src/mod.py", "train.py"]
    reasons = dict(selection.skipped)
    for path in SECRETS:
        top = path.split("/")
        shown = next((("/".join(top[:i + 1]) + "/") for i in range(len(top) - 1)
                      if "/".join(top[:i + 1]) + "/" in reasons), path)
        assert shown in reasons, (path, reasons)


def test_a_link_is_judged_by_its_target(tmp_path):
    tree(tmp_path, {"train.py": "", ".env": "AWS_SECRET_ACCESS_KEY=abc", ".aws/credentials": "[default]"})
    os.symlink(".env", tmp_path / "settings.txt")
    os.symlink(".aws", tmp_path / "conf")
    selection = select_files(str(tmp_path))
    assert [f.relpath for f in selection.files] == ["train.py"]
    reasons = dict(selection.skipped)
    assert reasons["settings.txt"] == "link to .env: secret (credentials or keys)"
    assert reasons["conf/"] == "link to .aws: credentials folder"


def test_an_explicit_include_in_sagemakerignore_ships_it(tmp_path):
    tree(tmp_path, {"train.py": "", "model.key": "not a secret, a lookup table", ".sagemakerignore": "!model.key\n",
                    ".gitignore": "!.env\n", ".env": "K=1"})
    names_shipped = [f.relpath for f in select_files(str(tmp_path)).files]
    assert "model.key" in names_shipped and ".env" not in names_shipped  # only .sagemakerignore can say so


def test_symlink_inside_is_followed_and_escaping_one_refused(tmp_path):
    root = tmp_path / "src"
    tree(root, {"train.py": "", "lib/util.py": "u"})
    os.symlink(root / "lib", root / "lib_link")
    assert "lib_link/util.py" in names(root)
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", root / "escape.txt")
    with pytest.raises(UsageError, match="escape.txt: symlink escapes the source folder"):
        select_files(str(root))


def test_symlink_loop_terminates(tmp_path):
    tree(tmp_path, {"train.py": "", "a/x.py": ""})
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")
    assert names(tmp_path) == ["a/x.py", "train.py"]


def test_excluded_folders_are_left_out(tmp_path):
    tree(tmp_path, {"train.py": "", "data/x.csv": "", "output/model/m.bin": ""})
    assert names(tmp_path, exclude=[str(tmp_path / "data"), str(tmp_path / "output")]) == ["train.py"]


def test_bundle_is_deterministic(tmp_path):
    tree(tmp_path, {"train.py": "print(1)\n", "b/c.py": "x = 2\n"})
    first, second = io.BytesIO(), io.BytesIO()
    files = select_files(str(tmp_path)).files
    digest = write_bundle(files, first)
    os.utime(tmp_path / "train.py", (1, 1))  # mtimes do not matter
    assert write_bundle(select_files(str(tmp_path)).files, second) == digest
    assert first.getvalue() == second.getvalue()
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as tar:
        info = tar.getmember("train.py")
        assert (info.mtime, info.uid, info.gid, tar.getnames()) == (0, 0, 0, ["b/c.py", "train.py"])


def test_large_bundle_warning_lists_largest_files():
    files = (SourceFile("weights.bin", "/x", LARGE_BUNDLE_BYTES, False), SourceFile("train.py", "/y", 10, False))
    [warning] = bundle_warnings(Selection(files, ()))
    assert "weights.bin (52.4 MB)" in warning and ".sagemakerignore" in warning
    assert bundle_warnings(Selection(files[1:], ())) == []


def test_a_python_projects_build_output_is_left_out(tmp_path):
    """A stale setuptools build/ shipped beside setup.py was installed instead of the changed code
    (the archive's equal times read as "up to date"); a folder named build elsewhere is data."""
    tree(tmp_path, {"train.py": "", "libs/other/setup.py": "", "libs/other/other/__init__.py": "V = 2",
                    "libs/other/build/lib/other/__init__.py": "V = 1", "libs/other/other.egg-info/PKG-INFO": "",
                    "pkg/pyproject.toml": "", "pkg/build/x.py": "", "data/build/keep.txt": ""})
    selection = select_files(str(tmp_path))
    shipped = [f.relpath for f in selection.files]
    assert "libs/other/other/__init__.py" in shipped and "data/build/keep.txt" in shipped
    assert not any("/build/lib/" in p or "egg-info" in p or p.startswith("pkg/build/") for p in shipped)
    assert ("libs/other/build/", ignore.BUILD_OUTPUT) in selection.skipped


def _needs_spec(root, requirements="requirements.txt", script="train.py"):
    from types import SimpleNamespace

    return SimpleNamespace(source_dir=str(root), script=script, requirements=requirements, environment=())


def _shipped_selection(root, **kw):
    from aws_train_remote.plan import bundle_needs

    found = bundle_needs.needs(_needs_spec(root, **kw))
    return bundle_needs.ship_needs(select_files(str(root)), found, str(root))


def test_what_the_requirements_name_ships_although_an_ignore_rule_matches_it(tmp_path):
    """Issue 18.7 (D5): GitHub's Python .gitignore ignores dist/; a wheel, a --find-links folder, an
    editable project, a nested -r/-c file the requirements name were left out and pip failed in the
    job. They ship; the rest of an ignored folder stays out; each is listed with why."""
    tree(tmp_path, {"train.py": "", ".gitignore": "dist/\n*.whl\nlibs/\nenvs/\n",
                    "requirements.txt": "dist/a-1.0-py3-none-any.whl\n--find-links ./wheels\n-e ./libs/mylib\n"
                                        "-r envs/more.txt\n-e .\n",
                    "dist/a-1.0-py3-none-any.whl": "", "dist/old-0.1-py3-none-any.whl": "",
                    "wheels/b-2.0-py3-none-any.whl": "", "libs/mylib/setup.py": "", "libs/mylib/.env": "K=1",
                    "libs/other/x.py": "", "envs/more.txt": "-c cons.txt\n", "envs/cons.txt": "b==2.0\n"})
    selection = _shipped_selection(tmp_path)
    shipped = [f.relpath for f in selection.files]
    assert {"dist/a-1.0-py3-none-any.whl", "wheels/b-2.0-py3-none-any.whl", "libs/mylib/setup.py",
            "envs/more.txt", "envs/cons.txt"} <= set(shipped), shipped
    assert not any(p.startswith(("dist/old", "libs/other")) or p.endswith(".env") for p in shipped), shipped
    reasons = dict(selection.shipped)
    assert reasons["dist/a-1.0-py3-none-any.whl"] == "line 1 of requirements.txt names it"
    assert reasons["libs/mylib/"] == "line 3 of requirements.txt names it"
    assert reasons["envs/cons.txt"] == "line 1 of envs/more.txt names it"
    kept = dict(selection.skipped)
    assert kept["dist/"] == ignore.IGNORED_BY_RULE and kept["libs/mylib/.env"].startswith("secret")


def test_an_entry_point_an_ignore_rule_matches_ships(tmp_path):
    tree(tmp_path, {"train.py": "", "helper.py": "", ".sagemakerignore": "*.py\n"})
    selection = _shipped_selection(tmp_path, requirements=None)
    assert [f.relpath for f in selection.files] == [".sagemakerignore", "train.py"]
    assert selection.shipped == (("train.py", "it is the entry point"),)


@pytest.mark.parametrize("files,kw,expected", [
    ({"reqs.env": "x==1\n"}, {"requirements": "reqs.env"},
     "--sagemaker-requirements=reqs.env: it is the requirements file, but the code bundle leaves reqs.env out (secret"),
    ({"requirements.txt": "-r base.env\n", "base.env": "x==1\n"}, {},
     "--sagemaker-requirements=-r base.env: line 1 of requirements.txt names it, but the code bundle leaves "
     "base.env out (secret"),
    ({"requirements.txt": "./venv/wheels/x-1.0-py3-none-any.whl\n", "venv/pyvenv.cfg": "",
      "venv/wheels/x-1.0-py3-none-any.whl": ""}, {}, "out (virtual environment)"),
    ({"requirements.txt": "-e ../outside\n"}, {}, "--sagemaker-requirements=-e ../outside: line 1 of requirements.txt "
     "names ../outside: read from the source folder (where pip runs), it lies outside the source folder, which is "
     "all the job receives; move it into the source folder, "
     "or drop the line and ship its folder as a dependency"),
    ({"requirements.txt": "mylib @ file:../outside\n"}, {}, "names ../outside: read from the source folder"),
    ({"requirements.txt": "-r ../shared/requirements.txt\n"}, {}, "read from the file that names it, it lies outside"),
    ({"requirements.txt": "--find-links ../outside\n"}, {}, "outside the source folder"),
    ({"requirements.txt": "./dist/missing-1.0-py3-none-any.whl\n"}, {}, "no such file or folder"),
])
def test_a_needed_path_the_job_could_never_read_is_refused(tmp_path, files, kw, expected):
    """A secret, an environment, a cache stays out even when the requirements name it (only a `!`
    line ships it, on purpose); a path outside the source folder never reaches the job."""
    (tmp_path / "outside").mkdir()
    root = tmp_path / "src"
    tree(root, {"train.py": "", **files})
    with pytest.raises(UsageError) as raised:
        _shipped_selection(root, **kw)
    assert expected in str(raised.value)


def test_paths_the_launcher_cannot_judge_are_left_to_pip(tmp_path):
    """An absolute path may be in the image, an unset ${VAR} is pip's to expand in the job, a
    --find-links folder that is not there only makes pip warn; names and URLs come from indexes."""
    tree(tmp_path, {"train.py": "", "requirements.txt": "/opt/wheels/x-1.0-py3-none-any.whl\n-e ${LIBS}/mylib\n"
                    "--find-links ./not-there\ntorch==2.1 ; python_version > '3.8'\ngit+https://h/r.git@main\n"
                    "https://h/x-1.0.tar.gz\n"})
    selection = _shipped_selection(tmp_path)
    assert [f.relpath for f in selection.files] == ["requirements.txt", "train.py"] and selection.shipped == ()


def test_a_gitignore_above_that_ignores_the_source_folder_itself_does_not_empty_the_bundle(tmp_path):
    """A monorepo's `scratch/` rule names the folder the user pointed at (the script's folder):
    the bundle is that folder, as before; its rules apply to what lies inside it."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    tree(tmp_path, {".gitignore": "scratch/\n*.log\n", "scratch/train.py": "", "scratch/helper.py": "",
                    "scratch/run.log": ""})
    assert names(tmp_path / "scratch") == ["helper.py", "train.py"]
