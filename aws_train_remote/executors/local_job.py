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
import tempfile
import threading
import time
from dataclasses import dataclass

from .. import contract, local_shells
from ..paths import cache_root
from ..runtime import links
from ..runtime.debugging import SHELL_RECORD_ENV
from ..runtime.job_env import ENVS_ENV
from ..runtime.process import SCRIPT_GROUP_FILE_ENV
from . import warm_pools
from .folder_sync import pack_folders, scan_changes
from .job_storage import S3Storage as S3Storage  # S3Storage and the shard rule live in job_storage.py
from .job_storage import fetch_manifest
from .job_storage import shard_of as shard_of
from .local_outputs import TensorBoardSync, uncompressed, upload_folders

CHECKPOINT_SYNC_SECONDS = 10.0
STOP_GRACE_SECONDS = 120.0  # as SageMaker: SIGKILL 120 s after the SIGTERM of a stop


def free_port() -> str:
    """A port nothing listens on now, on 127.0.0.1 (torchrun's rendezvous binds it a moment later)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


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
    groups = resources.get("InstanceGroups")
    if not groups:
        kind, count = chosen_instances(resources)
        groups = [{"InstanceGroupName": "homogeneousCluster", "InstanceType": kind, "InstanceCount": count}]
    out, number = [], 0
    for group in groups:
        hosts = [f"algo-{number + i + 1}" for i in range(int(group["InstanceCount"]))]
        number += len(hosts)
        out.append((group["InstanceGroupName"], group["InstanceType"], hosts))
    return out


def chosen_instances(resources: dict) -> tuple:
    """(type, count) a homogeneous job runs as. An InstancePreferences list runs as the type chosen
    (SelectedInstanceType: the sandbox chooses as SageMaker does); local mode, which has capacity
    for any type, takes the first, as SageMaker does when the first has capacity."""
    preferences = resources.get("InstancePreferences")
    if not preferences:
        return resources["InstanceType"], resources["InstanceCount"]
    if resources.get("SelectedInstanceType"):
        return resources["SelectedInstanceType"], resources["SelectedInstanceCount"]
    first = preferences[0]
    return first["InstanceType"], first.get("InstanceCount") or resources["InstanceCount"]


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
    return [entry.source for entry in links.entries(folder, keep_links=False)[0]]


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
        self.checkpoint_seen = {}  # host -> what its checkpoint folder held when last synced (scan_changes)
        self.sync_failures = set()  # (host, line) already said
        self.tensorboard = TensorBoardSync(request)  # empty unless the request has a TensorBoardOutputConfig
        self.warm_pool = None  # the warm pool's cache folder this job runs on (--sagemaker-keep-alive)

    @property
    def name(self) -> str:
        return self.request["TrainingJobName"]

    def hosts(self) -> list:
        return [host for _, _, members in instance_groups(self.request) for host in members]

    def layout(self, host: str) -> contract.Layout:
        return contract.Layout(os.path.join(self.workdir, host, "opt", "ml"))

    def stop(self, reason: str = "Stopped") -> None:
        """StopTrainingJob: SIGTERM to every host's runtime (it passes it to the script's main
        process); SIGKILL to everything of the host after SageMaker's grace period."""
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
            local = self._checkpoint_dir(host)
            os.makedirs(local, exist_ok=True)
            self.storage.fetch(checkpoint["S3Uri"].rstrip("/") + "/", local)
            # every host gets the whole location, as on SageMaker (contract 1.4). What it got counts as
            # sent: a host never sends back a restored copy that another host has replaced since.
            self.checkpoint_seen[host] = {}
            scan_changes(local, self.checkpoint_seen[host])

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
        # the request's PYTHONPATH, as in a container: one in the user's shell (a src/ folder, say) would
        # hide a package the job lacks (issue 18.4); its site-packages stay, like the user's other packages
        shell = [p for p in (self.env.get("PYTHONPATH") or "").split(os.pathsep)
                 if p.rstrip(os.sep).endswith(("site-packages", "dist-packages"))]
        requested = (self.request.get("Environment") or {}).get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, *shell, requested) if p)
        env[SCRIPT_GROUP_FILE_ENV] = self._script_group_file(host)
        env[SHELL_RECORD_ENV] = local_shells.record_path(env, self.name, host)  # `aws-train-remote shell`
        env.update(warm_pools.host_env(self.warm_pool, host))  # as SageMaker names a warm pool's cache
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
        local_shells.forget(env, self.name, host)

    def _checkpoint_dir(self, host: str) -> str:
        checkpoint = self.request["CheckpointConfig"]
        return contract.rebase(checkpoint.get("LocalPath") or contract.DEFAULT_CHECKPOINT_PATH, self.layout(host).root)

    def _sync_checkpoints(self, final: bool = False) -> None:
        """Every host's checkpoint folder to the one location, as SageMaker syncs each host's
        (issue 18.11b: per-rank files such as rng_state_1.pth live on algo-2). algo-1 goes last, so
        a path several hosts wrote in the same interval holds the master's copy."""
        if not self.request.get("CheckpointConfig"):
            return
        for host in reversed(self.hosts()):
            try:
                self._checkpoint_sync(host, final)
            except Exception as err:  # noqa: BLE001 - our copying never ends the job; the next pass retries
                said = f"checkpoint sync failed ({type(err).__name__}: {err})"
                if (host, said) not in self.sync_failures:  # once, not every 10 s
                    self.sync_failures.add((host, said))
                    self.on_line(host, f"[aws-train-remote] {said}; "
                                 + ("the location may lack the latest files" if final else "trying again"))

    def _checkpoint_sync(self, host: str, final: bool = False) -> None:
        local = self._checkpoint_dir(host)
        if not os.path.isdir(local):
            return
        skipped = self.storage.sync_up(local, self.request["CheckpointConfig"]["S3Uri"],
                                       self.checkpoint_seen.setdefault(host, {}))
        if final:  # mid-training, a link dangles for a moment whenever a trainer re-points it: not news
            for line in skipped or ():
                self.on_line(host, f"[aws-train-remote] checkpoint sync: skipped {line}")

    def _upload_uncompressed(self, hosts: list, output: str, model: bool) -> None:
        """OutputDataConfig.CompressionType NONE: the model (of a job that completed) under
        output/model/ and the output data under output/data/, file by file (issue 19.5)."""
        def skipped(folder, line):
            host = os.path.relpath(folder, self.workdir).split(os.sep)[0]
            self.on_line(host, f"[aws-train-remote] uncompressed output: skipped {line}")
        if model:
            upload_folders(self.storage, [self.layout(h).model_dir for h in hosts], output + "model/", skipped)
        upload_folders(self.storage, [self.layout(h).output_data_dir for h in hosts], output + "data/", skipped)

    def _sync_tensorboard(self) -> None:
        """TensorBoardOutputConfig: each host's TensorBoard folder to its S3 location (local_outputs.py)."""
        if self.tensorboard:
            self.tensorboard.sync(self.storage, {h: self.layout(h) for h in self.hosts()}, self.on_line)

    def _pack(self, folders: list, archive: str) -> bool:
        """One archive of several hosts' folders (given in host order: algo-1 first); see pack_folders."""
        def skipped(root, line):
            host = os.path.relpath(root, self.workdir).split(os.sep)[0]
            self.on_line(host, f"[aws-train-remote] {os.path.basename(archive)}: skipped {line}")
        return pack_folders(folders, archive, skipped)

    def _script_group_file(self, host: str) -> str:
        """Where the runtime notes its script's process group (outside /opt/ml: not the job's)."""
        return os.path.join(self.workdir, host, "script-group")

    def _signal_all(self, signum) -> None:
        """SIGTERM as the platform sends it: to each host's runtime (its process group: the runtime,
        and pip while it installs), which passes it to the script's main process. SIGKILL as the
        container's end: also to the script's own process group, which the runtime started apart."""
        with self._lock:  # a runtime already reaped is left alone: its pid may be another's by now
            procs = {host: proc for host, proc in self.procs.items() if proc.poll() is None}
        groups = [proc.pid for proc in procs.values()]
        if signum == signal.SIGKILL:  # scripts first, while their runtime (which kills them too) lives
            for host in procs:
                try:
                    with open(self._script_group_file(host), encoding="utf-8") as fh:
                        groups.insert(0, int(fh.read().strip()))
                except (OSError, ValueError):
                    pass  # the script never started
        for group in groups:
            try:
                os.killpg(group, signum)
            except (ProcessLookupError, PermissionError):
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
                self._sync_checkpoints()
                self._sync_tensorboard()
        self._sync_checkpoints(final=True)
        self._sync_tensorboard()
        return results, interrupted and self.stop_reason is None

    def run(self, interrupt_after=()) -> Outcome:
        """Run the job on its warm pool's cache folder: the sandbox names it (it keeps pools itself);
        in local mode one is taken here for a job with a keep-alive, and kept when the job completes."""
        self.warm_pool = self.env.get(warm_pools.POOL_DIR_ENV)
        if self.warm_pool:
            return self._run(interrupt_after)
        self.warm_pool, _ = warm_pools.take(self.env, self.request)
        outcome = None
        try:
            outcome = self._run(interrupt_after)
            return outcome
        finally:
            warm_pools.settle(self.env, self.request, self.warm_pool, outcome is not None and
                              outcome.status == "Completed")

    def _run(self, interrupt_after=()) -> Outcome:
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
        if uncompressed(self.request):  # CompressionType NONE: the files as they are, under output/model/
            self._upload_uncompressed(hosts, output, model=not failed and self.stop_reason is None)
        else:
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
