"""Executing a CreateTrainingJob request on this machine, through the container contract:
one /opt/ml-like root per host, channels staged from storage, the three config files,
checkpoints restored and synced back, the request's own ContainerEntrypoint run as a
subprocess per host, MaxRuntimeInSeconds honoured, model.tar.gz/output.tar.gz uploaded.

The sandbox runs every job created in it through this (design.md section 5). Storage is
passed in (S3Storage over any boto3 S3 client), as are the line and status callbacks.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass

from .. import contract
from ..paths import cache_root
from ..runtime.job_env import ENVS_ENV

CHECKPOINT_SYNC_SECONDS = 10.0
STOP_GRACE_SECONDS = 20.0


class S3Storage:
    """Channel data in and artifacts out, through a boto3 S3 client."""

    def __init__(self, s3):
        self.s3 = s3

    def fetch(self, uri: str, dest: str, shard=None) -> int:
        """Every object under `uri` into `dest`, keyed relative to the URI's folder (as SageMaker's
        File mode does: an exact object key lands as its file name). `shard` (index, count): only
        this host's share, see shard_of."""
        if not uri.startswith("s3://"):
            raise ValueError(f"{uri} is a file system, which only a SageMaker job can mount (the sandbox cannot); "
                             "try it in local mode with --<input>-local FOLDER")
        bucket, key = contract.split_s3(uri)
        if not key or key.endswith("/"):
            base = key
        else:  # an exact object key: it lands under its own name
            base = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        keys = [obj["Key"] for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                for obj in page.get("Contents", []) if obj["Key"][len(base):] and not obj["Key"].endswith("/")]
        count = 0
        for object_key in shard_of(sorted(keys), shard):
            target = os.path.realpath(os.path.join(dest, object_key[len(base):]))
            if not target.startswith(os.path.realpath(dest) + os.sep):
                continue  # a key with '..' must not escape the channel folder
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self.s3.download_file(bucket, object_key, target)
            count += 1
        return count

    def read(self, uri: str) -> bytes:
        bucket, key = contract.split_s3(uri)
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def download(self, uri: str, target: str) -> None:
        bucket, key = contract.split_s3(uri)
        self.s3.download_file(bucket, key, target)

    def put(self, local: str, uri: str) -> None:
        bucket, key = contract.split_s3(uri)
        self.s3.upload_file(local, bucket, key)

    def sync_up(self, local_dir: str, uri: str, seen: dict) -> None:
        """Upload new or changed files and delete removed ones (as SageMaker's checkpoint sync)."""
        bucket, prefix = contract.split_s3(uri)
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        changed, removed = scan_changes(local_dir, seen)
        for rel in changed:
            self.s3.upload_file(os.path.join(local_dir, rel), bucket, prefix + rel)
        for rel in removed:
            self.s3.delete_object(Bucket=bucket, Key=prefix + rel)


def fetch_manifest(storage, uri: str, dest: str, shard=None) -> list:
    """A ManifestFile channel as SageMaker's File mode is reported to place it: each listed object
    under `dest` at its whole key (reference/manifest_channels.md), so the runtime cannot rely on
    where it lands. Returns the local paths in manifest order, repeats kept (Pipe streams that)."""
    os.makedirs(dest, exist_ok=True)
    entries = json.loads(storage.read(uri))
    prefix = entries[0]["prefix"]
    _, key_prefix = contract.split_s3(prefix)
    paths, fetched = [], {}
    for suffix in shard_of(entries[1:], shard):
        if suffix not in fetched:
            target = os.path.realpath(os.path.join(dest, key_prefix + suffix))
            if not target.startswith(os.path.realpath(dest) + os.sep):
                raise ValueError(f"manifest {uri} names {suffix!r}, outside its prefix")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                storage.download(prefix + suffix, target)
            except Exception as err:  # noqa: BLE001 - as SageMaker: the channel cannot be downloaded
                raise ValueError(f"{prefix}{suffix}, named by the manifest {uri}, cannot be read ({err})") from None
            fetched[suffix] = target
        paths.append(fetched[suffix])
    return paths


