"""aws-train-remote gc (issues 11.5 and 17.1): the store does not grow forever, gc deletes only the
input versions this tool wrote, and never what a running job or a launch in flight needs. Objects
are made old by backdating them in the loopback server (moto stamps LastModified itself), so the
real 30-day rule runs against S3's clock."""
import argparse
import datetime
import io
import json
import signal
import subprocess
import sys
import time

import boto3
import pytest
from conftest import REPO, launch_no_wait, run_python, write_script
from reliability import channel, snapshot

from aws_train_remote.errors import UsageError
from aws_train_remote.executors.store_gc import run_gc

ROLE = "arn:aws:iam::123456789012:role/Gc"
BUCKET = "sagemaker-us-east-1-123456789012"
PREFIX = "aws-train-remote"
DAY = 86400
SCRIPT = """
from aws_train_remote import training_main
def main(args):
    pass
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"})
"""


def launch(root, name, *args):
    return launch_no_wait(root, ROLE, "--sagemaker-job-name", name, *args)


def s3():
    return boto3.client("s3", region_name="us-east-1")


def keys(prefix=""):
    pages = s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"] for p in pages for o in p.get("Contents", [])}


def backdate(aws, prefix="", days=40):
    """Every object under prefix as if written `days` ago (the server's clock is S3's here)."""
    from moto.s3.models import s3_backends

    with aws.injector.backend:
        store = s3_backends["123456789012"]["aws"].buckets[BUCKET].keys
        for name in list(store.keys()):
            if name.startswith(prefix):
                for version in store.getlist(name):
                    version.last_modified -= datetime.timedelta(days=days)


def request_of(aws, name):
    return next(c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"
                and c["body"]["TrainingJobName"] == name)


def gc(dry_run=False, older_than=30 * DAY, prefix=PREFIX, client=None, clock=None):
    out = io.StringIO()
    run_gc(client or s3(), boto3.client("sagemaker", region_name="us-east-1"), BUCKET, prefix, older_than, dry_run,
           out, clock)
    return out.getvalue()


def test_gc_keeps_what_a_running_job_reads_and_deletes_the_rest(tmp_path, aws):
    write_script(tmp_path, SCRIPT)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(50):
        (data / f"f{i:02d}.txt").write_text(f"row {i}\n" * 10)
    launch(tmp_path, "gc-one")
    one = keys(f"{PREFIX}/store/")
    (data / "f07.txt").write_text("changed\n")
    launch(tmp_path, "gc-two")
    both = keys(f"{PREFIX}/store/")
    aws.set_job("gc-two", training_job_status="InProgress")
    backdate(aws)

    preview = gc(dry_run=True)
    assert "would delete 1 manifests and 2 objects" in preview  # version one's manifest, pack and tree
    listed = {line.strip() for line in preview.splitlines() if line.startswith("  ")}
    assert listed <= one and len(listed) == 3  # version one's own objects only
    assert keys(f"{PREFIX}/store/") == both  # a dry run deletes nothing
    print(gc())
    assert keys(f"{PREFIX}/store/") == both - listed
    assert channel(request_of(aws, "gc-two"), "train") == snapshot(data)  # the running job's data is whole

    aws.set_job("gc-two", training_job_status="Completed")
    gc()
    assert keys(f"{PREFIX}/store/") == set()
    again = launch(tmp_path, "gc-three")  # the next launch finds nothing and sends it all again
    assert "3 objects sent" in again.stdout or "2 objects sent" in again.stdout
    assert channel(request_of(aws, "gc-three"), "train") == snapshot(data)


def test_gc_removes_unused_prefix_versions_too(tmp_path, aws):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a\n")
    launch(tmp_path, "fast-one", "--train-mode", "FastFile")
    assert keys(f"{PREFIX}/inputs/") and keys(f"{PREFIX}/manifests/")
    aws.set_job("fast-one", training_job_status="InProgress")
    backdate(aws)
    gc()
    assert keys(f"{PREFIX}/inputs/")  # in use
    aws.set_job("fast-one", training_job_status="Stopped")
    gc()
    assert keys(f"{PREFIX}/inputs/") == set() and keys(f"{PREFIX}/manifests/") == set()
    assert keys(f"{PREFIX}/code/")  # gc touches uploaded inputs only


# -- versions written in-process (faster than a launch each) ---------------------------------------------

