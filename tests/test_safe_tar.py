"""Archive extraction that is safe on any Python >= 3.8 (issue 7, item 8): images carry Pythons
without tarfile.data_filter, so our own checks must stop a link chain on their own. Unpacking into
a folder that holds the user's files loses none of them, all or nothing, Ctrl-C included (issue
17.7); an unsafe member of a model is left out and named, the rest delivered (issue 18.2)."""
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time

import boto3
import pytest
from conftest import REPO, run_python
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


def snapshot(root):
    """Everything under `root`: relative path -> 'dir', 'link:<target>' or the file's bytes."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            found[rel] = (f"link:{os.readlink(path)}" if os.path.islink(path) else "dir" if os.path.isdir(path)
                          else open(path, "rb").read())
    return found


def user_folder(tmp_path):
    """A destination as users have them: their own files, one named like a model file, a folder
    named like the model's, links named like model members that point elsewhere."""
    dest, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (dest / "data").mkdir(parents=True)
    elsewhere.mkdir()
    (dest / "README.md").write_text("the user's readme")
    (dest / "data" / "train.csv").write_text("the user's data")
    (dest / "notes.txt").write_text("kept")
    (elsewhere / "config.json").write_text("the user's config elsewhere")
    (dest / "config.json").symlink_to(elsewhere / "config.json")
    (dest / "tokenizer").symlink_to(elsewhere)
    return dest, elsewhere


def model_archive(path, members=(("README.md", b"model card"), ("data/weights.bin", b"w" * 64))):
    return link_archive(path, [(name, "file", body) for name, body in members])


def test_what_is_in_the_way_is_named_and_nothing_is_written(tmp_path):
    """Issue 17.7: a folder named like a member was deleted and a file overwritten."""
    dest, elsewhere = user_folder(tmp_path)
    before, outside = snapshot(dest), snapshot(elsewhere)
    archive = model_archive(tmp_path / "m.tar.gz", (("README.md", b"card"), ("data/weights.bin", b"w"),
                                                    ("config.json", b"{}"), ("tokenizer/vocab.txt", b"v")))
    with pytest.raises(safe_tar.PathsInTheWay) as refused:
        safe_tar.unpack_into(archive, str(dest))
    assert refused.value.paths == ("README.md", "config.json", "tokenizer")  # data/ merges: not in the way
    assert snapshot(dest) == before and snapshot(elsewhere) == outside


def test_a_merge_adds_files_and_deletes_nothing(tmp_path):
    dest, elsewhere = user_folder(tmp_path)
    before = snapshot(dest)
    done = safe_tar.unpack_into(model_archive(tmp_path / "m.tar.gz", (("data/weights.bin", b"w"), ("model.pt", b"m"))),
                                str(dest))
    assert done.files == 2 and done.replaced == () and done.skipped == ()
    assert snapshot(dest) == {**before, "data/weights.bin": b"w", "model.pt": b"m"}


def test_overwrite_replaces_only_the_archives_files_and_never_writes_through_a_link(tmp_path):
    dest, elsewhere = user_folder(tmp_path)
    before, outside = snapshot(dest), snapshot(elsewhere)
    archive = model_archive(tmp_path / "m.tar.gz", (("README.md", b"card"), ("data/weights.bin", b"w"),
                                                    ("config.json", b"{}"), ("tokenizer/vocab.txt", b"v")))
    done = safe_tar.unpack_into(archive, str(dest), overwrite=True)
    assert sorted(done.replaced) == ["README.md", "config.json", "tokenizer"]
    expected = {**before, "README.md": b"card", "data/weights.bin": b"w", "config.json": b"{}",
                "tokenizer": "dir", "tokenizer/vocab.txt": b"v"}
    assert snapshot(dest) == expected
    assert snapshot(elsewhere) == outside  # the links were replaced, their targets untouched
    assert not [n for n in os.listdir(dest) if n.startswith(".aws-train-remote")]


def test_overwrite_never_replaces_a_folder_by_a_file(tmp_path):
    dest, _ = user_folder(tmp_path)
    before = snapshot(dest)
    with pytest.raises(safe_tar.PathsInTheWay) as refused:
        safe_tar.unpack_into(model_archive(tmp_path / "m.tar.gz", (("data", b"a file"), ("new", b"n"))), str(dest),
                             overwrite=True)
    assert refused.value.folders == ("data",) and snapshot(dest) == before


