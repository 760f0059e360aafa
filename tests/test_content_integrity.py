"""A job never trains on bytes other than the user's (issue 17, items 2 and 1e): every upload
carries S3's SHA-256 checksum, a launch trusts an object of the store by its checksum (never by
its size alone), a manifest only when its bytes are its name, and the objects a new manifest
names are checked again before the job is created (gc may have deleted one meanwhile). The
runtime's own check is in tests/test_input_store.py."""
import base64
import glob
import hashlib
import io
import os

import boto3
import pytest
from conftest import launch_no_wait, write_script

from aws_train_remote.aws import store_check
from aws_train_remote.aws.s3 import ObjectIndex, Uploader, create_bucket
from aws_train_remote.errors import AwsError
from aws_train_remote.plan.store import read_pack
from aws_train_remote.plan.uploads import plan_input

ROLE = "arn:aws:iam::123456789012:role/TrainRole"
BUCKET = "sagemaker-us-east-1-123456789012"
STORE = "aws-train-remote/store/"
SCRIPT = """
from aws_train_remote import training_main
def main(args):
    print("trained")
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"})
"""


def s3():
    return boto3.client("s3", region_name="us-east-1")


def b64(digest_hex):
    return base64.b64encode(bytes.fromhex(digest_hex)).decode()


def checksum(key):
    """S3's SHA-256 checksum of the object (moto keeps a composite one without its -N suffix)."""
    return s3().head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED").get("ChecksumSHA256")


def data(root, small=5, large=(), big=0):
    folder = root / "data"
    folder.mkdir(exist_ok=True)
    for i in range(small):
        (folder / f"part-{i:03d}.csv").write_text(f"{i},{i * i}\n" * 20)
    for i, size in enumerate(large):
        (folder / f"large-{i}.bin").write_bytes(os.urandom(size))
    if big:
        (folder / "big.bin").write_bytes(os.urandom(big))
    return folder


class Only:
    """An upload plan of store inputs and nothing else."""

    def __init__(self, *items):
        self.items = items

    def singles(self):
        return ()

    def prefix_inputs(self):
        return []

    def store_inputs(self):
        return list(self.items)


def uploader(tmp_path, client=None, stream=None):
    index = ObjectIndex(str(tmp_path / "index" / f"{BUCKET}.json"))
    return Uploader(client or s3(), BUCKET, index=index, progress_stream=stream or io.StringIO())


def ops(aws, name):
    return sum(1 for c in aws.calls() if c["op"] == name)


def test_every_upload_carries_the_sha256_its_name_fixes(tmp_path, aws):
    """One PUT carries the sha256 the plan knows (S3 refuses other bytes); a multipart upload
    carries one per part and S3 keeps their composite."""
    folder = data(tmp_path, small=5, large=[2 * 1024 * 1024], big=17 * 1024 * 1024)
    item = plan_input("train", str(folder), "aws-train-remote")
    create_bucket(s3(), BUCKET, "us-east-1")
    uploader(tmp_path).upload_plan(Only(item))
    seen = {}
    for obj in item.unique_objects():
        key = item.object_key(obj.sha256)
        if obj.kind == "pack":
            expected = b64(hashlib.sha256(read_pack(obj)).hexdigest())
        elif obj.size >= store_check.PART_SIZE:
            expected = store_check.file_checksum(obj.members[0].local, obj.size, obj.sha256)
            assert expected != b64(obj.sha256)  # a composite, not the file's own sha256
        else:
            expected = b64(obj.sha256)
        assert checksum(key) == expected, (obj.kind, obj.size)
        seen[obj.kind] = seen.get(obj.kind, 0) + 1
    assert seen == {"file": 2, "pack": 1, "tree": 1}
    manifest = item.manifest_key(BUCKET)
    assert checksum(manifest) == b64(hashlib.sha256(item.manifest(BUCKET)).hexdigest())


def store_object_keys(item, kind):
    return [item.object_key(o.sha256) for o in item.unique_objects() if o.kind == kind]


def data_puts(aws):
    """The store's keys written (the driver is sent again whenever the package's code changes)."""
    keys = (c["path"].split(BUCKET + "/", 1)[1] for c in aws.calls()
            if c["op"] in ("s3.PutObject", "s3.UploadPart", "s3.CopyObject"))
    return sorted(key for key in keys if key.startswith(STORE))


def test_an_object_replaced_by_other_bytes_of_its_size_is_sent_again(tmp_path, aws):
    """Issue 17.2: a large file and a pack replaced in S3 by other bytes of the same size (by hand,
    with S3's default checksum) are sent again by the relaunch; then, on a machine with no record
    of them, an object replaced with a SHA-256 checksum of its own bytes is sent again too, and
    the intact ones (a pack, a file sent in parts) are checked by their checksums and kept."""
    write_script(tmp_path, SCRIPT)
    folder = data(tmp_path, small=20, large=[1100 * 1024], big=17 * 1024 * 1024)
    launch_no_wait(tmp_path, ROLE)
    item = plan_input("train", str(folder), "aws-train-remote")
    pack, = store_object_keys(item, "pack")
    large, big = sorted(store_object_keys(item, "file"), key=lambda k: s3().head_object(Bucket=BUCKET, Key=k)[
        "ContentLength"])
    for key in (large, pack):
        size = s3().head_object(Bucket=BUCKET, Key=key)["ContentLength"]
        s3().put_object(Bucket=BUCKET, Key=key, Body=os.urandom(size))
    aws.clear_faults()
    second = launch_no_wait(tmp_path, ROLE)
    assert data_puts(aws) == sorted([large, pack]), second.stderr
    assert "2 objects of the input store" in second.stderr and "sending again" in second.stderr
    assert checksum(large) == b64(large.rsplit("/", 1)[1])
    assert s3().get_object(Bucket=BUCKET, Key=pack)["Body"].read() == read_pack(
        next(o for o in item.unique_objects() if item.object_key(o.sha256) == pack))

    for index in glob.glob(str(tmp_path / "home" / ".cache" / "aws-train-remote" / "objects" / "*.verified.json")):
        os.remove(index)  # a new machine: no record of what was sent or checked
    s3().put_object(Bucket=BUCKET, Key=large, Body=os.urandom(1100 * 1024), ChecksumAlgorithm="SHA256")
    aws.clear_faults()
    third = launch_no_wait(tmp_path, ROLE)
    heads = sum(1 for c in aws.calls() if c["op"] == "s3.HeadObject" and STORE in c["path"])
    assert heads == 4 + 1 + 1, heads  # the four objects and the manifest; the large file once sent
    assert data_puts(aws) == [large], third.stderr
    assert checksum(large) == b64(large.rsplit("/", 1)[1])
    print(f"a machine with no record: {heads} HeadObject of the store, {ops(aws, 's3.ListObjectsV2')} ListObjectsV2")