class _Only:
    """An upload plan of these inputs and nothing else."""

    def __init__(self, *items):
        self.items = items

    def singles(self):
        return ()

    def prefix_inputs(self):
        return [i for i in self.items if not hasattr(i, "unique_objects")]

    def store_inputs(self):
        return [i for i in self.items if hasattr(i, "unique_objects")]


def version(root, name, files, mode="File"):
    """Upload one input version of these files; returns its planned upload (StoreInput or InputUpload)."""
    from aws_train_remote.aws.s3 import Uploader, create_bucket
    from aws_train_remote.plan.uploads import plan_input

    folder = root / name
    folder.mkdir()
    for rel, body in files.items():
        (folder / rel).write_bytes(body)
    item = plan_input("train", str(folder), PREFIX, mode=mode)
    create_bucket(s3(), BUCKET, "us-east-1")
    Uploader(s3(), BUCKET).upload_plan(_Only(item))
    return item


def store_keys_of(item):
    """The manifest and object keys of a store version."""
    return {item.manifest_key(BUCKET)} | {item.object_key(o.sha256) for o in item.unique_objects()}


def prefix_keys_of(item):
    return {item.manifest_key} | {f.key for f in item.files}


def running_job(name, channels, region="us-east-1"):
    """A training job InProgress whose channels are (name, uri, S3DataType)."""
    boto3.client("sagemaker", region_name=region).create_training_job(
        TrainingJobName=name, RoleArn=ROLE, OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/out"},
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/t:1",
                                "TrainingInputMode": "File"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        InputDataConfig=[{"ChannelName": c, "DataSource": {"S3DataSource": {
            "S3DataType": kind, "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}}
            for c, uri, kind in channels])


def put(key, body=b"x"):
    s3().put_object(Bucket=BUCKET, Key=key, Body=body)


FOREIGN = [f"{PREFIX}/manifests/my-data.json", f"{PREFIX}/store/objects/README.txt", f"{PREFIX}/inputs/train.csv",
           f"{PREFIX}/inputs/2024/part-0.csv", f"{PREFIX}/store/manifests/notes.json",
           f"{PREFIX}/store/objects/{'A' * 64}", f"{PREFIX}/store/objects/sub/{'a' * 64}"]


def test_done_when_gc_deletes_only_the_stale_versions_this_tool_wrote(tmp_path, aws):
    """Issue 17, "done when": a bucket with foreign keys, a running job's versions and a launch in
    flight; gc deletes the stale versions this tool wrote and nothing else."""
    shared = b"s" * (1024 * 1024 + 1)  # one large file in both store versions: one object
    old = version(tmp_path, "old", {"big.bin": shared, "a.txt": b"old\n"})
    run = version(tmp_path, "run", {"big.bin": shared, "a.txt": b"run\n"})
    old_fast = version(tmp_path, "old_fast", {"x.csv": b"1,2\n"}, mode="FastFile")
    run_fast = version(tmp_path, "run_fast", {"y.csv": b"3,4\n"}, mode="FastFile")
    for key in FOREIGN + [f"{PREFIX}/notes.md"]:  # notes.md: outside what gc looks at
        put(key)
    put(old_fast.prefix_key + "added-by-hand.txt")  # in a stale version's folder, but not recorded by it
    running_job("reader", [("train", f"s3://{BUCKET}/{run.manifest_key(BUCKET)}", "ManifestFile"),
                           ("fast", f"s3://{BUCKET}/{run_fast.prefix_key}", "S3Prefix")])
    aws.set_job("reader", training_job_status="InProgress")
    backdate(aws)
    # a launch in flight: its objects uploaded seconds ago, its manifests not written yet
    fly = version(tmp_path, "fly", {"c.txt": b"in flight\n"})
    fly_fast = version(tmp_path, "fly_fast", {"z.csv": b"5\n"}, mode="FastFile")
    s3().delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": fly.manifest_key(BUCKET)},
                                                           {"Key": fly_fast.manifest_key}]})
    in_flight = (store_keys_of(fly) | prefix_keys_of(fly_fast)) - {fly.manifest_key(BUCKET), fly_fast.manifest_key}
    before = keys()

    out = gc()
    print(out)
    stale = (store_keys_of(old) - store_keys_of(run)) | prefix_keys_of(old_fast)
    after = keys()
    assert after == before - stale
    foreign = set(FOREIGN) | {old_fast.prefix_key + "added-by-hand.txt"}
    needed = store_keys_of(run) | prefix_keys_of(run_fast)
    assert foreign <= after and needed <= after and in_flight <= after
    assert f"left alone {len(foreign)} keys this tool did not write" in out
    assert "and 1 files of versions no manifest records yet" in out  # fly_fast's file
    print(f"foreign keys kept: {len(foreign & after)}/{len(foreign)}; running job's keys kept: "
          f"{len(needed & after)}/{len(needed)}; launch in flight kept: {len(in_flight & after)}/{len(in_flight)}; "
          f"stale keys deleted: {len(stale - after)}/{len(stale)}")


