"""An s3:// input in a local run is fetched once into the cache, verified by size and ETag."""
import json

import boto3
from conftest import run_python, write_script

SCRIPT = """
import json, os, sys
from aws_train_remote import training_main
def main(args):
    files = sorted(os.path.relpath(os.path.join(d, f), args.train) for d, _, fs in os.walk(args.train) for f in fs
                   if not f.startswith(".atr"))
    print(json.dumps({"path": args.train, "files": files,
                      "content": open(os.path.join(args.train, "a.txt")).read(),
                      "yaml": "yaml" in sys.modules}))
if __name__ == "__main__":
    training_main(main, inputs={"train": "s3://input-bucket/datasets/v1/"})
"""


def test_s3_input_downloaded_once_and_refreshed_on_change(tmp_path, aws):
    s3 = boto3.client("s3", endpoint_url=aws.url, region_name="us-east-1")
    s3.create_bucket(Bucket="input-bucket")
    s3.put_object(Bucket="input-bucket", Key="datasets/v1/a.txt", Body=b"first")
    s3.put_object(Bucket="input-bucket", Key="datasets/v1/sub/b.txt", Body=b"bee")
    write_script(tmp_path, SCRIPT)

    first = run_python(["train.py"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["files"] == ["a.txt", "sub/b.txt"] and out["content"] == "first"
    assert out["path"].startswith(str(tmp_path / "home" / ".cache" / "aws-train-remote" / "s3" / "input-bucket"))
    assert out["yaml"] is False
    gets = [c for c in aws.calls() if c["op"] == "s3.GetObject"]
    assert len(gets) == 2

    aws.clear_faults()  # also clears the call log
    again = run_python(["train.py"], cwd=tmp_path)
    assert json.loads(again.stdout)["content"] == "first"
    assert [c for c in aws.calls() if c["op"] == "s3.GetObject"] == []

    s3.put_object(Bucket="input-bucket", Key="datasets/v1/a.txt", Body=b"second")
    aws.clear_faults()
    changed = run_python(["train.py"], cwd=tmp_path)
    assert json.loads(changed.stdout)["content"] == "second"
    assert len([c for c in aws.calls() if c["op"] == "s3.GetObject"]) == 1


def test_missing_s3_input_is_one_line(tmp_path, aws):
    boto3.client("s3", endpoint_url=aws.url, region_name="us-east-1").create_bucket(Bucket="input-bucket")
    write_script(tmp_path, SCRIPT)
    result = run_python(["train.py"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("train.py: error: --train=s3://input-bucket/datasets/v1/: no objects at this "
                                     "S3 location; check the URI")
