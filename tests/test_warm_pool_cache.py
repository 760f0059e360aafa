"""Issue 19.6: a warm pool keeps the packages. When SageMaker provides its persistent warm pool
cache (SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY, /opt/ml/sagemaker/warmpoolcache), the runtime
points pip's cache (and the other caches safe to share) there, so a job that reuses the pool does
not download or build its requirements again. Local mode and the sandbox give each pool a folder.

The figure: two sandbox jobs on one warm pool, each in a fresh job environment (as a new container
is), installing an sdist built here and served on 127.0.0.1 (--no-index --find-links) whose build takes 1.5 s (standing for a C extension's
compile step; a download, which the cache saves on SageMaker, cannot be measured offline)."""
import io
import os
import re
import tarfile

import boto3
import pytest

from aws_train_remote.executors import warm_pools
from aws_train_remote.runtime import warm_cache

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
BACKEND = '''
import os, time, zipfile
NAME, VERSION = "slowpkg", "1.0"
DIST = f"{NAME}-{VERSION}.dist-info"

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    time.sleep(1.5)  # stands for a compile step
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        whl.writestr("slowpkg.py", "VALUE = 42\\n")
        whl.writestr(f"{DIST}/METADATA", f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n")
        whl.writestr(f"{DIST}/WHEEL", "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
        whl.writestr(f"{DIST}/RECORD", f"slowpkg.py,,\\n{DIST}/METADATA,,\\n{DIST}/WHEEL,,\\n{DIST}/RECORD,,\\n")
    return name
'''
PYPROJECT = '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'


def _add(tar, name, text):
    data = text.encode() if isinstance(text, str) else text
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def sdist() -> bytes:
    """slowpkg-1.0.tar.gz: an sdist with an in-tree build backend (no download to build it)."""
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w:gz") as tar:
        _add(tar, "slowpkg-1.0/pyproject.toml", PYPROJECT)
        _add(tar, "slowpkg-1.0/backend.py", BACKEND)
        _add(tar, "slowpkg-1.0/PKG-INFO", "Metadata-Version: 2.1\nName: slowpkg\nVersion: 1.0\n")
    return body.getvalue()


