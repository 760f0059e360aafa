"""What is in S3 is what the job reads (issue 7, items 2-4): no stale hash, no manifest trusted
without its objects, an interrupted upload resumed, no multipart upload left behind."""
import hashlib
import os
import signal
import subprocess
import sys
import time

import boto3
from conftest import REPO, run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/TrainRole"
BUCKET = "sagemaker-us-east-1-123456789012"
DATA_OPS = ("s3.PutObject", "s3.UploadPart")
SCRIPT = """
from aws_train_remote import training_main
def main(args):
    print("trained")
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"})
"""


def project(root, files=5, big=0, large=0):
    """`files` small files (packed), `large` files of 1.1 MB (an object each), one `big` one."""
    write_script(root, SCRIPT)
    data = root / "data"
    data.mkdir()
    for i in range(files):
        (data / f"part-{i:03d}.csv").write_text(f"{i},{i * i}\n" * 20)
    for i in range(large):
        (data / f"large-{i:02d}.bin").write_bytes(os.urandom(1100 * 1024))
    if big:
        (data / "big.bin").write_bytes(os.urandom(big))
    return root


def store_objects():
    pages = s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="aws-train-remote/store/objects/")
    return {o["Key"]: o["Size"] for p in pages for o in p.get("Contents", [])}


def object_key(path):
    return "aws-train-remote/store/objects/" + hashlib.sha256(open(path, "rb").read()).hexdigest()


def launch(cwd, *args):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", "no",
                         *args], cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def s3():
    return boto3.client("s3", region_name="us-east-1")


def input_objects():
    pages = s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="aws-train-remote/inputs/")
    return {o["Key"]: o["Size"] for p in pages for o in p.get("Contents", [])}


def channel_matches_local(aws, data_dir):
    """The last job's train channel holds exactly the local files, byte for byte."""
    from reliability import channel, snapshot

    body = [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"][-1]
    return channel(body, "train") == snapshot(data_dir)


def test_in_place_edit_keeping_size_and_mtime_is_sent(tmp_path, aws):
    """Issue 7.2: `cp -p` over a file: same size, same mtime, new bytes."""
    root = project(tmp_path)
    target = root / "data" / "part-001.csv"
    old = os.stat(target)
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns - 86400 * 10**9))  # a day-old file
    old = os.stat(target)
    time.sleep(2.1)  # past the 'just touched' window, so the first launch caches its hash
    launch(root)
    with open(target, "r+b") as fh:
        fh.write(b"9")  # same length, same inode
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert os.stat(target).st_mtime_ns == old.st_mtime_ns and os.stat(target).st_size == old.st_size
    aws.clear_faults()
    second = launch(root)
    assert "2 objects" in second.stdout.split("uploads: ", 1)[1], second.stdout  # its pack and the tree
    assert channel_matches_local(aws, root / "data")


def test_fastfile_deleted_object_under_a_complete_manifest_is_sent_again(tmp_path, aws):
    """Issue 7.3, for a prefix per version (FastFile): the manifest is trusted only with its
    objects (one listing, no HEAD per object). The store's case: tests/test_input_store.py."""
    root = project(tmp_path, files=30)
    launch(root, "--train-mode", "FastFile")
    victim = sorted(input_objects())[3]
    s3().delete_object(Bucket=BUCKET, Key=victim)
    aws.clear_faults()
    second = launch(root, "--train-mode", "FastFile")
    calls = aws.calls()
    puts = [c["path"] for c in calls if c["op"] == "s3.PutObject"]
    assert puts == [f"/{BUCKET}/{victim}"], puts
    assert sum(1 for c in calls if c["op"] == "s3.HeadObject") <= 2  # code, driver: not one per file
    # the manifest's age (S3's clock), the version's objects, and the ETag of what was sent again
    # (recorded, so the next launch trusts it without a HeadObject): not one call per file
    assert sum(1 for c in calls if c["op"] == "s3.ListObjectsV2") == 3
    assert "31 already there" in second.stdout  # 29 inputs, the code and the driver
    assert channel_matches_local(aws, root / "data")


