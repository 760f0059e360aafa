"""The hash cache, the progress bar, git tags, and what never leaks into a request."""
import io
import json
import os
import subprocess
import sys

from conftest import run_python, write_script

from aws_train_remote.aws.s3 import Progress
from aws_train_remote.plan import hashcache


def later():
    """A clock a minute ahead: files written by the test are no longer 'just touched'."""
    import time

    return time.time_ns() + 60 * 10**9


def test_hash_cache_skips_unchanged_files(tmp_path, monkeypatch):
    calls = []
    real = hashcache.sha256_file
    monkeypatch.setattr(hashcache, "sha256_file", lambda p: calls.append(p) or real(p))
    data = tmp_path / "f.bin"
    data.write_bytes(b"abc")
    cache = hashcache.HashCache(str(tmp_path / "cache.json"), clock_ns=later)
    first, _ = cache(str(data))
    cache.save()
    again = hashcache.HashCache(str(tmp_path / "cache.json"), clock_ns=later)
    assert again(str(data))[0] == first and len(calls) == 1
    data.write_bytes(b"abcd")
    assert again(str(data))[0] != first and len(calls) == 2


def test_hash_cache_sees_an_in_place_edit_that_keeps_size_and_mtime(tmp_path):
    """Issue 7.2: `cp -p`, `touch -r`, `tar x` restore the mtime; ctime still moves."""
    data = tmp_path / "f.bin"
    data.write_bytes(b"old contents")
    st = os.stat(data)
    cache = hashcache.HashCache(str(tmp_path / "cache.json"), clock_ns=later)
    old, _ = cache(str(data))
    cache.save()
    with open(data, "r+b") as fh:  # same inode, same size
        fh.write(b"new contents")
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back, as cp -p does
    assert os.stat(data).st_size == st.st_size and os.stat(data).st_mtime_ns == st.st_mtime_ns
    fresh, _ = hashcache.HashCache(str(tmp_path / "cache.json"), clock_ns=later)(str(data))
    assert fresh == hashcache.sha256_file(str(data)) != old


def test_hash_cache_never_trusts_a_file_touched_just_now(tmp_path):
    """On a 2-second-timestamp filesystem an edit in the same tick keeps every stamp."""
    data = tmp_path / "f.bin"
    data.write_bytes(b"abc")
    cache = hashcache.HashCache(str(tmp_path / "cache.json"))
    cache(str(data))
    cache.save()
    assert not (tmp_path / "cache.json").exists()  # nothing cached: re-hashed next time


def test_hash_stable_refuses_a_file_that_keeps_changing(tmp_path):
    data = tmp_path / "f.bin"
    data.write_bytes(b"a")

    def growing(path):
        with open(path, "ab") as fh:
            fh.write(b"x")
        return "sha"

    import pytest

    with pytest.raises(hashcache.FileChanged):
        hashcache.hash_stable(str(data), growing)


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal():
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(2_000_000, stream, clock=iter(range(100)).__next__)
        bar(1_000_000)
        bar(1_000_000)
        bar.close()
    assert "\ruploading" in tty.getvalue() and "100.0%" in tty.getvalue()
    assert pipe.getvalue() == ""


def dry_run_request(tmp_path, env=None):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", "R",
                         "--sagemaker-region", "us-east-1"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return result


def test_git_commit_and_dirty_flag_are_tags_but_never_the_remote(tmp_path):
    write_script(tmp_path, """
        from aws_train_remote import training_main
        training_main(lambda args: None)
        """)
    git = ["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git[:3] + ["remote", "add", "origin", "https://user:TOKEN123@example.com/repo.git"], check=True)
    subprocess.run(git + ["add", "train.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    commit = subprocess.run(git[:3] + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()

    def tags():
        out = dry_run_request(tmp_path).stdout
        assert "TOKEN123" not in out
        return {t["Key"]: t["Value"] for t in json.loads(out)["request"]["Tags"]}

    assert tags()["aws-train-remote:git-commit"] == commit
    assert tags()["aws-train-remote:git-dirty"] == "false"
    (tmp_path / "train.py").write_text((tmp_path / "train.py").read_text() + "\n# edit\n")
    assert tags()["aws-train-remote:git-dirty"] == "true"


def test_credentials_never_appear_in_the_request(tmp_path):
    write_script(tmp_path, """
        from aws_train_remote import training_main
        training_main(lambda args: None)
        """)
    env = {"AWS_ACCESS_KEY_ID": "AKIASECRETKEYID12345", "AWS_SECRET_ACCESS_KEY": "very/secret+value",
           "AWS_SESSION_TOKEN": "session-token-secret"}
    result = dry_run_request(tmp_path, env)
    for secret in env.values():
        assert secret not in result.stdout and secret not in result.stderr


def test_console_script_version_and_help():
    import shutil

    from aws_train_remote import __version__

    exe = shutil.which("aws-train-remote", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "aws_train_remote.cli.main"]  # same entry point
    version = subprocess.run(cmd + ["--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"aws-train-remote {__version__}"
    help_text = subprocess.run(cmd + ["--help"], capture_output=True, text=True).stdout
    for command in ("list", "status", "logs", "attach", "stop", "download", "sandbox"):
        assert command in help_text