def test_a_destination_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "model").write_text("mine")
    with pytest.raises(NotADirectoryError):
        safe_tar.unpack_into(model_archive(tmp_path / "m.tar.gz"), str(tmp_path / "model"))
    assert (tmp_path / "model").read_text() == "mine"


def test_a_missing_destination_appears_whole_with_the_usual_permissions(tmp_path):
    dest = tmp_path / "new" / "deep" / "model"
    assert safe_tar.unpack_into(model_archive(tmp_path / "m.tar.gz"), str(dest)).files == 2
    assert snapshot(dest) == {"README.md": b"model card", "data": "dir", "data/weights.bin": b"w" * 64}
    assert oct(dest.stat().st_mode & 0o777) == oct(0o777 & ~current_umask())
    with pytest.raises(safe_tar.UnsafeArchive):  # refused: the folders it made are gone again
        safe_tar.unpack_into(chain_archive(tmp_path / "chain.tar.gz"), str(tmp_path / "other" / "model"))
    assert not (tmp_path / "other").exists()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("fail_at", [1, 2, 4])
def test_a_move_that_fails_midway_undoes_the_moves_before_it(tmp_path, monkeypatch, fail_at):
    dest, elsewhere = user_folder(tmp_path)
    before, outside = snapshot(dest), snapshot(elsewhere)
    archive = model_archive(tmp_path / "m.tar.gz", (("README.md", b"card"), ("a.bin", b"a"), ("data/w.bin", b"w"),
                                                    ("z.bin", b"z")))
    real_rename, calls = os.rename, []

    def rename(source, target):
        calls.append(source)
        if len(calls) == fail_at:
            raise OSError(28, "No space left on device")
        return real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="No space"):
        safe_tar.unpack_into(archive, str(dest), overwrite=True)
    monkeypatch.undo()
    assert snapshot(dest) == before and snapshot(elsewhere) == outside


UNPACK = textwrap.dedent("""
    import os, signal, sys
    from aws_train_remote.runtime import safe_tar
    archive, dest, interrupt_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real_rename, calls = os.rename, []
    def rename(source, target):  # a real Ctrl-C (SIGINT to this process) in the middle of the merge
        calls.append(source)
        if len(calls) == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return real_rename(source, target)
    if interrupt_at:
        os.rename = rename
    print("ready", flush=True)
    try:
        safe_tar.unpack_into(archive, dest, overwrite=True)
    except KeyboardInterrupt:
        print("interrupted after", len(calls), "renames", flush=True)
        sys.exit(130)
""")


def many_members_archive(path, count):
    return model_archive(path, [(f"part-{i:03d}/shard.bin", b"s" * 512) for i in range(count)]
                         + [("README.md", b"card")])


def test_ctrl_c_in_the_middle_of_the_merge_leaves_everything(tmp_path):
    dest, _ = user_folder(tmp_path)
    before = snapshot(dest)
    archive = many_members_archive(tmp_path / "m.tar.gz", 40)
    result = run_python(["-c", UNPACK, archive, str(dest), "20"], cwd=tmp_path, timeout=60)
    assert result.returncode == 130 and "interrupted after 42 renames" in result.stdout, result.stderr
    after = snapshot(dest)  # the interrupt waited for the merge: all 41 members in, README replaced
    assert after["README.md"] == b"card" and all(after[f"part-{i:03d}/shard.bin"] for i in range(40))
    assert {k: v for k, v in after.items() if k in before and k != "README.md"} == \
        {k: v for k, v in before.items() if k != "README.md"}


