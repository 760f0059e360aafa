"""The loopback sandbox under load: users run it in their CI, beside other work.

Every call below is made with retries off, so a call the server dropped or failed shows up as
an error instead of being hidden (or, for a create, turned into a second attempt) by botocore.
"""
import collections
import subprocess
import sys
import threading
import time

import pytest

THREADS = 8
ROUNDS = 4  # x 7 calls x 8 threads = 224 calls


def _client(sandbox, service):
    import boto3
    from botocore.config import Config

    env = sandbox.env()
    return boto3.session.Session().client(
        service, endpoint_url=sandbox.url, region_name=env["AWS_REGION"], aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=60, max_pool_connections=4))


def _job_request(bucket):
    return dict(AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
                RoleArn="arn:aws:iam::123456789012:role/r", OutputDataConfig={"S3OutputPath": f"s3://{bucket}/out"},
                ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
                StoppingCondition={"MaxRuntimeInSeconds": 60})


@pytest.fixture
def busy_machine():
    """Two processes spinning on the CPU (bounded at 60 s), as a second test worker would."""
    burners = [subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 60\nwhile time.time() < end: pass"])
               for _ in range(2)]
    yield
    for proc in burners:
        proc.kill()
        proc.wait()


def test_concurrent_calls_on_a_busy_machine_are_all_answered(aws, busy_machine):
    bucket = "load-bucket"
    _client(aws, "s3").create_bucket(Bucket=bucket)
    _client(aws, "logs").create_log_group(logGroupName="load")
    request = _job_request(bucket)
    errors, answered = collections.Counter(), collections.Counter()

    def work(worker):
        s3, sm, logs = (_client(aws, s) for s in ("s3", "sagemaker", "logs"))
        logs.create_log_stream(logGroupName="load", logStreamName=f"s{worker}")
        for round_ in range(ROUNDS):
            name = f"load-{worker}-{round_}"
            calls = (lambda: sm.create_training_job(TrainingJobName=name, **request),
                     lambda: sm.list_training_jobs(MaxResults=100),
                     lambda: sm.describe_training_job(TrainingJobName=name),
                     lambda: s3.put_object(Bucket=bucket, Key=f"k/{name}", Body=b"x" * 4096),
                     lambda: s3.list_objects_v2(Bucket=bucket, Prefix="k/"),
                     lambda: logs.put_log_events(logGroupName="load", logStreamName=f"s{worker}", logEvents=[
                         {"timestamp": int(time.time() * 1000), "message": name}]),
                     lambda: logs.describe_log_streams(logGroupName="load"))
            for number, call in enumerate(calls):
                try:
                    call()
                    answered[number] += 1
                except Exception as err:  # noqa: BLE001 - every failure is counted and shown
                    errors[f"{type(err).__name__}: {str(err)[:120]}"] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    total = sum(answered.values())
    print(f"\nsandbox load: {total} calls from {THREADS} threads on a busy machine in "
          f"{time.monotonic() - started:.1f} s, {sum(errors.values())} failed, {len(aws.injector.unexpected)} "
          "server errors")
    assert not errors, dict(errors)
    assert total == THREADS * ROUNDS * 7 >= 200
    assert aws.injector.unexpected == []
    jobs = {j["TrainingJobName"] for j in _client(aws, "sagemaker").list_training_jobs(MaxResults=100)[
        "TrainingJobSummaries"]}
    assert len(jobs) == THREADS * ROUNDS


def test_a_failing_after_hook_never_turns_an_acted_create_into_a_server_error(aws):
    """moto created the job; a fault in what the sandbox does next must not make the client retry."""
    def broken(body):
        raise RuntimeError("sandbox hook broke")

    aws.injector.after["SageMaker.CreateTrainingJob"], original = broken, aws.injector.after[
        "SageMaker.CreateTrainingJob"]
    try:
        _client(aws, "s3").create_bucket(Bucket="hook-bucket")
        _client(aws, "sagemaker").create_training_job(TrainingJobName="hook-job", **_job_request("hook-bucket"))
    finally:
        aws.injector.after["SageMaker.CreateTrainingJob"] = original
    assert [op for op, _ in aws.injector.unexpected] == ["SageMaker.CreateTrainingJob"]
    aws.injector.unexpected.clear()
