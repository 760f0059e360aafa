"""Issue 17 attacked again with the neighbouring inputs it did not write down. Each test is one
defect the attack found; its docstring says what it did before the fix. Real parts: the loopback
moto server, real subprocesses for the command line, real tar archives."""
import datetime
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import boto3
from conftest import REPO, launch_no_wait, run_python, write_script
from test_gc import (
    BUCKET,
    DAY,
    PREFIX,
    ROLE,
    _Only,
    backdate,
    gc,
    keys,
    prefix_keys_of,
    put,
    s3,
    store_keys_of,
    version,
)


def manifest_puts(aws):
    return [c for c in aws.calls() if c["op"] == "s3.PutObject" and "/manifests/" in c["path"]]


# -- gc and the launch: S3's clock on both sides --------------------------------------------------------

def test_a_launch_whose_clock_is_behind_writes_again_a_manifest_s3_finds_old(tmp_path, aws):
    """The launch aged a store manifest by this machine's clock: two days behind, a manifest S3
    stamped 1.5 days ago looked fresh, was not written again, and `gc --older-than 1d` (S3's clock)
    then deleted the version the launch was about to create its job on."""
    from aws_train_remote.aws.s3 import Uploader

    item = version(tmp_path, "v", {"a.txt": b"a\n"})
    backdate(aws, days=1.5)
    behind = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    aws.clear_faults()
    Uploader(s3(), BUCKET).upload_plan(_Only(item), clock=lambda: behind)
    assert len(manifest_puts(aws)) == 1  # was 0
    gc(older_than=DAY)
    assert store_keys_of(item) <= keys()  # was: all three gone


def test_gc_dry_run_writes_nothing_so_read_only_credentials_can_preview(tmp_path, aws):
    """gc read S3's clock by writing a marker, even with --dry-run: credentials that may only read
    got AccessDenied (exit 1) instead of the preview."""
    item = version(tmp_path, "v", {"a.txt": b"a\n"})
    backdate(aws)
    aws.inject(r"^s3\.(PutObject|DeleteObject|DeleteObjects)$", status=403, code="AccessDenied", times=100)
    preview = gc(dry_run=True)
    assert "would delete 1 manifests and 2 objects" in preview
    aws.clear_faults()
    assert not [c for c in aws.calls() if c["op"] in ("s3.PutObject", "s3.DeleteObject", "s3.DeleteObjects")]
    assert store_keys_of(item) <= keys()