def test_a_manifest_written_again_while_gc_deletes_keeps_its_objects(tmp_path, aws):
    """A launch refreshing a stale version between gc's manifest deletion and its object deletion:
    the manifest comes back under the same key, and what it names stays."""
    item = version(tmp_path, "v", {"a.txt": b"a\n"})
    backdate(aws)
    client = s3()
    body = item.manifest(BUCKET)
    state = {"calls": 0}

    def relaunch(**_):
        state["calls"] += 1
        if state["calls"] == 1:  # right after the manifests went
            put(item.manifest_key(BUCKET), body)

    client.meta.events.register("after-call.s3.DeleteObjects", relaunch)
    print(gc(client=client))
    assert store_keys_of(item) <= keys()


def test_gc_ages_objects_by_s3s_clock_not_this_machines(tmp_path, aws):
    """A machine clock two days ahead: a cutoff of one day by its clock would take everything."""
    from aws_train_remote.aws.session import AwsSession
    from aws_train_remote.executors.manage import cmd_gc

    item = version(tmp_path, "v", {"a.txt": b"a\n", "b.bin": b"b" * (1024 * 1024 + 5)})
    before = keys()
    out = io.StringIO()
    ahead = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
    args = argparse.Namespace(older_than="1d", bucket=None, prefix=PREFIX, dry_run=False)
    cmd_gc(AwsSession(region="us-east-1"), args, "us-east-1", clock=lambda: ahead, out=out)
    print(out.getvalue())
    assert keys() == before and store_keys_of(item) <= before
    assert "this machine's clock is 48.0 hours ahead of S3's" in out.getvalue()
    assert keys(f"{PREFIX}/gc-clock/") == set()  # gc's own marker is gone


def test_gc_looks_for_running_jobs_in_the_buckets_region(tmp_path, aws):
    """--region eu-west-1 with a us-east-1 bucket: the jobs that can read it run in us-east-1."""
    from aws_train_remote.aws.session import AwsSession
    from aws_train_remote.executors.manage import cmd_gc

    used = version(tmp_path, "used", {"a.txt": b"a\n"})
    unused = version(tmp_path, "unused", {"b.txt": b"b\n"})
    running_job("east", [("train", f"s3://{BUCKET}/{used.manifest_key(BUCKET)}", "ManifestFile")])
    aws.set_job("east", training_job_status="InProgress")
    backdate(aws)
    out = io.StringIO()
    args = argparse.Namespace(older_than="30d", bucket=BUCKET, prefix=PREFIX, dry_run=False)
    cmd_gc(AwsSession(region="eu-west-1"), args, "eu-west-1", out=out)
    print(out.getvalue())
    assert store_keys_of(used) <= keys()
    assert not store_keys_of(unused) & keys()  # gc did run


def test_a_prefix_inside_a_store_is_refused(tmp_path, aws):
    item = version(tmp_path, "v", {"a.txt": b"a\n"})
    running_job("r", [("train", f"s3://{BUCKET}/{item.manifest_key(BUCKET)}", "ManifestFile")])
    aws.set_job("r", training_job_status="InProgress")
    backdate(aws)
    before = keys()
    for inner in ("store", "store/objects", "store/manifests", "manifests", "inputs", f"inputs/{'0' * 64}"):
        with pytest.raises(UsageError, match=r"--prefix=.*a folder inside an input store.*--prefix 'aws-train-remote'"):
            gc(prefix=f"{PREFIX}/{inner}")
    assert keys() == before
    put(f"store/store/objects/{'b' * 64}")  # a launch whose --sagemaker-prefix was "store": a root
    assert "would delete 0 manifests" in gc(prefix="store", dry_run=True)


