"""The input store (issue 11): content-addressed objects and packs named by a ManifestFile, laid
out by the runtime; a launch costs what changed. Pure planning, the runtime's layout, and
end to end against the loopback moto server and its sandbox jobs."""
import hashlib
import json
import os
import stat

import boto3
import pytest
from conftest import launch_no_wait, run_python, write_script

from aws_train_remote.plan import store
from aws_train_remote.plan.uploads import plan_input
from aws_train_remote.runtime.input_tree import LayoutError, lay_out

ROLE = "arn:aws:iam::123456789012:role/Store"
BUCKET = "sagemaker-us-east-1-123456789012"


def member(path, size, seed=""):
    return store.Member(path, "/nowhere/" + path, size, hashlib.sha256(f"{path}{seed}".encode()).hexdigest(), 0o644)


def packs_of(members, mode="File"):
    return {o.sha256: o.relpaths() for o in store.plan_store_input("d", mode, members, [], "p").objects
            if o.kind == "pack"}


def test_one_changed_small_file_changes_one_pack_and_an_added_one_shifts_nothing():
    files = [member(f"shard-{i:05d}.json", 1024) for i in range(10000)]
    before = packs_of(files)
    assert 3 <= len(before) <= 40  # 10,000 x 1 KiB: a handful of packs, not 10,000 objects
    assert max(sum(1024 for _ in p) for p in before.values()) <= store.PACK_MAX
    changed = list(files)
    changed[4321] = member("shard-04321.json", 1024, seed="new bytes")
    after = packs_of(changed)
    assert len(set(after) - set(before)) == 1 and len(set(before) - set(after)) == 1
    grown = list(files)
    grown[4321] = member("shard-04321.json", 50_000, seed="grown")  # its size may move one boundary
    assert len(set(packs_of(grown)) - set(before)) <= 2
    added = sorted(files + [member("shard-04321a.json", 1024)], key=lambda m: m.relpath)
    assert len(set(packs_of(added)) - set(before)) <= 2  # the new file's pack (split in two at most)
    removed = files[:100] + files[101:]
    assert len(set(packs_of(removed)) - set(before)) == 1


def test_pipe_packs_keep_path_order_file_packs_skip_large_files():
    files = [member("a", 10), member("b", 2 * 1024 * 1024), member("c", 10)]
    pipe = store.plan_store_input("d", "Pipe", files, [], "p")
    assert [o.relpaths() for o in pipe.objects] == [["a"], ["b"], ["c"]]
    assert pipe.manifest_entries() == [o.sha256 for o in pipe.objects]  # no tree in the stream
    plain = store.plan_store_input("d", "File", files, [], "p")
    assert sorted(o.relpaths() for o in plain.objects) == [["a", "c"], ["b"]]
    assert plain.manifest_entries()[-1] == plain.tree.sha256
    manifest = json.loads(plain.manifest("bkt"))
    assert manifest[0] == {"prefix": "s3://bkt/p/store/objects/"} and len(manifest) == 4  # pack, file, tree