def test_relaunch_after_ctrl_c_sends_only_what_is_missing(tmp_path, aws):
    """Issue 7.4 / 11.4: 40 small files (a pack), 12 files of 1.1 MB (an object each) and one 20 MB
    file (multipart); Ctrl-C once the big file and some objects are in S3; the relaunch sends only
    the rest, and no manifest exists before it."""
    root = project(tmp_path, files=40, large=12, big=20 * 1024 * 1024)
    # from the 9th object PUT on (code and driver are the first two), each hangs 2 s and never reaches S3
    aws.inject(r"^s3\.PutObject$", kind="drop_before", delay=2.0, skip=8, times=1000)
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        ops = [c["op"] for c in aws.calls()]
        if ops.count("s3.CompleteMultipartUpload") and ops.count("s3.PutObject") > 9:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "no job was created" in err
    before = store_objects()
    needed = 12 + 1 + 1 + 1  # the large files, the big one, the pack, the tree
    # the code bundle and the driver are usually the first PUTs, but sixteen threads send at once:
    # on a busy machine one of them can be a dropped 9th PUT, and then the relaunch sends it too
    singles = [o["Key"] for prefix in ("aws-train-remote/code/", "aws-train-remote/driver/")
               for o in s3().list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    singles_missing = 2 - len(singles)
    assert object_key(root / "data" / "big.bin") in before and 0 < len(before) < needed
    assert not s3().list_objects_v2(Bucket=BUCKET, Prefix="aws-train-remote/store/manifests/").get("Contents")
    aws.clear_faults()
    relaunch = launch(root)
    sent = [c["path"].split(BUCKET + "/", 1)[1] for c in aws.calls() if c["op"] in DATA_OPS]
    resent = [k for k in sent if k in before]
    assert resent == [], resent
    assert f"{needed - len(before) + singles_missing} object" in relaunch.stdout.split("uploads: ", 1)[1]
    assert channel_matches_local(aws, root / "data")
    print(f"interrupted with {len(before)} of {needed} objects in S3; relaunch sent {len(sent) - 1} objects + "
          "manifest, 0 re-sent")


def test_lost_multipart_replies_leave_no_incomplete_upload(tmp_path, aws):
    """Issue 7.4: a dropped CreateMultipartUpload reply (the server made an upload nobody knows of)
    and a dropped CompleteMultipartUpload reply (the object is complete; the retry fails)."""
    root = project(tmp_path, files=2, big=20 * 1024 * 1024)
    aws.inject(r"^s3\.CreateMultipartUpload$", kind="drop_after")
    aws.inject(r"^s3\.CompleteMultipartUpload$", kind="drop_after")
    result = launch(root)
    assert "Traceback" not in result.stderr
    assert [c["fault"] for c in aws.calls() if c["fault"]] == ["drop_after", "drop_after"]
    assert s3().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert channel_matches_local(aws, root / "data")


def test_a_file_changed_while_uploading_is_refused_and_not_left_in_s3(tmp_path, aws):
    root = project(tmp_path, files=3, large=2)
    target = root / "data" / "large-01.bin"
    key = object_key(target)
    aws.inject(r"^s3\.PutObject$", path=key + "$", delay=2.0)
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and not any(c.get("path", "").endswith(key) for c in aws.calls()):
        time.sleep(0.02)
    target.write_bytes(os.urandom(1100 * 1024))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "large-01.bin changed while it was uploaded" in err and len(err.strip().splitlines()) == 1
    assert key not in store_objects()
    assert not s3().list_objects_v2(Bucket=BUCKET, Prefix="aws-train-remote/store/manifests/").get("Contents")
    assert not any(c["op"] == "SageMaker.CreateTrainingJob" for c in aws.calls())


def test_a_small_file_changed_before_its_pack_is_read_is_refused(tmp_path, aws):
    """A pack is read just before it is sent; a member whose stamp moved since it was hashed
    stops the launch: no pack of mixed old and new bytes goes under the planned name."""
    root = project(tmp_path, files=3)
    aws.inject(r"^s3\.ListObjectsV2$", delay=2.0)  # the store listing, between hashing and packing
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and not any(c["op"] == "s3.ListObjectsV2" for c in aws.calls()):
        time.sleep(0.02)
    (root / "data" / "part-001.csv").write_text("rewritten before it was packed\n")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "part-001.csv changed while it was uploaded" in err and len(err.strip().splitlines()) == 1
    assert store_objects() == {}  # no pack was put, and so no tree
    assert not any(c["op"] == "SageMaker.CreateTrainingJob" for c in aws.calls())


def test_input_folder_with_symlink_loops_lists_each_real_file_once(tmp_path):
    """Issue 7.7: `loop -> .` used to give 41 copies of one file; two loops never ended."""
    from aws_train_remote.plan.uploads import plan_input

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "f.txt").write_text("x")
    (data / "sub" / "g.txt").write_text("y")
    os.symlink(".", data / "loop")
    os.symlink("..", data / "sub" / "up")
    os.symlink(str(data / "sub"), data / "alias")  # a link to a folder that is not above: kept
    started = time.time()
    item = plan_input("train", str(data), "p")
    assert [f.relpath for f in item.files] == ["alias/g.txt", "f.txt", "sub/g.txt"]
    prefix = plan_input("train", str(data), "p", mode="FastFile")
    assert [f.relpath for f in prefix.files] == ["alias/g.txt", "f.txt", "sub/g.txt"]
    assert time.time() - started < 5