def test_stray_manifests_are_left_alone_and_an_unreadable_live_one_keeps_everything(tmp_path, aws):
    stale = version(tmp_path, "stale", {"a.txt": b"a\n"})
    hexname = f"{PREFIX}/store/manifests/{'c' * 64}.json"
    put(hexname, b"{not json")  # was JSONDecodeError
    put(f"{PREFIX}/store/manifests/{'d' * 64}.json", stale.manifest(BUCKET))  # a copy under another name
    backdate(aws)
    live = f"{PREFIX}/store/manifests/{'e' * 64}.json"
    put(live, json.dumps({"a": 1}).encode())  # recent, of no shape: was KeyError: 0
    held = gc()
    print(held)
    assert "kept everything" in held and live in held and "cannot be read" in held
    assert store_keys_of(stale) <= keys()  # what it might name is not gone
    s3().delete_object(Bucket=BUCKET, Key=live)
    done = gc()
    print(done)
    assert not store_keys_of(stale) & keys()
    assert {hexname, f"{PREFIX}/store/manifests/{'d' * 64}.json"} <= keys()  # not the tool's: left alone
    assert "left alone 2 keys" in done


def cli(*args, cwd):
    return run_python(["-m", "aws_train_remote.cli.main", *args], cwd=cwd)


def one_line(result):
    return result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_gc_command_refuses_bad_values_in_one_line_and_previews(tmp_path, aws):
    short = cli("gc", "--older-than", "2h", "--region", "us-east-1", cwd=tmp_path)
    assert one_line(short) and "--older-than=2h: shorter than a day" in short.stderr
    huge = cli("gc", "--older-than", "99999999999d", "--region", "us-east-1", cwd=tmp_path)  # was OverflowError
    assert one_line(huge) and "--older-than=99999999999d: longer than 36500 days" in huge.stderr, huge.stderr
    uri = cli("gc", "--bucket", "s3://my-bucket", "--region", "us-east-1", cwd=tmp_path)  # was exit 1, two lines
    assert one_line(uri) and "--bucket=s3://my-bucket: not a bucket name; pass the name alone, e.g. --bucket " \
        "my-bucket" in uri.stderr, uri.stderr
    since = cli("list", "--since", "99999999999d", "--region", "us-east-1", cwd=tmp_path)  # was OverflowError
    assert one_line(since) and "--since=99999999999d" in since.stderr, since.stderr
    nothing = cli("gc", "--dry-run", "--region", "us-east-1", cwd=tmp_path)  # no launch yet: no default bucket
    assert nothing.returncode == 0 and "nothing to delete" in nothing.stdout, nothing.stderr
    unknown = cli("gc", "--bucket", "no-such-bucket", "--region", "us-east-1", cwd=tmp_path)
    assert one_line(unknown) and "--bucket=no-such-bucket: no such bucket" in unknown.stderr
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a\n")
    launch(tmp_path, "fresh-one")
    inside = cli("gc", "--prefix", f"{PREFIX}/store", "--region", "us-east-1", cwd=tmp_path)
    assert one_line(inside) and "a folder inside an input store" in inside.stderr, inside.stderr
    before = keys(f"{PREFIX}/")
    preview = cli("gc", "--dry-run", "--region", "us-east-1", cwd=tmp_path)
    assert preview.returncode == 0, preview.stderr
    assert "would delete 0 manifests and 0 objects" in preview.stdout  # all of it is newer than 30 days
    real = cli("gc", "--region", "us-east-1", cwd=tmp_path)
    assert real.returncode == 0 and "deleted 0 manifests and 0 objects" in real.stdout
    assert keys(f"{PREFIX}/") == before


