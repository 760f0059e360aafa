"""Local cache of s3:// inputs for local runs: downloaded once, kept while the objects'
size and ETag are unchanged, written through a temporary name so a partial download is
never mistaken for a complete one."""
from __future__ import annotations

import json
import os

from ..contract import split_s3
from ..errors import AwsError, UsageError


def _objects(s3, bucket, key):
    """[(relative name, key, size, etag)] for an object, or every object under a prefix."""
    from botocore.exceptions import ClientError

    if key and not key.endswith("/"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            return [(os.path.basename(key), key, head["ContentLength"], head["ETag"])], True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "403"):
                raise
    prefix = key if not key or key.endswith("/") else key + "/"
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            if rel and not rel.endswith("/"):
                found.append((rel, obj["Key"], obj["Size"], obj["ETag"]))
    return found, False


def _safe_join(root, rel):
    target = os.path.realpath(os.path.join(root, rel))
    if not target.startswith(os.path.realpath(root) + os.sep):
        raise AwsError(f"refusing S3 key that escapes the cache folder: {rel!r}")
    return target


def fetch(s3, uri: str, cache_dir: str, flag: str = "input") -> str:
    """Local path of the cached copy of `uri` (a file for an object, a folder for a prefix)."""
    from botocore.exceptions import ClientError

    bucket, key = split_s3(uri)
    try:
        objects, single = _objects(s3, bucket, key)
    except ClientError as err:
        raise AwsError(f"{flag}={uri}: cannot list ({err.response.get('Error', {}).get('Code')}); "
                       "check the URI and your credentials") from None
    if not objects:
        raise UsageError(flag, uri, "no objects at this S3 location", "check the URI")
    root = os.path.join(cache_dir, bucket, key.rstrip("/") if not single else os.path.dirname(key))
    os.makedirs(root, exist_ok=True)
    index_path = os.path.join(root, ".atr-index.json")
    try:
        with open(index_path, encoding="utf-8") as fh:
            index = json.load(fh)
    except (OSError, ValueError):
        index = {}
    for rel, obj_key, size, etag in objects:
        target = _safe_join(root, rel)
        known = index.get(rel)
        if known == {"size": size, "etag": etag} and os.path.isfile(target) and os.path.getsize(target) == size:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = target + ".atr-partial"
        s3.download_file(bucket, obj_key, partial)
        if os.path.getsize(partial) != size:
            os.remove(partial)
            raise AwsError(f"{flag}={uri}: download of {obj_key} was incomplete; run again")
        os.replace(partial, target)
        index[rel] = {"size": size, "etag": etag}
        with open(index_path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(index, fh)
        os.replace(index_path + ".tmp", index_path)
    return os.path.join(root, objects[0][0]) if single else root


def fetch_inputs(s3, named_uris, cache_dir: str) -> dict:
    return {name: fetch(s3, uri, cache_dir, flag="--" + name.replace("_", "-")) for name, uri in named_uris}