def make_folder(root):
    """Identical files at two paths, an empty file, an empty folder, unicode names, a backslash in a
    name (a POSIX name like any other: issue 17.3), an executable."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir" / "inner").mkdir(parents=True)
    (root / "a.txt").write_text("same bytes\n")
    (root / "back\\slash.txt").write_text("a backslash is a legal file name character\n")
    (root / "sub" / "twin.txt").write_text("same bytes\n")
    (root / "zero").write_bytes(b"")
    (root / "naïve ünïcode 名前.csv").write_text("1,2\n")
    (root / "sub" / "deeper" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "sub" / "deeper" / "run.sh", 0o755)
    os.chmod(root / "a.txt", 0o600)
    (root / "big.bin").write_bytes(os.urandom(1024 * 1024 + 17))
    (root / "big-twin.bin").write_bytes((root / "big.bin").read_bytes())
    return root


def snapshot(root):
    """path -> (size, sha256, mode) of every file, and the folders that hold nothing."""
    files, empty = {}, []
    for dirpath, dirs, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            data = open(full, "rb").read()
            files[os.path.relpath(full, root)] = (len(data), hashlib.sha256(data).hexdigest(),
                                                  stat.S_IMODE(os.stat(full).st_mode))
        if not dirs and not names:
            empty.append(os.path.relpath(dirpath, root))
    return files, sorted(empty)


def place_as_sagemaker(item, channel, bucket="bkt"):
    """Every object of the manifest at its whole key under the channel folder (the reported layout)."""
    from aws_train_remote.plan.store import read_pack

    for obj in item.unique_objects():
        target = channel / "p" / "store" / "objects" / obj.sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        if obj.kind == "tree":
            target.write_bytes(obj.body)
        elif obj.kind == "pack":
            target.write_bytes(read_pack(obj))
        else:
            target.write_bytes(open(obj.members[0].local, "rb").read())


def test_runtime_lays_out_exactly_the_users_folder(tmp_path):
    src = make_folder(tmp_path / "src")
    item = plan_input("train", str(src), "p")
    assert isinstance(item, store.StoreInput)
    assert [o.kind for o in item.unique_objects()].count("file") == 1  # the two big twins are one object
    channel = tmp_path / "opt" / "train"
    place_as_sagemaker(item, channel)
    assert lay_out(str(channel), item.tree.sha256) == 8
    assert snapshot(channel) == snapshot(src)
    assert os.stat(channel / "a.txt").st_ino != os.stat(channel / "sub" / "twin.txt").st_ino  # modes differ
    assert os.stat(channel / "big.bin").st_ino == os.stat(channel / "big-twin.bin").st_ino  # linked
    assert not os.path.exists(str(channel) + ".atr-objects") and not (channel / "p").exists()


def test_runtime_refuses_a_missing_object_and_an_escaping_path(tmp_path):
    src = make_folder(tmp_path / "src")
    item = plan_input("train", str(src), "p")
    channel = tmp_path / "train"
    place_as_sagemaker(item, channel)
    os.remove(channel / "p" / "store" / "objects" / [o for o in item.objects if o.kind == "file"][0].sha256)
    with pytest.raises(LayoutError, match="1 of its objects are missing"):
        lay_out(str(channel), item.tree.sha256)
    evil = json.dumps({"version": 1, "dirs": [], "objects": [["0" * 64, [["../outside", 0, "0" * 64, 420]]]]})
    tree = hashlib.sha256(evil.encode()).hexdigest()
    (tmp_path / "t2").mkdir()
    (tmp_path / "t2" / tree).write_text(evil)
    (tmp_path / "t2" / ("0" * 64)).write_bytes(b"")
    with pytest.raises(LayoutError, match="unsafe path"):
        lay_out(str(tmp_path / "t2"), tree)
    assert not (tmp_path / "outside").exists()


def test_runtime_checks_every_byte_and_names_the_object_that_differs(tmp_path):
    """Issue 17.2: an object replaced in S3 by other bytes of the same size (a large file, a pack,
    the tree) fails the layout in one line naming it; its advice is what a launch does
    (tests/test_content_integrity.py)."""
    src = make_folder(tmp_path / "src")
    item = plan_input("train", str(src), "p")
    kinds = {o.kind: o for o in item.unique_objects()}
    for kind in ("file", "pack", "tree"):
        channel = tmp_path / kind
        place_as_sagemaker(item, channel)
        target = channel / "p" / "store" / "objects" / kinds[kind].sha256
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        with pytest.raises(LayoutError) as err:
            lay_out(str(channel), item.tree.sha256)
        message = str(err.value)
        assert f"object {kinds[kind].sha256} " in message and "\n" not in message, message
        assert "changed in S3 after the launch; launching again checks every object's checksum" in message


def test_runtime_lays_out_every_name_linux_takes(tmp_path):
    """Issue 17.3: a backslash, a newline, a tab, a leading space are names like any other on the
    container's file system: the launch takes them and the runtime lays them out."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    names = ["back\\slash.txt", "new\nline.txt", "tab\there", " leading space", "sub/\\\\server", "ünï.csv"]
    for name in names:
        (src / name).write_text(name)
    item = plan_input("train", str(src), "p")
    channel = tmp_path / "train"
    place_as_sagemaker(item, channel)
    assert lay_out(str(channel), item.tree.sha256) == len(names)
    assert snapshot(channel) == snapshot(src)


@pytest.mark.parametrize("rel, reason", [
    ("back\\slash.txt", None), ("new\nline", None), ("a/b/c.txt", None), ("x" * 255, None), ("é" * 127, None),
    ("", "an empty path"), ("/etc/passwd", "an absolute path"), ("a//b", "'..' path component"),
    ("./a", "'..' path component"), ("a/../../b", "'..' path component"), ("a/", "'..' path component"),
    ("nul\0byte", "NUL"), ("x" * 256, "a name of 256 bytes"), ("é" * 128, "a name of 256 bytes"),
    ("bad-\udcff.bin", "not valid UTF-8"), ("/".join(["d" * 200] * 21), "a path of 4245 bytes in the container"),
])
def test_one_path_rule_for_the_launch_and_the_job(rel, reason):
    """The runtime's rule (runtime/input_tree.py) is the one the launch applies (plan/uploads.py)."""
    from aws_train_remote.runtime.input_tree import unsafe_path

    got = unsafe_path(rel, "/opt/ml/input/data/train")
    assert got is None if reason is None else reason in got, got


