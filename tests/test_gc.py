"""aws-train-remote gc (issue 11.5): the store does not grow forever, and gc never takes what a
running job reads. moto cannot backdate an object, so the age rule is exercised by a cutoff a few
seconds in the future (everything is older than it) through run_gc, and the CLI is tested for its
refusals and its dry run."""
import datetime
import io

import boto3
from conftest import launch_no_wait, run_python, write_script
from reliability import channel, snapshot

from aws_train_remote.executors.store_gc import run_gc

ROLE = "arn:aws:iam::123456789012:role/Gc"
BUCKET = "sagemaker-us-east-1-123456789012"
SCRIPT = """
from aws_train_remote import training_main
def main(args):
    pass
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"})
"""


def launch(root, name, *args):
    return launch_no_wait(root, ROLE, "--sagemaker-job-name", name, *args)


def keys(prefix):
    s3 = boto3.client("s3", region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"] for p in pages for o in p.get("Contents", [])}


def request_of(aws, name):
    return next(c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"
                and c["body"]["TrainingJobName"] == name)


def gc(dry_run=False):
    out = io.StringIO()
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30)
    run_gc(boto3.client("s3", region_name="us-east-1"), boto3.client("sagemaker", region_name="us-east-1"),
           BUCKET, "aws-train-remote", soon, dry_run, out)
    return out.getvalue()


def test_gc_keeps_what_a_running_job_reads_and_deletes_the_rest(tmp_path, aws):
    write_script(tmp_path, SCRIPT)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(50):
        (data / f"f{i:02d}.txt").write_text(f"row {i}\n" * 10)
    launch(tmp_path, "gc-one")
    one = keys("aws-train-remote/store/")
    (data / "f07.txt").write_text("changed\n")
    launch(tmp_path, "gc-two")
    both = keys("aws-train-remote/store/")
    aws.set_job("gc-two", training_job_status="InProgress")

    preview = gc(dry_run=True)
    assert "would delete 1 manifests and 2 objects" in preview  # version one's manifest, pack and tree
    listed = {line.strip() for line in preview.splitlines() if line.startswith("  ")}
    assert listed <= one and len(listed) == 3  # version one's own objects only
    assert keys("aws-train-remote/store/") == both  # a dry run deletes nothing
    print(gc())
    assert keys("aws-train-remote/store/") == both - listed
    assert channel(request_of(aws, "gc-two"), "train") == snapshot(data)  # the running job's data is whole

    aws.set_job("gc-two", training_job_status="Completed")
    gc()
    assert keys("aws-train-remote/store/") == set()
    again = launch(tmp_path, "gc-three")  # the next launch finds nothing and sends it all again
    assert "3 objects sent" in again.stdout or "2 objects sent" in again.stdout
    assert channel(request_of(aws, "gc-three"), "train") == snapshot(data)


def test_gc_removes_unused_prefix_versions_too(tmp_path, aws):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a\n")
    launch(tmp_path, "fast-one", "--train-mode", "FastFile")
    assert keys("aws-train-remote/inputs/") and keys("aws-train-remote/manifests/")
    aws.set_job("fast-one", training_job_status="InProgress")
    gc()
    assert keys("aws-train-remote/inputs/")  # in use
    aws.set_job("fast-one", training_job_status="Stopped")
    gc()
    assert keys("aws-train-remote/inputs/") == set() and keys("aws-train-remote/manifests/") == set()
    assert keys("aws-train-remote/code/")  # gc touches uploaded inputs only


def cli(*args, cwd):
    return run_python(["-m", "aws_train_remote.cli.main", *args], cwd=cwd)


def test_gc_command_refuses_a_short_cutoff_and_previews(tmp_path, aws):
    short = cli("gc", "--older-than", "2h", "--region", "us-east-1", cwd=tmp_path)
    assert short.returncode == 2 and "Traceback" not in short.stderr
    assert "--older-than=2h: shorter than a day" in short.stderr and len(short.stderr.strip().splitlines()) == 1
    nothing = cli("gc", "--dry-run", "--region", "us-east-1", cwd=tmp_path)  # no launch yet: no default bucket
    assert nothing.returncode == 0 and "nothing to delete" in nothing.stdout, nothing.stderr
    unknown = cli("gc", "--bucket", "no-such-bucket", "--region", "us-east-1", cwd=tmp_path)
    assert unknown.returncode == 2 and "--bucket=no-such-bucket: no such bucket" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a\n")
    launch(tmp_path, "fresh-one")
    before = keys("aws-train-remote/")
    preview = cli("gc", "--dry-run", "--region", "us-east-1", cwd=tmp_path)
    assert preview.returncode == 0, preview.stderr
    assert "would delete 0 manifests and 0 objects" in preview.stdout  # all of it is newer than 30 days
    real = cli("gc", "--region", "us-east-1", cwd=tmp_path)
    assert real.returncode == 0 and "deleted 0 manifests and 0 objects" in real.stdout
    assert keys("aws-train-remote/") == before


def test_a_launch_writes_a_manifest_older_than_a_day_again(tmp_path, aws):
    """What keeps gc from taking a version that is being launched: the launch re-writes a manifest
    more than a day old (clock passed in), and only then."""
    from aws_train_remote.aws.s3 import Uploader, create_bucket
    from aws_train_remote.plan.uploads import plan_input

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a\n")
    item = plan_input("train", str(tmp_path / "data"), "aws-train-remote")
    s3 = boto3.client("s3", region_name="us-east-1")
    create_bucket(s3, BUCKET, "us-east-1")
    now = datetime.datetime.now(datetime.timezone.utc)

    def manifest_puts(clock):
        aws.clear_faults()
        Uploader(s3, BUCKET).upload_plan(_Only(item), clock=lambda: clock)
        return [c for c in aws.calls() if c["op"] == "s3.PutObject" and "/manifests/" in c["path"]]

    assert len(manifest_puts(now)) == 1  # the first launch writes it
    assert manifest_puts(now + datetime.timedelta(hours=23)) == []  # a fresh one is left alone
    assert len(manifest_puts(now + datetime.timedelta(hours=25))) == 1  # an old one is written again


class _Only:
    """An upload plan of one store input and nothing else."""

    def __init__(self, item):
        self.item = item

    def singles(self):
        return ()

    def prefix_inputs(self):
        return []

    def store_inputs(self):
        return [self.item]
