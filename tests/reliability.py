"""Helpers for the reliability suite: a project whose data changes between launches, snapshots
of the local files, and checks of what a job would read in S3."""
import gzip
import hashlib
import io
import json
import os
import zipfile

import boto3

BUCKET = "sagemaker-us-east-1-123456789012"
ROLE = "arn:aws:iam::123456789012:role/TrainRole"
SCRIPT = """
import os, sys, time
from aws_train_remote import training_main
def main(args):
    host = os.environ.get("SM_CURRENT_HOST", "local")
    for i in range(args.lines):
        print(f"{host} line {i:02d}", flush=True)
        time.sleep(0.02)
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"}, additional_arguments=[{"dest": "--lines", "type": int, "default": 5}])
"""


def s3():
    """Response checksums are not validated here: moto stores a multipart object's composite
    checksum without its -N suffix (moto_fidelity.md section 3), which botocore would take for a
    full-object checksum. These checks compare sha256 with the local files instead."""
    from botocore.config import Config

    return boto3.client("s3", region_name="us-east-1", config=Config(response_checksum_validation="when_required"))


def sagemaker():
    return boto3.client("sagemaker", region_name="us-east-1")


def snapshot(folder) -> dict:
    """relative path -> sha256 of every file under folder."""
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, folder).replace(os.sep, "/")] = hashlib.sha256(fh.read()).hexdigest()
    return out


def objects(prefix="") -> dict:
    """key -> size of every object in the default bucket under prefix ({} without a bucket)."""
    client = s3()
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        return {}
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["Size"] for p in pages for o in p.get("Contents", [])}


def channel(request: dict, name: str) -> dict:
    """relative path -> sha256 of what channel `name` of this request holds in S3: a prefix's
    objects, or the files a ManifestFile's tree cuts out of the objects it names."""
    source = next(c for c in request["InputDataConfig"] if c["ChannelName"] == name)["DataSource"]["S3DataSource"]
    uri = source["S3Uri"]
    bucket, prefix = uri[len("s3://"):].split("/", 1)
    client = s3()
    out = {}
    if source["S3DataType"] == "ManifestFile":
        entries = json.loads(client.get_object(Bucket=bucket, Key=prefix)["Body"].read())
        base_bucket, base = entries[0]["prefix"][len("s3://"):].split("/", 1)
        blobs = {s: client.get_object(Bucket=base_bucket, Key=base + s)["Body"].read() for s in entries[1:]}
        tree = json.loads(blobs[json.loads(request["HyperParameters"]["sagemaker_atr_trees"])[name]])
        for obj, files in tree["objects"]:
            offset = 0
            for path, size, _, _ in files:
                out[path] = hashlib.sha256(blobs[obj][offset:offset + size]).hexdigest()
                offset += size
        return out
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            out[o["Key"][len(prefix):]] = hashlib.sha256(body).hexdigest()
    return out


def content_addressed_ok(request: dict) -> bool:
    """The code and driver objects hash to the sha256 their keys name."""
    client = s3()
    for name in ("code", "atr_driver"):
        uri = next(c for c in request["InputDataConfig"] if c["ChannelName"] == name)["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, prefix = uri[len("s3://"):].split("/", 1)
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        if len(listed) != 1:
            return False
        body = client.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read()
        if hashlib.sha256(body).hexdigest() != prefix.rstrip("/").rsplit("/", 1)[1]:
            return False
    return True


def readable_bytes(key: str, body: bytes) -> bytes:
    """An object's bytes as a reader sees them: gzip and zip members unpacked."""
    if body[:2] == b"\x1f\x8b":
        return gzip.decompress(body)
    if body[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            return b"".join(zf.read(n) + n.encode() for n in zf.namelist())
    return body


def all_object_bytes() -> list:
    client = s3()
    out = []
    for b in client.list_buckets()["Buckets"]:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
            for o in page.get("Contents", []):
                body = client.get_object(Bucket=b["Name"], Key=o["Key"])["Body"].read()
                out.append((o["Key"], readable_bytes(o["Key"], body)))
    return out


def incomplete_multipart() -> list:
    client = s3()
    found = []
    for b in client.list_buckets()["Buckets"]:
        found += client.list_multipart_uploads(Bucket=b["Name"]).get("Uploads", [])
    return found
