"""Archive extraction that is safe on any Python >= 3.8 (issue 7, item 8): images carry Pythons
without tarfile.data_filter, so our own checks must stop a link chain on their own."""
import io
import os
import tarfile

import boto3
import pytest
from conftest import run_python
from runtime_job import JobRoot

from aws_train_remote.runtime import safe_tar


def chain_archive(path, extra=()):
    """a -> . ; a/b -> .. ; a/b/x: each name looks harmless before anything is on disk."""
    with tarfile.open(path, "w:gz") as tar:
        for name, target in (("a", "."), ("a/b", "..")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for name, data in (("a/b/x", b"escaped"), *extra):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def link_archive(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, value
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return str(path)


@pytest.fixture(params=["with data_filter", "without data_filter"])
def python_kind(request, monkeypatch):
    if request.param == "without data_filter":  # as on Python < 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


def test_link_chain_is_refused_and_writes_nothing_outside(tmp_path, python_kind):
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(safe_tar.UnsafeArchive, match="escapes"):
        safe_tar.safe_extract(chain_archive(tmp_path / "chain.tar.gz"), str(dest))
    assert not (tmp_path / "deep" / "x").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("members,why", [
    ([("l", "sym", "/etc")], "absolute link"),
    ([("l", "sym", "../outside")], "link escapes"),
    ([("d/l", "sym", "../.."), ("d/l/f", "file", b"x")], "link escapes"),
    ([("l", "sym", "sub"), ("l", "sym", "..")], "replaces a link"),  # re-aiming a link already extracted
    ([("l", "sym", "t"), ("l", "file", b"x")], "replaces a link"),  # writing through a link
    ([("../x", "file", b"x")], "unsafe path"),
    ([("/abs", "file", b"x")], "unsafe path"),
])
def test_each_escape_is_refused(tmp_path, python_kind, members, why):
    dest = tmp_path / "dest"
    with pytest.raises(safe_tar.UnsafeArchive, match=why):
        safe_tar.safe_extract(link_archive(tmp_path / "a.tar.gz", members), str(dest))
    assert sorted(os.listdir(tmp_path)) == ["a.tar.gz", "dest", "home"]


def test_links_that_stay_inside_are_kept(tmp_path, python_kind):
    archive = link_archive(tmp_path / "ok.tar.gz", [("data/v1.bin", "file", b"w"), ("latest", "sym", "data/v1.bin"),
                                                    ("data/up", "sym", "..")])
    assert safe_tar.safe_extract(archive, str(tmp_path / "dest")) == 3
    assert (tmp_path / "dest" / "latest").read_bytes() == b"w"


def test_extract_into_is_all_or_nothing(tmp_path, python_kind):
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "old.json").write_text("{}")
    with pytest.raises(safe_tar.UnsafeArchive):
        safe_tar.extract_into(chain_archive(tmp_path / "chain.tar.gz", extra=[("first.json", b"1")]), str(dest))
    assert sorted(os.listdir(dest)) == ["old.json"]
    assert sorted(os.listdir(tmp_path)) == ["chain.tar.gz", "home", "model"]


def test_refused_code_bundle_writes_the_failure_file_on_an_old_python(tmp_path):
    job = JobRoot(tmp_path / "opt" / "ml")
    folder = job.layout.channel_dir("code")
    os.makedirs(folder)
    chain_archive(os.path.join(folder, "sourcedir.tar.gz"))
    job.configure()
    old_python = ("import sys, tarfile; del tarfile.data_filter; "
                  "from aws_train_remote.runtime.bootstrap import main; sys.exit(main())")
    result = run_python(["-c", old_python], cwd=tmp_path, env={"SAGEMAKER_BASE_DIR": job.root})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    reason = open(job.layout.failure_file).read()
    assert reason.startswith("ClientError: code bundle refused: link escapes the destination: 'a/b' -> '..'")
    assert not (tmp_path / "opt" / "ml" / "x").exists()


def test_download_refuses_an_unsafe_model_in_one_line_and_writes_nothing(tmp_path, aws):
    from conftest import write_script

    write_script(tmp_path, "from aws_train_remote import training_main\ntraining_main(lambda a: None)\n")
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role",
                         "arn:aws:iam::123456789012:role/R", "--sagemaker-wait", "no", "--sagemaker-job-name",
                         "evil-model"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    archive = chain_archive(tmp_path / "model.tar.gz")
    boto3.client("s3", region_name="us-east-1").upload_file(
        archive, "sagemaker-us-east-1-123456789012", "aws-train-remote/output/evil-model/output/model.tar.gz")
    result = run_python(["-m", "aws_train_remote.cli.main", "download", "evil-model", "--dest", "dl"], cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to unpack" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "dl").exists() or os.listdir(tmp_path / "dl") == []
    assert not (tmp_path / "x").exists()