@pytest.fixture
def find_links(tmp_path):
    """A folder of distributions served on 127.0.0.1, as an index would serve them: the same URL for
    every job (pip keys its cache on it; a path inside each job's own folder would differ)."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "dists"
    folder.mkdir()
    (folder / "slowpkg-1.0.tar.gz").write_bytes(sdist())
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def code_bundle(links: str) -> bytes:
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w:gz") as tar:
        _add(tar, "train.py", "import slowpkg\nprint('slowpkg', slowpkg.VALUE)\n")
        _add(tar, "requirements.txt", f"--no-index\n--find-links {links}\nslowpkg\n")
    return body.getvalue()


def run_job(sm, sandbox, name, envs, keep_alive=600):
    sm.create_training_job(
        TrainingJobName=name, RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:x",
                                "TrainingInputMode": "File"},
        HyperParameters={"sagemaker_program": '"train.py"',
                         "sagemaker_submit_directory": '"s3://warm-bucket/src/sourcedir.tar.gz"'},
        Environment={"ATR_LOCAL_ENVS": str(envs)},  # a fresh job environment each time, as a new container has
        OutputDataConfig={"S3OutputPath": "s3://warm-bucket/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 27,
                        "KeepAlivePeriodInSeconds": keep_alive},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    sandbox.wait_for_jobs(timeout=120)
    job = sm.describe_training_job(TrainingJobName=name)
    from aws_train_remote.aws.logs import last_lines

    log = "\n".join(line.message for line in last_lines(boto3.client("logs", region_name="us-east-1"), name, 500))
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason", "") + log
    return log


def install_seconds(log: str) -> float:
    return float(re.search(r"requirements ready in ([\d.]+) s", log).group(1))


def test_a_job_on_a_reused_warm_pool_installs_its_requirements_from_the_pool_cache(tmp_path, sandbox, find_links):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="warm-bucket")
    s3.put_object(Bucket="warm-bucket", Key="src/sourcedir.tar.gz", Body=code_bundle(find_links))
    sm = boto3.client("sagemaker", region_name="us-east-1")
    first = run_job(sm, sandbox, "warm-first", tmp_path / "envs-1")
    second = run_job(sm, sandbox, "warm-second", tmp_path / "envs-2")
    assert sm.describe_training_job(TrainingJobName="warm-first")["WarmPoolStatus"]["Status"] == "Reused"
    assert "warm pool cache" in first and "(empty: a new pool)" in first and "PIP_CACHE_DIR" in first
    assert "(kept from an earlier job of the pool)" in second
    # the first job built the sdist; the second found the wheel in the pool's pip cache
    assert "Building wheel for slowpkg" in first and "Building wheel for slowpkg" not in second, second
    assert "slowpkg 42" in first and "slowpkg 42" in second
    cold, warm = install_seconds(first), install_seconds(second)
    print(f"\nwarm pool cache: requirements of the first job {cold:.1f} s, of the second on its warm pool "
          f"{warm:.1f} s (the sdist's 1.5 s build skipped)")
    assert warm < cold


def test_the_runtime_points_only_the_shareable_caches_at_the_pool_cache(tmp_path):
    root = str(tmp_path / "opt" / "ml")
    assert warm_cache.cache_env({}, root) == {}  # no keep-alive: SageMaker gives no such folder
    cache = tmp_path / "pool"
    cache.mkdir()
    env = warm_cache.cache_env({warm_cache.CACHE_ENV: str(cache)}, root)
    assert env == {"PIP_CACHE_DIR": str(cache / "pip"), "UV_CACHE_DIR": str(cache / "uv"),
                   "HF_HUB_CACHE": str(cache / "huggingface" / "hub")}
    assert "TORCH_HOME" not in env and "HF_DATASETS_CACHE" not in env
    # the job's own settings win; HF_HOME means its hub is its own
    own = warm_cache.cache_env({warm_cache.CACHE_ENV: str(cache), "PIP_CACHE_DIR": "/mine", "HF_HOME": "/hf"}, root)
    assert own == {"UV_CACHE_DIR": str(cache / "uv")}
    # SageMaker's path, under the layout's root, when the variable is not set
    (tmp_path / "opt" / "ml" / "sagemaker" / "warmpoolcache").mkdir(parents=True)
    assert warm_cache.cache_env({}, root)["PIP_CACHE_DIR"].startswith(root + "/sagemaker/warmpoolcache")


def test_local_mode_keeps_a_pool_folder_for_a_matching_job_within_its_keep_alive(tmp_path):
    environ = {"AWS_TRAIN_REMOTE_CACHE_DIR": str(tmp_path / "cache")}

    def request(name, keep=600, instance="ml.m5.large"):
        return {"TrainingJobName": name, "RoleArn": ROLE, "ResourceConfig": {
            "InstanceType": instance, "InstanceCount": 1, "VolumeSizeInGB": 30, "KeepAlivePeriodInSeconds": keep}}

    assert warm_pools.take(environ, request("a", keep=0)) == (None, None)
    pool, earlier = warm_pools.take(environ, request("a"), now=lambda: 1000)
    assert earlier is None and os.path.isdir(pool)
    (tmp_path / "marker").write_text("x")
    os.replace(tmp_path / "marker", os.path.join(warm_pools.host_cache(pool, "algo-1"), "marker"))
    warm_pools.settle(environ, request("a"), pool, completed=True, now=lambda: 1000)
    assert warm_pools.take(environ, request("b", instance="ml.c5.xlarge"), now=lambda: 1100)[1] is None  # no match
    reused, earlier = warm_pools.take(environ, request("c"), now=lambda: 1100)
    assert (reused, earlier) == (pool, "a") and os.path.isfile(os.path.join(pool, "algo-1", "marker"))
    warm_pools.settle(environ, request("c"), reused, completed=True, now=lambda: 1100)
    fresh, earlier = warm_pools.take(environ, request("d"), now=lambda: 1100 + 601)  # expired: a new pool
    assert earlier is None and fresh != pool and not os.path.exists(pool)
    warm_pools.settle(environ, request("d"), fresh, completed=False)  # a failed job's pool ends with it
    assert not os.path.exists(fresh)


def test_local_job_passes_the_pool_cache_as_sagemaker_names_it(tmp_path):
    pool = str(tmp_path / "pool")
    assert warm_pools.host_env(None, "algo-1") == {}
    env = warm_pools.host_env(pool, "algo-2")
    assert env == {"SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY": os.path.join(pool, "algo-2")}
    assert os.path.isdir(env["SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY"])


MARKING = """
import os
from aws_train_remote import training_main

def main(args):
    cache = os.environ.get("SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY")
    marker = os.path.join(cache, "marker") if cache else None
    print("kept:", bool(marker and os.path.exists(marker)), "pip:", os.environ.get("PIP_CACHE_DIR", "").startswith(cache or "-"))
    if marker:
        open(marker, "w").close()

if __name__ == "__main__":
    training_main(main)
"""


def test_local_mode_hands_the_pool_cache_to_the_next_matching_job(tmp_path):
    from conftest import run_python, write_script

    write_script(tmp_path, MARKING)
    runs = [run_python(["train.py", "--sagemaker-run", "local", *args], cwd=tmp_path)
            for args in (["--sagemaker-keep-alive", "10m"], ["--sagemaker-keep-alive", "10m"], [])]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert "kept: False pip: True" in runs[0].stdout and "kept: True pip: True" in runs[1].stdout
    assert "kept: False pip: False" in runs[2].stdout  # no keep-alive: no pool, no cache folder