def test_ctrl_c_during_gc_says_what_was_deleted_and_a_rerun_finishes(tmp_path, aws):
    items = [version(tmp_path, f"v{i}", {"a.txt": f"{i}\n".encode()}) for i in range(3)]
    backdate(aws)
    aws.inject(r"^s3\.DeleteObjects$", delay=2.0, skip=1)  # the manifests go; the objects' request hangs
    env = {"PYTHONPATH": REPO, **aws.env()}
    proc = subprocess.Popen([sys.executable, "-m", "aws_train_remote.cli.main", "gc"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while sum(c["op"] == "s3.DeleteObjects" for c in aws.calls()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    print(stdout)
    assert proc.returncode == 130, stderr
    assert "gc interrupted: deleted 3 manifests and 0 objects so far (the 6 keys of the request under way may " \
           "be gone too)" in stdout
    assert "running gc again is safe" in stdout and "Traceback" not in stderr
    time.sleep(2.5)  # the delayed request lands before the server is reset for the next test
    aws.clear_faults()
    gc()
    assert not any(store_keys_of(item) & keys() for item in items)


def test_ctrl_c_before_anything_is_deleted(tmp_path, aws):
    version(tmp_path, "v", {"a.txt": b"a\n"})
    aws.inject(r"^SageMaker\.ListTrainingJobs$", delay=2.0)
    env = {"PYTHONPATH": REPO, **aws.env()}
    proc = subprocess.Popen([sys.executable, "-m", "aws_train_remote.cli.main", "gc"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(c["op"] == "SageMaker.ListTrainingJobs" for c in aws.calls()) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "deleted 0 manifests and 0 objects so far" in stdout, stdout + stderr
    assert keys(f"{PREFIX}/gc-clock/") == set()  # its marker deleted on the way out


def test_a_launch_writes_a_manifest_older_than_a_day_again(tmp_path, aws):
    """What keeps gc from taking a version that is being launched: the launch re-writes a manifest
    more than a day old (clock passed in), and only then."""
    from aws_train_remote.aws.s3 import Uploader, create_bucket
    from aws_train_remote.plan.uploads import plan_input

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a\n")
    item = plan_input("train", str(tmp_path / "data"), PREFIX)
    create_bucket(s3(), BUCKET, "us-east-1")
    now = datetime.datetime.now(datetime.timezone.utc)

    def manifest_puts(clock):
        aws.clear_faults()
        Uploader(s3(), BUCKET).upload_plan(_Only(item), clock=lambda: clock)
        return [c for c in aws.calls() if c["op"] == "s3.PutObject" and "/manifests/" in c["path"]]

    assert len(manifest_puts(now)) == 1  # the first launch writes it
    assert manifest_puts(now + datetime.timedelta(hours=23)) == []  # a fresh one is left alone
    assert len(manifest_puts(now + datetime.timedelta(hours=25))) == 1  # an old one is written again


def test_the_shapes_gc_takes_for_its_own():
    """Pure: which keys and manifest bytes are the tool's (plan/store_keys.py)."""
    import hashlib

    from aws_train_remote.plan import store_keys as shapes

    h = "ab" * 32
    assert shapes.store_object_digest("p", f"p/store/objects/{h}") == h
    for key in (f"p/store/objects/{h}.txt", f"p/store/objects/{h.upper()}", "p/store/objects/README.txt",
                f"p/store/objects/x/{h}", f"q/store/objects/{h}"):
        assert shapes.store_object_digest("p", key) is None, key
    assert shapes.store_manifest_digest("", f"store/manifests/{h}.json") == h
    assert shapes.version_manifest_digest("p", "p/manifests/my-data.json") is None
    assert shapes.version_of("p", f"p/inputs/{h}/a/b.csv") == (h, "a/b.csv")
    assert shapes.version_of("p", "p/inputs/train.csv") is None and shapes.version_of("p", f"p/inputs/{h}/") is None
    body = json.dumps([{"prefix": "s3://b/p/store/objects/"}, h], separators=(",", ":")).encode()
    digest = hashlib.sha256(body).hexdigest()
    assert shapes.read_store_manifest(body, digest, "b", "p") == {f"p/store/objects/{h}"}
    for bad, why in ((b"{not json", "not JSON"), (b'{"a": 1}', "not a ManifestFile"), (b"[]", "not a ManifestFile")):
        with pytest.raises(shapes.UnreadableManifest, match=why):
            shapes.read_store_manifest(bad, hashlib.sha256(bad).hexdigest(), "b", "p")
    with pytest.raises(shapes.UnreadableManifest, match="not the ones its name promises"):
        shapes.read_store_manifest(body, h, "b", "p")
    with pytest.raises(shapes.UnreadableManifest, match="not a ManifestFile of this store"):
        shapes.read_store_manifest(body, digest, "other-bucket", "p")
    assert [shapes.inner_name(p) for p in ("a/store", "a/objects/", "inputs", f"a/inputs/{h}", "a", "a/stores")] == \
        ["store", "objects", "inputs", h, None, None]
