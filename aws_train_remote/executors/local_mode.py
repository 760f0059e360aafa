"""--sagemaker-run local: the same CreateTrainingJob request, executed on this machine through
the container contract, with no AWS and no Docker.

Nothing is uploaded: the request's channels are served from the upload plan's local files, and
every other S3 location (checkpoints, output) lives in a local mirror under the cache folder,
so a relaunch with the same base job name resumes from its checkpoints as it would on SageMaker.
When the job completes, model.tar.gz is unpacked into --model-dir.
"""
from __future__ import annotations

import os
import shutil
import sys
import threading

from ..aws.jobs import plural
from ..errors import JobFailed
from ..paths import cache_root
from ..plan.store import StoreInput
from ..runtime import links
from .folder_sync import churned, scan_changes
from .local_job import channel_uri, shard_of

LOCAL_ACCOUNT = "000000000000"


def _fs_source(location: str) -> dict:
    from ..spec.values import parse_fs_uri

    kind, fs_id, path = parse_fs_uri(location)
    return {"FileSystemType": kind, "FileSystemId": fs_id, "DirectoryPath": path}


class MirrorStorage:
    """s3://bucket/key <-> <root>/bucket/key, plus `sources`: URI -> what stands for it, never
    copied into the mirror: a local file or folder (the planned uploads), bytes (a manifest, a
    tree), or a function that writes the object to a path (a pack, built from its files)."""

    def __init__(self, root: str, sources: dict):
        self.root = root
        self.sources = sources

    def _path(self, uri: str) -> str:
        return os.path.join(self.root, uri[len("s3://"):])

    def fetch(self, uri: str, dest: str, shard=None) -> int:
        os.makedirs(dest, exist_ok=True)
        source, name = self.sources.get(uri), None
        if isinstance(source, tuple):  # a file standing for a prefix: (path, name in the channel)
            source, name = source
        if source is None:
            source = self._path(uri)
            if not uri.endswith("/") and not os.path.isfile(source):
                source = self._path(uri + "/")
        if os.path.isfile(source):
            name = name or (uri.rsplit("/", 1)[1] if not uri.endswith("/") else os.path.basename(source))
            if not shard_of([name], shard):
                return 0
            shutil.copy2(source, os.path.join(dest, name))
            return 1
        return self.fetch_folder(source, dest, shard)

    @staticmethod
    def fetch_folder(source: str, dest: str, shard=None) -> int:
        """Copy a folder's files (this host's shard of them) into dest; the same listing as the
        upload plan makes: links followed, loops cut."""
        if not os.path.isdir(source):
            return 0
        from ..plan.uploads import input_files

        chosen = shard_of(input_files(source, "--" + os.path.basename(dest.rstrip(os.sep))), shard)
        for rel, full in chosen:
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(full, target)
        return len(chosen)

    def read(self, uri: str) -> bytes:
        source = self.sources.get(uri)
        if isinstance(source, bytes):
            return source
        with open(source if isinstance(source, str) else self._path(uri), "rb") as fh:
            return fh.read()

    def download(self, uri: str, target: str) -> None:
        source = self.sources.get(uri)
        if callable(source):
            source(target)
        elif isinstance(source, bytes):
            with open(target, "wb") as fh:
                fh.write(source)
        else:
            shutil.copy2(source if isinstance(source, str) else self._path(uri), target)

    def seed(self, uri: str, folder: str, skipped: list = None) -> int:
        """--checkpoint-initial: copy a local folder (or file) into the prefix `uri`, as the
        checkpoint sync would (links followed, loops cut, dangling ones named in `skipped`)."""
        target = self._path(uri.rstrip("/") + "/")
        if os.path.isfile(folder):
            _copy_object(folder, os.path.join(target, os.path.basename(folder)))
            return 1
        found, notes = links.entries(folder, keep_links=False)
        if skipped is not None:
            skipped.extend(notes)
        for entry in found:
            _copy_object(entry.source, os.path.join(target, *entry.rel.split("/")))
        return len(found)

    def move(self, uri: str, dest_uri: str) -> int:
        """--sagemaker-fresh-start: the prefix's files move to `dest_uri` (nothing is deleted)."""
        source = self._path(uri.rstrip("/") + "/")
        if not os.path.isdir(source):
            return 0
        count = sum(len(files) for _, _, files in os.walk(source))
        target = self._path(dest_uri.rstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(source, target)
        return count

    def put(self, local: str, uri: str) -> None:
        target = self._path(uri)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(local, target)

    def sync_up(self, local_dir: str, uri: str, seen: dict) -> list:
        """As S3 holds a checkpoint location: a link's target is copied (so a restore gives a copy,
        as SageMaker's does); returns the lines naming what was skipped (dangling links)."""
        target = self._path(uri.rstrip("/") + "/")
        skipped = []
        changed, removed = scan_changes(local_dir, seen, skipped)
        for rel in removed:  # first: a file may give its name to a folder, or the reverse
            _remove_object(target, rel)
        for rel in changed:
            source = os.path.join(local_dir, rel)
            try:
                _copy_object(source, os.path.join(target, rel))
            except OSError:
                if not churned(source, seen[rel]):
                    raise  # the mirror cannot be written, not the trainer's churn
                seen[rel] = None  # changed or gone while copied: the next pass copies or deletes it
        return skipped


def _copy_object(source: str, dest: str) -> None:
    """Write one object of the mirror whole or not at all (a reader never sees half of it)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    partial = f"{dest}.atr-partial-{os.getpid()}-{threading.get_ident()}"
    try:
        shutil.copy2(source, partial)
        os.replace(partial, dest)
    finally:
        if os.path.lexists(partial):
            os.unlink(partial)


def _remove_object(root: str, rel: str) -> None:
    """Delete one object of the mirror and the folders it leaves empty (S3 has no folders)."""
    path = os.path.join(root, rel)
    try:
        os.remove(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return
    parent = os.path.dirname(path)
    while len(parent) > len(root.rstrip(os.sep)):
        try:
            os.rmdir(parent)
        except OSError:
            return
        parent = os.path.dirname(parent)


def store_sources(item, bucket: str) -> dict:
    """What stands for a store input's manifest and objects here: the manifest and tree bytes, a
    large file itself, a pack written from its files when a job fetches it."""
    def writer(obj):
        def write(target):
            from ..errors import UsageError
            from ..plan.hashcache import FileChanged
            from ..plan.store import read_pack

            try:
                data = read_pack(obj)
            except FileChanged as err:
                raise UsageError(f"--{item.name.replace('_', '-')}", str(err), "changed after the launch "
                                 "read it", "run again once it is written") from None
            with open(target, "wb") as fh:
                fh.write(data)
        return write

    sources = {f"s3://{bucket}/{item.manifest_key(bucket)}": item.manifest(bucket)}
    for obj in item.unique_objects():
        uri = f"s3://{bucket}/{item.object_key(obj.sha256)}"
        sources[uri] = obj.body if obj.kind == "tree" else obj.members[0].local if obj.kind == "file" else writer(obj)
    return sources


def run_local(spec, environ, out=None) -> int:
    from ..plan.request import build_request
    from ..plan.uploads import build_upload_plan
    from .follow import Printer
    from .local_job import LocalJob
    from .model_download import deliver_local_model, skipped_line

    out = out if out is not None else sys.stdout
    cache = cache_root(environ)
    from ..spec.job import JOB_MODEL

    if any(i.model_init and i.location.startswith(JOB_MODEL) for i in spec.inputs):
        from ..aws.models import resolve_model_job
        from ..aws.session import AwsSession, aws_failures_as_errors

        with aws_failures_as_errors():
            spec = resolve_model_job(spec, AwsSession(profile=spec.profile, region=spec.region).client("sagemaker"))
    plan = build_upload_plan(spec, cache)
    bucket = spec.bucket or "local"
    request = build_request(spec, plan, account=LOCAL_ACCOUNT, bucket=bucket)
    sources = {f"s3://{bucket}/{plan.code.key.rsplit('/', 1)[0]}/": (plan.code.local, plan.code.relpath),
               f"s3://{bucket}/{plan.driver.key.rsplit('/', 1)[0]}/": (plan.driver.local, plan.driver.relpath)}
    for item, planned in zip([i for i in spec.inputs if not i.is_remote], plan.inputs):
        if isinstance(planned, StoreInput):
            sources.update(store_sources(planned, bucket))
            continue
        local = (item.location, planned.files[0].relpath) if planned.single_file else item.location
        sources[f"s3://{bucket}/{planned.prefix_key}"] = local
    for item in spec.inputs:
        if item.is_fs:  # a file system cannot be mounted here: the user's local copy stands for it
            sources[channel_uri({"DataSource": {"FileSystemDataSource": _fs_source(item.location)}})] = item.local
    s3_inputs = [i for i in spec.inputs if i.is_s3]
    if s3_inputs:  # real S3 data: fetched once into the local input cache, like a local run
        from ..aws.s3_cache import fetch
        from ..aws.session import AwsSession

        s3 = AwsSession(profile=spec.profile, region=spec.region).client("s3")
        for item in s3_inputs:
            sources[item.location] = fetch(s3, item.location, os.path.join(cache, "s3"), flag=item.flag)
    storage = MirrorStorage(os.path.join(cache, "local-s3"), sources)
    printer = Printer(out)
    checkpoint = (request.get("CheckpointConfig") or {}).get("S3Uri")
    if spec.fresh_start and checkpoint:
        import datetime

        from ..plan.request import archive_uri

        archive = archive_uri(checkpoint, datetime.datetime.now(datetime.timezone.utc))
        moved = storage.move(checkpoint, archive)
        printer.info(f"fresh start: {moved} earlier checkpoint files moved to {archive}")
    if spec.checkpoint_initial and checkpoint:  # as the launcher does before CreateTrainingJob
        initial = spec.checkpoint_initial
        if initial.startswith("s3://"):
            from ..aws.s3_cache import fetch
            from ..aws.session import AwsSession

            initial = fetch(AwsSession(profile=spec.profile, region=spec.region).client("s3"), initial,
                            os.path.join(cache, "s3"), flag="--checkpoint-initial")
        skipped = []
        count = storage.seed(checkpoint, initial, skipped)
        for line in skipped:
            printer.info(f"--checkpoint-initial: skipped {line}")
        printer.info(f"checkpoint location seeded with {plural(count, 'file')} from {spec.checkpoint_initial}")
    from ..spec.images import distribution_note

    note = distribution_note(spec)
    if note:
        printer.info(f"note: {note}")
    if spec.tune:
        return run_local_tuning(spec, request, plan, storage, out, bucket, environ)
    if spec.mlflow:
        import dataclasses

        from ..gitinfo import read_git_info
        from .tracking import start_run

        spec = dataclasses.replace(spec, mlflow_run_id=start_run(spec, read_git_info(spec.source_dir)))
        request = build_request(spec, plan, account=LOCAL_ACCOUNT, bucket=bucket)
        printer.info(f"MLflow: run {spec.mlflow_run_id} in experiment {spec.mlflow_experiment} ({spec.mlflow})")
    from ..local_jobs import LocalJobLog

    kept = LocalJobLog(environ, spec.job_name, request)  # its log, for `aws-train-remote metrics`
    job = LocalJob(request, storage, on_line=lambda host, text: (kept.line(host, text), printer.line(host, text),
                                                                 printer.flush()),
                   on_status=lambda status, message: (printer.status(f"status: {status} - {message}"),
                                                      printer.flush()), env=environ)
    printer.info(f"local job: {spec.job_name} ({spec.instance_count} x {spec.instance_type} emulated here)")
    try:
        outcome = job.run(interrupt_after=spec.simulate_interruption)
    except KeyboardInterrupt:
        job.stop("Stopped")
        raise
    finally:
        kept.close()
        shutil.rmtree(job.workdir, ignore_errors=True)
    printer.status(f"{outcome.status}: {spec.job_name}, {outcome.training_seconds} s")
    if spec.mlflow_run_id:
        from .tracking import end_run

        end_run(spec, spec.mlflow_run_id, outcome.status)
    if spec.simulate_interruption:
        times = ", ".join(f"{t} s" for t in outcome.interruptions) or "none"
        printer.info(f"spot rehearsal: {len(outcome.interruptions)} of {len(spec.simulate_interruption)} simulated "
                     f"interruptions happened (after {times} of script time); the job resumed after each")
    if request.get("TensorBoardOutputConfig"):  # as `aws-train-remote tensorboard` fetches them; a failed job's too
        from .local_outputs import copy_tensorboard

        board = os.path.join(spec.local_tensorboard_dir, spec.job_name)
        printer.info(f"TensorBoard: {plural(copy_tensorboard(storage, request, board), 'file')} in {board}")
    if outcome.status != "Completed":
        raise JobFailed(f"local job {spec.job_name} ended {outcome.status}"
                        + (f": {outcome.failure_reason.splitlines()[0]}" if outcome.failure_reason else ""))
    model, unpacked = deliver_local_model(storage, request, spec.model_dir)  # model.tar.gz, or a prefix's files
    printer.info(f"model: {model} ({plural(unpacked.files, 'file')} unpacked into {spec.model_dir})")
    if unpacked.skipped:
        print(skipped_line(unpacked, spec.model_dir), file=sys.stderr)
    return 0


class _LocalTrial:
    """One tuning trial run by LocalJob in a thread; its log goes to a file, its lines to the tuner."""

    def __init__(self, request, storage, environ, log_path, on_line):
        from .local_job import LocalJob

        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        self.log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed when the trial ends
        self.lock = threading.Lock()

        def line(host, text):
            with self.lock:
                self.log.write(f"[{host}] {text}\n")
            on_line(text)

        self.job = LocalJob(request, storage, on_line=line, on_status=lambda *_: None, env=environ)
        self.outcome = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.outcome = self.job.run()
        finally:
            shutil.rmtree(self.job.workdir, ignore_errors=True)
            self.log.close()

    def stop(self):
        self.job.stop("Stopped")

    def wait(self):
        self.thread.join()
        return self.outcome.status, self.outcome.failure_reason


def run_local_tuning(spec, request, plan, storage, out, bucket, environ) -> int:
    """--sagemaker-tune in local mode: the tuning request's trials, run here."""
    from ..plan.request import tuning_request
    from .model_download import deliver_local_model, skipped_line
    from .tuning import TrialTable, best_trial, run_trials, summary

    tune = spec.tune
    tuning = tuning_request(spec, request, plan, bucket)
    definition = tuning["TrainingJobDefinition"]
    regex = {m["Name"]: m["Regex"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]}[tune.metric]
    logs = os.path.join(spec.local_output_dir, "tuning", spec.tuning_job_name)
    table = TrialTable(tune, out)
    stopping = ", median-rule early stopping" if tune.early_stopping == "Auto" else ""
    out.write(f"local tuning job: {spec.tuning_job_name} ({tune.max_jobs} trials, {tune.parallel_jobs} at a time, "
              f"{tune.strategy.lower()} search{stopping}; trial logs in {logs})\n")

    def launch(name, values, on_line):
        trial = {k: v for k, v in definition.items() if k != "StaticHyperParameters"}
        trial.update(TrainingJobName=name, HyperParameters={**definition["StaticHyperParameters"], **values})
        return _LocalTrial(trial, storage, environ, os.path.join(logs, f"{name}.log"), on_line)

    trials = run_trials(tune, spec.tuning_job_name, regex, launch, on_change=table.trial)
    for line in summary(trials, tune):
        out.write(line + "\n")
    best = best_trial(trials, tune.objective)
    if best is None:
        raise JobFailed(f"local tuning job {spec.tuning_job_name}: no trial completed with a {tune.metric} value; "
                        f"see the trial logs in {logs}")
    _, unpacked = deliver_local_model(storage, request, spec.model_dir, best.name)
    out.write(f"model of the best trial: {plural(unpacked.files, 'file')} unpacked into {spec.model_dir}\n")
    if unpacked.skipped:
        print(skipped_line(unpacked, spec.model_dir), file=sys.stderr)
    out.flush()
    return 0