def test_ctrl_c_at_any_moment_leaves_nothing_or_everything(tmp_path):
    """Real SIGINTs at spread-out moments of a real unpack: each run ends with the destination as
    it was or with the whole model in it, and the user's files intact either way."""
    archive = many_members_archive(tmp_path / "m.tar.gz", 200)
    env = {**os.environ, "PYTHONPATH": REPO}

    def unpack(dest, delay):
        child = subprocess.Popen([sys.executable, "-c", UNPACK, archive, str(dest), "0"], stdout=subprocess.PIPE,
                                 text=True, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert child.stdout.readline() == "ready\n"
        started = time.monotonic()
        if delay is not None:
            time.sleep(delay)
            child.send_signal(signal.SIGINT)
        child.communicate(timeout=60)
        return time.monotonic() - started

    took = unpack(user_folder(tmp_path / "timing")[0], None)  # spread the interrupts over one whole unpack
    outcomes = []
    for attempt in range(8):
        dest, _ = user_folder(tmp_path / f"run{attempt}")
        before = snapshot(dest)
        delay = took * attempt / 6
        unpack(dest, delay)
        after = snapshot(dest)
        whole = {**before, "README.md": b"card", **{f"part-{i:03d}": "dir" for i in range(200)},
                 **{f"part-{i:03d}/shard.bin": b"s" * 512 for i in range(200)}}
        assert after in (before, whole), f"half an unpack after a Ctrl-C at {delay:.3f} s"
        assert not [n for n in os.listdir(dest) if n.startswith(".aws-train-remote")]
        outcomes.append("nothing" if after == before else "everything")
    print(f"Ctrl-C at {len(outcomes)} moments of a {took:.2f} s unpack: {outcomes.count('nothing')} left nothing, "
          f"{outcomes.count('everything')} everything, 0 half")


def test_an_unsafe_member_is_left_out_and_named_and_the_weights_arrive(tmp_path, python_kind):
    """Issue 18.2: a tokenizer linked from a cache folder outside the model must not cost the weights."""
    archive = link_archive(tmp_path / "m.tar.gz", [
        ("model.safetensors", "file", b"weights"), ("tokenizer.json", "sym", "/root/.cache/hf/tokenizer.json"),
        ("vocab.txt", "sym", "../../cache/vocab.txt"), ("../evil.txt", "file", b"x"), ("config.json", "file", b"{}")])
    done = safe_tar.unpack_into(archive, str(tmp_path / "model"), skip_unsafe=True)
    assert done.files == 2 and snapshot(tmp_path / "model") == {"model.safetensors": b"weights", "config.json": b"{}"}
    assert [reason.split(":")[0] for reason in done.skipped] == ["absolute link in archive", "link escapes the "
                                                                 "destination", "unsafe path in archive"]
    assert "'tokenizer.json'" in done.skipped[0] and not (tmp_path / "evil.txt").exists()
    with pytest.raises(safe_tar.UnsafeArchive, match="absolute link"):  # without skip_unsafe: refused whole
        safe_tar.unpack_into(archive, str(tmp_path / "strict"))
    assert not (tmp_path / "strict").exists()


def test_the_link_chain_is_cut_where_it_leaves_when_skipping(tmp_path, python_kind):
    done = safe_tar.unpack_into(chain_archive(tmp_path / "chain.tar.gz"), str(tmp_path / "d" / "model"),
                                skip_unsafe=True)
    assert done.skipped == ("link escapes the destination: 'a/b' -> '..'",)
    assert sorted(os.listdir(tmp_path)) == ["chain.tar.gz", "d", "home"] and os.listdir(tmp_path / "d") == ["model"]


def test_an_unreadable_archive_is_refused_whole_even_when_skipping(tmp_path):
    whole = open(model_archive(tmp_path / "m.tar.gz", (("a.bin", os.urandom(4096)), ("b.bin", b"b"))), "rb").read()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    dest, _ = user_folder(tmp_path)
    before = snapshot(dest)
    with pytest.raises(safe_tar.UnsafeArchive):
        safe_tar.unpack_into(str(tmp_path / "cut.tar.gz"), str(dest), skip_unsafe=True)
    assert snapshot(dest) == before


def launch_with_model(tmp_path, name, archive):
    """A completed job named `name` whose model.tar.gz is `archive` (moto completes jobs at once)."""
    from conftest import launch_no_wait, write_script

    write_script(tmp_path, "from aws_train_remote import training_main\ntraining_main(lambda a: None)\n")
    launch_no_wait(tmp_path, "arn:aws:iam::123456789012:role/R", "--sagemaker-job-name", name)
    boto3.client("s3", region_name="us-east-1").upload_file(
        archive, "sagemaker-us-east-1-123456789012", f"aws-train-remote/output/{name}/output/model.tar.gz")


def download(*args, cwd):
    return run_python(["-m", "aws_train_remote.cli.main", "download", *args], cwd=cwd)


def test_download_names_the_unsafe_member_and_delivers_the_rest(tmp_path, aws):
    archive = link_archive(tmp_path / "model.tar.gz", [("model.safetensors", "file", b"weights"),
                                                       ("tokenizer.json", "sym", "/root/.cache/tokenizer.json")])
    launch_with_model(tmp_path, "linked-model", archive)
    result = download("linked-model", "--dest", "dl", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("\n") == 1 and "left out 1 unsafe member" in result.stderr
    assert "'tokenizer.json' -> '/root/.cache/tokenizer.json'" in result.stderr
    report = json.loads(result.stdout)
    assert report["files"] == 1 and len(report["skipped"]) == 1 and report["replaced"] == []
    assert snapshot(tmp_path / "dl") == {"model.safetensors": b"weights"}
    chain = download("linked-model", "--dest", "dl", cwd=tmp_path)  # the same again: in the way now
    assert chain.returncode == 2 and "model.safetensors already there" in chain.stderr


def test_download_into_a_users_folder_keeps_every_file(tmp_path, aws):
    """Issue 17.7, through the command: `download JOB --dest .` deleted data/ and overwrote README.md."""
    project = tmp_path / "work"
    project.mkdir()
    launch_with_model(project, "readme-model", model_archive(tmp_path / "model.tar.gz"))
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("the user's data")
    (project / "README.md").write_text("the user's readme")
    before = snapshot(project)
    refused = download("readme-model", "--dest", ".", cwd=project)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "--dest=.: README.md already there" in refused.stderr and "--overwrite" in refused.stderr
    assert snapshot(project) == before
    (project / "model-file").write_text("x")
    a_file = download("readme-model", "--dest", "model-file", cwd=project)
    assert a_file.returncode == 2 and "is a file, not a folder" in a_file.stderr and a_file.stderr.count("\n") == 1
    (project / "model-file").unlink()
    replaced = download("readme-model", "--dest", ".", "--overwrite", cwd=project)
    assert replaced.returncode == 0 and "(replaced README.md)" in replaced.stdout, replaced.stderr
    assert snapshot(project) == {**before, "README.md": b"model card", "data/weights.bin": b"w" * 64}


def test_sagemaker_download_replaces_the_models_files_and_keeps_the_rest(tmp_path, aws, capsys):
    """--sagemaker-download unpacks into the script's --model-dir: its files replace those of the
    same name (as the script's own run would), the rest stays, an outside link is left out."""
    from aws_train_remote.errors import UsageError
    from aws_train_remote.executors.sagemaker import download_model

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="models")
    model_dir = tmp_path / "output" / "model"
    (model_dir / "data").mkdir(parents=True)
    (model_dir / "model.pt").write_bytes(b"last run")
    (model_dir / "data" / "mine.csv").write_text("the user's")
    (model_dir / "notes.txt").write_text("kept")

    def job_with(name, members):
        s3.upload_file(link_archive(tmp_path / f"{name}.tar.gz", members), "models", f"{name}/model.tar.gz")
        return {"TrainingJobName": name, "ModelArtifacts": {"S3ModelArtifacts": f"s3://models/{name}/model.tar.gz"}}

    count = download_model(s3, job_with("run2", [("model.pt", "file", b"this run"), ("data/w.bin", "file", b"w"),
                                                 ("tok.json", "sym", "/root/.cache/tok.json")]), str(model_dir))
    assert count == 2 and snapshot(model_dir) == {"model.pt": b"this run", "data": "dir", "data/mine.csv": b"the user's",
                                                  "data/w.bin": b"w", "notes.txt": b"kept"}
    assert capsys.readouterr().err.count("left out 1 unsafe member") == 1
    before = snapshot(model_dir)
    with pytest.raises(UsageError, match="aws-train-remote download run3 --dest DIR") as refused:
        download_model(s3, job_with("run3", [("data", "file", b"a file"), ("model.pt", "file", b"3")]), str(model_dir))
    assert refused.value.flag == "--model-dir" and "never deletes a folder" in str(refused.value)
    assert snapshot(model_dir) == before