def test_gc_keeps_what_a_job_waiting_in_a_batch_queue_reads(tmp_path, aws):
    """A job waiting in an AWS Batch queue for SageMaker training (SubmitServiceJob) has no
    training job yet, and gc looked only at training and tuning jobs: it deleted the queued job's
    version, which would fail at staging once its turn came."""
    queued = version(tmp_path, "queued", {"a.txt": b"queued\n"})
    stale = version(tmp_path, "stale", {"b.txt": b"stale\n"})
    batch = boto3.client("batch", region_name="us-east-1")
    arn = batch.create_job_queue(jobQueueName="ml-training", priority=1, jobQueueType="SAGEMAKER_TRAINING",
                                 serviceEnvironmentOrder=[{"order": 1, "serviceEnvironment": "env"}])["jobQueueArn"]
    request = {"TrainingJobName": "waiting", "InputDataConfig": [{"ChannelName": "train", "DataSource": {
        "S3DataSource": {"S3DataType": "ManifestFile", "S3DataDistributionType": "FullyReplicated",
                         "S3Uri": f"s3://{BUCKET}/{queued.manifest_key(BUCKET)}"}}}]}
    with aws.queues.lock:  # behind a job that holds the queue: it waits (no scheduler thread runs it)
        aws.queues.jobs["j-1"] = {"jobId": "j-1", "jobName": "waiting", "jobQueue": arn, "status": "RUNNABLE",
                                  "jobArn": "arn:aws:batch:us-east-1:123456789012:service-job/j-1",
                                  "serviceJobType": "SAGEMAKER_TRAINING", "createdAt": int(time.time() * 1000),
                                  "serviceRequestPayload": json.dumps(request), "attempts": [], "tags": {}}
    backdate(aws)
    result = run_python(["-m", "aws_train_remote.cli.main", "gc", "--region", "us-east-1"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert store_keys_of(queued) <= keys(), result.stdout  # was: deleted
    assert not store_keys_of(stale) & keys()


def test_gc_leaves_a_version_manifest_not_byte_for_byte_the_tools_and_files_written_over(tmp_path, aws):
    """gc took any JSON named by its own sha256 with {"version": 1, "files": [{"path": ...}]} for
    a prefix version's manifest and deleted the files it listed, and deleted a version's file a
    user had written over with other bytes (its size no longer the recorded one)."""
    old = version(tmp_path, "old", {"x.csv": b"1,2\n", "y.csv": b"3,4\n"}, mode="FastFile")
    body = json.dumps({"version": 1, "files": [{"path": "mine.csv"}]}).encode()  # not manifest_bytes' form
    digest = hashlib.sha256(body).hexdigest()
    put(f"{PREFIX}/manifests/{digest}.json", body)
    put(f"{PREFIX}/inputs/{digest}/mine.csv", b"a user's rows\n")
    rewritten = next(f.key for f in old.files if f.key.endswith("y.csv"))
    put(rewritten, b"the user's own, longer rows\n")
    backdate(aws)
    print(gc())
    after = keys()
    assert {f"{PREFIX}/manifests/{digest}.json", f"{PREFIX}/inputs/{digest}/mine.csv"} <= after  # was: deleted
    assert rewritten in after  # was: deleted
    assert not (prefix_keys_of(old) - {rewritten}) & after  # the rest of the stale version went


# -- download -------------------------------------------------------------------------------------------

def test_an_archive_with_a_member_under_a_file_is_not_blamed_on_the_destination(tmp_path):
    """A model.tar.gz holding a file `a`, then `a/b` (or then a folder `a`): tarfile's
    NotADirectoryError reached the download, which said "--dest=DIR: is a file, not a folder" of a
    folder; the model's other files were not delivered."""
    from aws_train_remote.executors.model_download import unpack_model

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, kind in (("a", tarfile.REGTYPE), ("a/b", tarfile.REGTYPE), ("a", tarfile.DIRTYPE),
                           ("w.bin", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = 0 if kind == tarfile.DIRTYPE else 2
            tar.addfile(info, io.BytesIO(b"ok") if kind != tarfile.DIRTYPE else None)
    for dest in (tmp_path / "there", tmp_path / "fresh"):
        if dest.name == "there":
            dest.mkdir()
            (dest / "keep.txt").write_text("mine")
        unpacked = unpack_model(str(archive), str(dest), overwrite=False, flag="--dest", job="j")
        assert unpacked.files == 2 and len(unpacked.skipped) == 2, unpacked
        assert (dest / "w.bin").read_bytes() == b"ok" and (dest / "a").read_bytes() == b"ok"
        assert "under a file" in unpacked.skipped[0] and "replaces a file" in unpacked.skipped[1]


# -- defects in files owned by other engineers (reported, not fixed here) ----------------------------------

def test_ctrl_c_stop_during_an_outage_says_the_job_still_runs(tmp_path, sandbox):
    """`attach JOB --stop-on-interrupt`, Ctrl-C while the network is down: StopTrainingJob's
    ConnectionClosedError escaped follow_job (executors/sagemaker.py) and ended the command with
    exit 1 (the status of a failed job) and "check the network, region and credentials"; nothing
    said that the job still runs or how to stop it."""
    write_script(tmp_path, """
        import time
        from aws_train_remote import training_main
        def main(args):
            print("started", flush=True)
            time.sleep(60)
        if __name__ == "__main__":
            training_main(main)
        """)
    launched = launch_no_wait(tmp_path, ROLE, "--sagemaker-job-name", "stop-me")
    assert launched.returncode == 0
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen([sys.executable, "-m", "aws_train_remote.cli.main", "attach", "stop-me",
                             "--stop-on-interrupt", "--region", "us-east-1"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:  # the follow runs: the job's first line is printed
        seen.append(line)
        if "started" in line or len(seen) > 200:
            break
    sandbox.inject(r"^SageMaker\.StopTrainingJob$", kind="drop_before", times=100)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        sandbox.clear_faults()
        boto3.client("sagemaker", region_name="us-east-1").stop_training_job(TrainingJobName="stop-me")
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("stopping ")]
    assert "Traceback" not in stderr and proc.returncode not in (0, 1), stderr
    assert len(lines) == 1 and "aws-train-remote stop stop-me" in lines[0], stderr


def test_a_fastfile_file_replaced_by_other_bytes_of_its_size_is_sent_again(tmp_path, aws):
    """A prefix version (FastFile, sharded) trusted each file by its size (aws/s3.py upload_plan):
    a file of inputs/<sha256>/ replaced in S3 by other bytes of the same size was not sent again,
    and the job read them."""
    from aws_train_remote.aws.s3 import Uploader

    item = version(tmp_path, "v", {"a.txt": b"good\n"}, mode="FastFile")
    key = item.files[0].key
    put(key, b"EVIL\n")
    Uploader(s3(), BUCKET).upload_plan(_Only(item))
    assert s3().get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"good\n"  # was b"EVIL\n"


def test_a_fastfile_relaunch_writes_again_a_manifest_older_than_a_day(tmp_path, aws):
    """Store manifests older than a day are written again by a launch, so `gc --older-than 1d`
    keeps a version being launched; a prefix version's manifest never was (aws/s3.py upload_plan:
    it only checks that it exists): gc running during the launch deleted the version the job was
    about to read."""
    from aws_train_remote.aws.s3 import Uploader

    item = version(tmp_path, "v", {"a.csv": b"1\n"}, mode="FastFile")
    backdate(aws, days=2)
    aws.clear_faults()
    Uploader(s3(), BUCKET).upload_plan(_Only(item))
    assert len(manifest_puts(aws)) == 1  # was 0
    gc(older_than=DAY)
    assert prefix_keys_of(item) <= keys()


def test_a_prefix_with_dot_dot_is_refused_before_anything_is_created(tmp_path):
    """`--sagemaker-prefix ../x` passed the launch (spec/storage.py strips slashes only): in the
    sandbox the job was created, billed, and failed at staging ("manifest ... names '...', outside
    its prefix"). One line, exit 2, like --sagemaker-bucket s3://x."""
    write_script(tmp_path, "from aws_train_remote import training_main\ntraining_main(lambda args: None)\n")
    for prefix in ("../x",):
        result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                             "--sagemaker-region", "us-east-1", "--sagemaker-prefix", prefix], cwd=tmp_path)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, (prefix, result.stderr)
        assert "--sagemaker-prefix" in result.stderr


def test_ctrl_c_while_gc_deletes_a_version_manifest_names_the_folder_it_may_orphan(tmp_path, aws):
    """Ctrl-C while the DeleteObjects of a prefix version's manifest was under way: gc noted the
    folder only after that request answered, so the message said "every manifest left names only
    objects that are still there" and nothing of the version's files, which no later gc takes for
    the tool's once the request lands."""
    item = version(tmp_path, "v", {"a.csv": b"1\n"}, mode="FastFile")
    backdate(aws)
    aws.inject(r"^s3\.DeleteObjects$", delay=2.0)  # the version manifest's request hangs
    env = {"PYTHONPATH": REPO, **aws.env()}
    proc = subprocess.Popen([sys.executable, "-m", "aws_train_remote.cli.main", "gc"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(c["op"] == "s3.DeleteObjects" for c in aws.calls()) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    time.sleep(2.5)  # the delayed request lands
    aws.clear_faults()
    assert proc.returncode == 130, stderr
    folder = f"s3://{BUCKET}/{item.prefix_key}"
    assert f"aws s3 rm --recursive {folder}" in stdout, stdout  # was: not named
    assert item.manifest_key not in keys()