DEEP = """
from aws_train_remote import training_main
def main(args):
    print("the script ran")
if __name__ == "__main__":
    training_main(main, inputs={"c" * 64: "d"})
"""


def test_deep(tmp_path, aws):
    """Issue 17.3: a path that fits this machine but not the container (its channel folder, with a
    channel name of 64 characters, is longer than the input folder here) is refused at launch: one
    line naming it, exit 2, no AWS call (the short test name keeps tmp_path short)."""
    write_script(tmp_path, DEEP)
    root = tmp_path / "d"
    rel = "/".join(["x" * 250] * 15) + "/" + "f" * 247  # 4012 bytes: 4096 under /opt/ml/input/data/ccc...c/
    if len(str(root)) + 1 + len(rel) >= 4095:
        pytest.skip(f"tmp_path too long for this case: {tmp_path}")
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_text("deep")
    result = launch(tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "the job could not lay this file out: a path of 4096 bytes in the container" in result.stderr
    assert not [c for c in aws.calls() if c["op"].startswith("s3.")]


LISTER = """
import hashlib, json, os, stat
from aws_train_remote import training_main
def main(args):
    where = args.train
    if args.train_mode == "Pipe":
        with open(where, "rb") as fh:
            data = fh.read()
        print("PIPE " + json.dumps([len(data), hashlib.sha256(data).hexdigest()]), flush=True)
        return
    files, empty = {}, []
    for dirpath, dirs, names in os.walk(where):
        for name in names:
            full = os.path.join(dirpath, name)
            data = open(full, "rb").read()
            files[os.path.relpath(full, where)] = [len(data), hashlib.sha256(data).hexdigest(),
                                                   stat.S_IMODE(os.stat(full).st_mode)]
        if not dirs and not names:
            empty.append(os.path.relpath(dirpath, where))
    print("TREE " + json.dumps([files, sorted(empty)], sort_keys=True), flush=True)
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"})
"""


def seen_by_job(stdout, tag):
    line = next(line for line in stdout.splitlines() if f"] {tag} " in line)
    return json.loads(line.split(f"] {tag} ", 1)[1])


@pytest.mark.parametrize("mode", ["File", "FastFile", "Pipe"])
def test_job_in_the_sandbox_sees_exactly_the_users_folder(tmp_path, sandbox, mode):
    write_script(tmp_path, LISTER)
    make_folder(tmp_path / "data")
    for i in range(300):
        (tmp_path / "data" / "many" / f"{i:03d}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "data" / "many" / f"{i:03d}.txt").write_text(f"row {i}\n" * (i % 7))
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--train-mode", mode],
                        cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    channel = [c for c in sandbox.calls() if c["op"] == "SageMaker.CreateTrainingJob"][0]["body"]
    source = [c for c in channel["InputDataConfig"] if c["ChannelName"] == "train"][0]["DataSource"]["S3DataSource"]
    assert source["S3DataType"] == ("S3Prefix" if mode == "FastFile" else "ManifestFile")
    check_seen(result.stdout, tmp_path / "data", mode)


def check_seen(stdout, data, mode):
    """What the job printed is the user's folder: paths, sizes and bytes (File mode: modes and empty
    folders too); in Pipe mode the files' bytes concatenated in path order."""
    files, empty = snapshot(data)
    if mode == "Pipe":
        stream = b"".join(open(os.path.join(data, p), "rb").read() for p in sorted(files))
        assert seen_by_job(stdout, "PIPE") == [len(stream), hashlib.sha256(stream).hexdigest()]
        return
    seen_files, seen_empty = seen_by_job(stdout, "TREE")
    assert {p: row[:2] for p, row in seen_files.items()} == {p: [size, sha] for p, (size, sha, _) in files.items()}
    if mode == "File":  # a prefix download (FastFile here) keeps neither
        assert {p: row[2] for p, row in seen_files.items()} == {p: m for p, (_, _, m) in files.items()}
        assert seen_empty == empty


@pytest.mark.parametrize("mode", ["File", "Pipe"])
def test_local_mode_serves_the_store_as_the_runtime_expects(tmp_path, mode):
    write_script(tmp_path, LISTER)
    make_folder(tmp_path / "data")
    result = run_python(["train.py", "--sagemaker-run", "local", "--train-mode", mode], cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    check_seen(result.stdout, tmp_path / "data", mode)
    if mode == "File":
        assert "input 'train': 8 files laid out" in result.stdout


def store_keys(kind):
    s3 = boto3.client("s3", region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"aws-train-remote/store/{kind}/")
    return {o["Key"]: o["Size"] for p in pages for o in p.get("Contents", [])}


def launch(project, *args, check=True):
    return launch_no_wait(project, ROLE, *args, check=check)


def data_puts(calls):
    return [c for c in calls if c["op"] in ("s3.PutObject", "s3.UploadPart", "s3.CopyObject")]


def test_a_launch_costs_what_changed_and_a_deleted_object_is_sent_again(tmp_path, aws):
    write_script(tmp_path, LISTER)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2000):
        (data / f"f{i:04d}.txt").write_text(f"row {i}\n" * 8)
    (data / "large.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    launch(tmp_path)
    objects = store_keys("objects")
    assert 3 <= len(objects) <= 12  # packs, the large file, the tree: not 2,001 objects
    assert len(store_keys("manifests")) == 1

    aws.clear_faults()
    second = launch(tmp_path)
    assert data_puts(aws.calls()) == [] and "0 objects sent" in second.stdout
    assert sum(1 for c in aws.calls() if c["op"] == "s3.ListObjectsV2") == 1

    (data / "f0100.txt").write_text("changed contents\n")
    aws.clear_faults()
    third = launch(tmp_path)
    puts = data_puts(aws.calls())
    # its pack, the new tree, the new manifest; nothing per file
    assert len(puts) == 3 and "2 objects sent" in third.stdout, [c["path"] for c in puts]
    assert sum(c["bytes"] for c in puts) < store.PACK_MAX + 200_000

    large = next(k for k, size in store_keys("objects").items() if size == 3 * 1024 * 1024)
    boto3.client("s3", region_name="us-east-1").delete_object(Bucket=BUCKET, Key=large)
    aws.clear_faults()
    fourth = launch(tmp_path)
    assert "1 object sent (3.1 MB)" in fourth.stdout
    assert store_keys("objects")[large] == 3 * 1024 * 1024


def test_an_object_deleted_after_the_launch_fails_the_job_before_the_script_starts(tmp_path, aws):
    """The job's request is run here (LocalJob over the loopback S3) after one object of its
    version was deleted: staging fails naming it, as SageMaker's download would, and the script
    never starts on a partial folder (the runtime's own check is
    test_runtime_refuses_a_missing_object_and_an_escaping_path)."""
    from aws_train_remote.executors.local_job import LocalJob, S3Storage

    write_script(tmp_path, LISTER)
    make_folder(tmp_path / "data")
    launch(tmp_path)
    request = [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"][-1]
    s3 = boto3.client("s3", region_name="us-east-1")
    big = hashlib.sha256((tmp_path / "data" / "big.bin").read_bytes()).hexdigest()
    s3.delete_object(Bucket=BUCKET, Key=f"aws-train-remote/store/objects/{big}")
    lines = []
    outcome = LocalJob(request, S3Storage(s3), on_line=lambda host, text: lines.append(text)).run()
    assert outcome.status == "Failed"
    assert outcome.failure_reason.startswith("ClientError: could not stage the job's data")
    assert f"store/objects/{big}, named by the manifest" in outcome.failure_reason
    assert not any(line.startswith("TREE ") for line in lines)  # the script did not run


def test_an_object_replaced_after_the_launch_fails_the_job_before_the_script_and_a_relaunch_mends_it(tmp_path, aws):
    """Issue 17.2: one object replaced in S3 by other bytes of the same size after the launch: the
    job (its request run here through LocalJob over the loopback S3) fails before the script in one
    line naming the object; the relaunch sends it again, as that line says, and its job reads the
    user's bytes."""
    from aws_train_remote.executors.local_job import LocalJob, S3Storage

    write_script(tmp_path, LISTER)
    make_folder(tmp_path / "data")
    launch(tmp_path)
    s3 = boto3.client("s3", region_name="us-east-1")
    big = hashlib.sha256((tmp_path / "data" / "big.bin").read_bytes()).hexdigest()
    key = f"aws-train-remote/store/objects/{big}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(1024 * 1024 + 17))

    def run_last_job():
        request = [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"][-1]
        lines = []
        outcome = LocalJob(request, S3Storage(s3), on_line=lambda host, text: lines.append(text)).run()
        return outcome, lines

    outcome, lines = run_last_job()
    assert outcome.status == "Failed"
    assert f"object {big} holds other bytes than its name says" in outcome.failure_reason, outcome.failure_reason
    assert "launching again checks every object's checksum" in outcome.failure_reason
    assert len(outcome.failure_reason.strip().splitlines()) == 1
    assert not any(line.startswith("TREE ") for line in lines)  # the script did not run
    aws.clear_faults()
    relaunch = launch(tmp_path)
    sent = [c["path"] for c in data_puts(aws.calls()) if "/store/" in c["path"]]  # (the driver: when the code changed)
    assert sent == [f"/{BUCKET}/{key}"], relaunch.stderr
    outcome, lines = run_last_job()
    assert outcome.status == "Completed", outcome.failure_reason
    check_seen("\n".join("] " + line for line in lines), tmp_path / "data", "File")
