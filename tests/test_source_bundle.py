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