def shard_of(keys: list, shard) -> list:
    """ShardedByS3Key as emulated here: keys in lexicographic order, host i of n (algo-(i+1)) gets
    every n-th key starting at the i-th, so each gets about 1/n of the objects and none twice.
    (SageMaker documents the share, not the assignment; a script must not rely on which.)"""
    if not shard:
        return keys
    index, count = shard
    return keys[index::count]


def free_port() -> str:
    """A port nothing listens on now, on 127.0.0.1 (torchrun's rendezvous binds it a moment later)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def scan_changes(local_dir: str, seen: dict) -> tuple:
    """(changed, removed) relative paths since `seen` (relpath -> (size, mtime_ns)), which is
    updated to the folder's current state."""
    current = {}
    for dirpath, _, files in os.walk(local_dir):
        for name in files:
            full = os.path.join(dirpath, name)
            st = os.stat(full)
            current[os.path.relpath(full, local_dir).replace(os.sep, "/")] = (st.st_size, st.st_mtime_ns)
    changed = sorted(rel for rel, stamp in current.items() if seen.get(rel) != stamp)
    removed = sorted(set(seen) - set(current))
    seen.clear()
    seen.update(current)
    return changed, removed


@dataclass
class Outcome:
    status: str  # Completed, Failed, Stopped
    failure_reason: str = None
    training_seconds: int = 0
    secondary: str = None
    interruptions: tuple = ()  # seconds of script time at which each simulated interruption came

SCRIPT_STARTED = "[aws-train-remote] running: "  # the runtime's line just before it starts the script


def channel_uri(channel: dict) -> str:
    """Where a channel's data lives: its S3 URI, or efs://id/path, fsx://id/path for a file system
    (which local mode maps to a local folder, as it maps uploads)."""
    source = channel["DataSource"]
    if "FileSystemDataSource" in source:
        fs = source["FileSystemDataSource"]
        scheme = "efs" if fs["FileSystemType"] == "EFS" else "fsx"
        return f"{scheme}://{fs['FileSystemId']}{fs['DirectoryPath']}"
    return source["S3DataSource"]["S3Uri"]


def instance_groups(request: dict) -> list:
    """[(group name, instance type, [hosts])]: the request's InstanceGroups with hosts named
    algo-1.. across the groups in order, or one homogeneousCluster, as SageMaker's resourceconfig."""
    resources = request["ResourceConfig"]
    groups = resources.get("InstanceGroups") or [{"InstanceGroupName": "homogeneousCluster",
                                                  "InstanceType": resources["InstanceType"],
                                                  "InstanceCount": resources["InstanceCount"]}]
    out, number = [], 0
    for group in groups:
        hosts = [f"algo-{number + i + 1}" for i in range(int(group["InstanceCount"]))]
        number += len(hosts)
        out.append((group["InstanceGroupName"], group["InstanceType"], hosts))
    return out


def group_of(request: dict, host: str):
    """(group name, instance type) of one host."""
    return next((name, kind) for name, kind, hosts in instance_groups(request) if host in hosts)


def write_config(layout, request: dict, host: str, hosts: list) -> None:
    groups = instance_groups(request)
    current_group, current_type = group_of(request, host)
    resource = {"current_host": host, "current_instance_type": current_type,
                "current_group_name": current_group, "hosts": hosts,
                "instance_groups": [{"instance_group_name": name, "instance_type": kind, "hosts": members}
                                    for name, kind, members in groups],
                "network_interface_name": "eth0"}
    data_config = {}
    for channel in request.get("InputDataConfig", []):
        mode = channel.get("InputMode") or request["AlgorithmSpecification"].get("TrainingInputMode", "File")
        entry = {"TrainingInputMode": "Pipe" if mode == "Pipe" else "File",
                 "S3DistributionType": (channel["DataSource"].get("S3DataSource") or {}).get(
                     "S3DataDistributionType", "FullyReplicated"),
                 "RecordWrapperType": channel.get("RecordWrapperType", "None")}
        if channel.get("ContentType"):
            entry["ContentType"] = channel["ContentType"]
        data_config[channel["ChannelName"]] = entry
    os.makedirs(layout.config_dir, exist_ok=True)
    for name, body in (("hyperparameters.json", request.get("HyperParameters", {})),
                       ("resourceconfig.json", resource), ("inputdataconfig.json", data_config)):
        with open(layout.config_file(name), "w", encoding="utf-8") as fh:
            json.dump(body, fh)