def test_a_manifest_changed_by_hand_is_written_again(tmp_path, aws):
    """Issue 17.2: a manifest whose bytes are not its name (here, its tree dropped) is written
    again by the next launch, so the job that launch creates reads the version it names."""
    write_script(tmp_path, SCRIPT)
    data(tmp_path, small=3)
    launch_no_wait(tmp_path, ROLE)
    listed = s3().list_objects_v2(Bucket=BUCKET, Prefix=STORE + "manifests/")["Contents"]
    key = listed[0]["Key"]
    good = s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(good).hexdigest() == key.rsplit("/", 1)[1][:-5]
    s3().put_object(Bucket=BUCKET, Key=key, Body=good.replace(b"]", b"").rsplit(b",", 1)[0] + b"]")
    aws.clear_faults()
    second = launch_no_wait(tmp_path, ROLE)
    assert data_puts(aws) == [key], second.stderr
    assert s3().get_object(Bucket=BUCKET, Key=key)["Body"].read() == good
    job = [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"][-1]
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"] if c["ChannelName"] == "train"]
    assert uris == [f"s3://{BUCKET}/{key}"]


class Gc:
    """Deletes `victim` as a gc that listed the store before this launch's manifest existed would:
    once, just after that manifest's PUT lands; or (`relentless`) before every listing the launch
    makes from then on."""

    def __init__(self, client, victim: str, relentless: bool = False):
        self.victim, self.relentless, self.armed, self.deleted = victim, relentless, False, 0
        client.meta.events.register("provide-client-params.s3.PutObject", self.arm)
        if relentless:
            client.meta.events.register("before-call.s3.ListObjectsV2", self.delete)
        else:
            client.meta.events.register("after-call.s3.PutObject", self.delete)

    def arm(self, params, **kwargs):
        self.armed = self.armed or "/manifests/" in params.get("Key", "")

    def delete(self, **kwargs):
        if self.armed and (self.deleted == 0 or self.relentless):
            s3().delete_object(Bucket=BUCKET, Key=self.victim)
            self.deleted += 1


@pytest.mark.parametrize("how", ["listing", "heads"])
def test_an_object_gc_deletes_after_the_manifest_is_written_is_sent_again(tmp_path, aws, monkeypatch, how):
    """Issue 17.1e: version 2 shares a large file with version 1; a gc deletes it between the
    store listing and version 2's manifest. The launch checks what the new manifest names after
    writing it (one listing, or a HeadObject per object when the store is much larger than the
    version: LIST_PAGE shrunk here to take that branch) and sends it again before any job exists."""
    folder = data(tmp_path, small=2, large=[1100 * 1024])
    create_bucket(s3(), BUCKET, "us-east-1")
    first = plan_input("train", str(folder), "aws-train-remote")
    earlier = uploader(tmp_path)
    earlier.upload_plan(Only(first))
    earlier.index.save()
    (folder / "part-new.csv").write_text("new\n")
    second = plan_input("train", str(folder), "aws-train-remote")
    large, = store_object_keys(second, "file")
    if how == "heads":
        monkeypatch.setattr(store_check, "LIST_PAGE", 1)
    client, stream = s3(), io.StringIO()
    gc = Gc(client, large)
    aws.clear_faults()
    uploader(tmp_path, client, stream).upload_plan(Only(second))
    lists, heads = ops(aws, "s3.ListObjectsV2"), ops(aws, "s3.HeadObject")
    assert gc.deleted == 1
    assert checksum(large) == b64(large.rsplit("/", 1)[1])  # there again, and whole
    assert "1 object of this launch's inputs went missing" in stream.getvalue()
    # the store listing; the check; the re-send (and its HeadObject); the check again
    assert (lists, heads) == ((3, 1) if how == "listing" else (1, 1 + 2 * 4)), (lists, heads)
    print(f"{how}: {lists} ListObjectsV2, {heads} HeadObject for a version of 3 objects and its manifest")


def test_a_launch_gives_up_when_gc_keeps_deleting(tmp_path, aws):
    folder = data(tmp_path, small=2, large=[1100 * 1024])
    create_bucket(s3(), BUCKET, "us-east-1")
    item = plan_input("train", str(folder), "aws-train-remote")
    large, = store_object_keys(item, "file")
    client = s3()
    Gc(client, large, relentless=True)
    with pytest.raises(AwsError) as err:
        uploader(tmp_path, client).upload_plan(Only(item))
    assert f"keep disappearing from s3://{BUCKET} (first: {large})" in str(err.value)
    assert "No job was created" in str(err.value) and "\n" not in str(err.value)