def folder_files(folder: str) -> list:
    """A prefix channel's files in key order (the order S3 lists them, so Pipe streams them)."""
    found = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            full = os.path.join(dirpath, name)
            found.append((os.path.relpath(full, folder).replace(os.sep, "/").encode("utf-8"), full))
    return [full for _, full in sorted(found)]


def _feed_pipe(fifo: str, paths: list) -> None:
    """Pipe mode: the channel's objects, concatenated, through the FIFO <channel>_0."""
    with open(fifo, "wb") as out:
        for path in paths:
            with open(path, "rb") as fh:
                shutil.copyfileobj(fh, out)


class LocalJob:
    def __init__(self, request: dict, storage, *, on_line=None, on_status=None, workdir=None, env=None,
                 clock=time.monotonic):
        self.request = request
        self.storage = storage
        self.on_line = on_line or (lambda host, text: None)
        self.on_status = on_status or (lambda status, message: None)
        self.workdir = workdir or tempfile.mkdtemp(prefix="atr-job-")
        self.env = dict(os.environ if env is None else env)
        self.clock = clock
        self.procs = {}
        self.stop_reason = None
        self._lock = threading.Lock()
        self.master_port = free_port()  # two local jobs at once must not both rendezvous on 7777
        self.script_started = {}  # host -> clock() when the runtime started the script, this attempt

    @property
    def name(self) -> str:
        return self.request["TrainingJobName"]

    def hosts(self) -> list:
        return [host for _, _, members in instance_groups(self.request) for host in members]

    def layout(self, host: str) -> contract.Layout:
        return contract.Layout(os.path.join(self.workdir, host, "opt", "ml"))

    def stop(self, reason: str = "Stopped") -> None:
        """StopTrainingJob: SIGTERM to every host's process group; SIGKILL after a grace period."""
        with self._lock:
            self.stop_reason = self.stop_reason or reason
        self._signal_all(signal.SIGTERM)

        def kill_later():
            time.sleep(STOP_GRACE_SECONDS)
            self._signal_all(signal.SIGKILL)

        threading.Thread(target=kill_later, daemon=True).start()

    def _stage(self, host: str, hosts: list) -> None:
        layout = self.layout(host)
        for folder in (layout.model_dir, layout.output_data_dir, layout.code_dir):
            os.makedirs(folder, exist_ok=True)
        group = {h: name for name, _, members in instance_groups(self.request) for h in members}
        for channel in self.request.get("InputDataConfig", []):
            name = channel["ChannelName"]
            uri = channel_uri(channel)
            s3_source = channel["DataSource"].get("S3DataSource") or {}
            only = s3_source.get("InstanceGroupNames")
            if only and group[host] not in only:
                continue  # a channel restricted to other instance groups: this host does not get it
            sharded = s3_source.get("S3DataDistributionType") == "ShardedByS3Key"
            receivers = [h for h in hosts if not only or group[h] in only]
            shard = (receivers.index(host), len(receivers)) if sharded else None
            manifest = s3_source.get("S3DataType") == "ManifestFile"
            if channel.get("InputMode") == "Pipe":
                staging = os.path.join(self.workdir, host, "pipe-data", name)
                if manifest:
                    paths = fetch_manifest(self.storage, uri, staging, shard)
                else:
                    self.storage.fetch(uri, staging, shard)
                    paths = folder_files(staging)
                fifo = layout.pipe_path(name, 0)
                os.makedirs(os.path.dirname(fifo), exist_ok=True)
                os.mkfifo(fifo)
                threading.Thread(target=_feed_pipe, args=(fifo, paths), daemon=True).start()
            elif manifest:
                fetch_manifest(self.storage, uri, layout.channel_dir(name), shard)
            else:
                self.storage.fetch(uri, layout.channel_dir(name), shard)
        write_config(layout, self.request, host, hosts)
        checkpoint = self.request.get("CheckpointConfig")
        if checkpoint:
            local = contract.rebase(checkpoint.get("LocalPath") or contract.DEFAULT_CHECKPOINT_PATH, layout.root)
            os.makedirs(local, exist_ok=True)
            self.storage.fetch(checkpoint["S3Uri"].rstrip("/") + "/", local)

    def _command(self, layout) -> list:
        entry = self.request["AlgorithmSpecification"].get("ContainerEntrypoint")
        if not entry:  # a request built by another tool: the image's training toolkit would run; ours plays it
            return [sys.executable, "-m", "aws_train_remote.runtime"]
        command = [contract.rebase(part, layout.root) for part in entry]
        command += [contract.rebase(part, layout.root) for part in self.request["AlgorithmSpecification"].get(
            "ContainerArguments", [])]
        if command[0] in ("python3", "python"):
            command[0] = sys.executable  # this machine's interpreter plays the image's python3
        return command

    def _run_host(self, host: str, hosts: list, results: dict) -> None:
        layout = self.layout(host)
        env = dict(self.env)
        env.update(self.request.get("Environment") or {})
        env.update({contract.ROOT_ENV: layout.root, "TRAINING_JOB_NAME": self.name,
                    "TRAINING_JOB_ARN": f"arn:aws:sagemaker:local:000000000000:training-job/{self.name}",
                    "SM_STUDIO_LOCAL_MODE": "true", "PYTHONUNBUFFERED": "1"})
        if len(hosts) > 1:
            env[contract.MASTER_ADDR_OVERRIDE_ENV] = "127.0.0.1"  # algo-N do not resolve on this machine
        env[contract.MASTER_PORT_OVERRIDE_ENV] = self.master_port
        env.setdefault(ENVS_ENV, os.path.join(cache_root(env), "envs"))  # requirements never go into this Python
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(self._command(layout), cwd=layout.root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        with self._lock:
            self.procs[host] = proc
        for raw in iter(proc.stdout.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\n")
            if text.startswith(SCRIPT_STARTED):
                with self._lock:
                    self.script_started.setdefault(host, self.clock())
            self.on_line(host, text)
        results[host] = proc.wait()

    def _checkpoint_sync(self, host: str, seen: dict) -> None:
        checkpoint = self.request.get("CheckpointConfig")
        if not checkpoint:
            return
        local = contract.rebase(checkpoint.get("LocalPath") or contract.DEFAULT_CHECKPOINT_PATH, self.layout(host).root)
        if os.path.isdir(local):
            self.storage.sync_up(local, checkpoint["S3Uri"], seen)

    def _pack(self, folders: list, archive: str) -> bool:
        """One archive of several hosts' folders (given in host order: algo-1 first). A path that
        more than one host wrote is packed once, from the first host that has it -- usually the
        master, the one that should write the model -- so unpacking never sees duplicates."""
        chosen = {}
        for root in folders:
            if not os.path.isdir(root):
                continue
            for dirpath, _, names in os.walk(root):
                for name in names:
                    full = os.path.join(dirpath, name)
                    chosen.setdefault(os.path.relpath(full, root).replace(os.sep, "/"), full)
        with tarfile.open(archive, "w:gz") as tar:
            for rel in sorted(chosen):
                tar.add(chosen[rel], arcname=rel)
        return bool(chosen)

    def _signal_all(self, signum) -> None:
        with self._lock:
            procs = list(self.procs.values())
        for proc in procs:
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                pass

    def _train(self, hosts: list, start: float, interrupt_after) -> tuple:
        """Run every host to its end; (exit codes by host, whether a simulated interruption hit)."""
        results, interrupted = {}, False
        threads = [threading.Thread(target=self._run_host, args=(h, hosts, results), daemon=True) for h in hosts]
        for thread in threads:
            thread.start()
        with self._lock:
            self.script_started = {}
        max_run = self.request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        seen = {h: {} for h in hosts}
        last_sync = self.clock()
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.2)
            if max_run and self.clock() - start > max_run and self.stop_reason is None:
                self.stop("MaxRuntimeExceeded")
            with self._lock:
                began = min(self.script_started.values()) if self.script_started else None
            if interrupt_after is not None and not interrupted and began is not None \
                    and self.clock() - began >= interrupt_after:
                interrupted = True  # as a spot reclaim: SIGTERM now, the instances are gone after
                self._signal_all(signal.SIGTERM)
            if self.clock() - last_sync >= CHECKPOINT_SYNC_SECONDS:
                last_sync = self.clock()
                self._checkpoint_sync(hosts[0], seen[hosts[0]])
        self._checkpoint_sync(hosts[0], seen[hosts[0]])
        return results, interrupted and self.stop_reason is None

    def run(self, interrupt_after=()) -> Outcome:
        """Run the job. For each time in `interrupt_after` (seconds after the script (re)starts, not
        counting staging and pip), simulate a spot interruption: SIGTERM to every host, checkpoints
        kept, the job staged afresh and restarted."""
        start = self.clock()
        hosts = self.hosts()
        pending, happened = list(interrupt_after or ()), []
        while True:
            self.on_status("Starting", "Preparing the instances for training")
            try:
                for host in hosts:
                    shutil.rmtree(os.path.join(self.workdir, host), ignore_errors=True)
                    self._stage(host, hosts)
            except Exception as err:  # noqa: BLE001 - any staging failure fails the job, like SageMaker
                return Outcome("Failed", f"ClientError: could not stage the job's data: {err}"[:1024], 0, "Failed")
            self.on_status("Training", "Training image download completed. Training in progress.")
            results, interrupted = self._train(hosts, start, pending[0] if pending else None)
            if not interrupted:
                break
            happened.append(pending.pop(0))
            self.on_status("Interrupted", f"Simulated spot interruption {len(happened)} ({happened[-1]} s after the "
                                          "script started): instances reclaimed, checkpoints kept; restarting")
        seconds = max(1, int(round(self.clock() - start)))
        failed = [h for h in hosts if results.get(h) != 0]
        if not failed and self.stop_reason is None:  # a failed or stopped job uploads no model, so says nothing of one
            self.on_status("Uploading", "Uploading generated training model")
        output = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{self.name}/output/"
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "model.tar.gz")
            self._pack([self.layout(h).model_dir for h in hosts], model)
            data = os.path.join(tmp, "output.tar.gz")
            has_data = self._pack([self.layout(h).output_data_dir for h in hosts], data)
            if not failed and self.stop_reason is None:
                self.storage.put(model, output + "model.tar.gz")
            if has_data:
                self.storage.put(data, output + "output.tar.gz")
        if self.stop_reason is not None:
            return Outcome("Stopped", None, seconds, self.stop_reason, tuple(happened))
        if failed:
            reason = f"exit status {results.get(failed[0])} on {failed[0]}"
            for host in failed:
                path = self.layout(host).failure_file
                if os.path.exists(path):
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        reason = fh.read()
                    break
            # as SageMaker: FailureReason is "AlgorithmError: " + the failure file, 1024 characters at most
            return Outcome("Failed", ("AlgorithmError: " + reason)[:1024], seconds, "Failed", tuple(happened))
        return Outcome("Completed", None, seconds, "Completed", tuple(happened))
