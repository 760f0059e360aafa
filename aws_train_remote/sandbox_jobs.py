"""The sandbox's training and tuning jobs: each CreateTrainingJob really runs, through the local
executor in a thread (SandboxJob), its output in CloudWatch Logs and its artifacts in moto's S3; a
tuning job's trials run as such jobs (SandboxTuning), since moto stores tuning jobs but runs no
trials. LoopbackAws (sandbox.py) starts them.
"""
from __future__ import annotations

import datetime
import shutil
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sandbox import LoopbackAws

class _SandboxTrial:
    """A tuning trial running as a sandbox training job: wait for its end, or stop it."""

    def __init__(self, sandbox, name: str):
        self.sandbox, self.name = sandbox, name

    def wait(self):
        while self.sandbox.job(self.name).training_job_status not in ("Completed", "Failed", "Stopped"):
            time.sleep(0.1)
        job = self.sandbox.job(self.name)
        return job.training_job_status, getattr(job, "failure_reason", None)

    def stop(self):
        self.sandbox.client("sagemaker").stop_training_job(TrainingJobName=self.name)


class SandboxTuning:
    """A tuning job's trials, run as sandbox training jobs through the same loop local mode uses."""

    def __init__(self, sandbox, request):
        from .contract import HP_TUNED, decode_hyperparameter
        from .spec.tuning import tune_from_request

        self.sandbox = sandbox
        self.name = request["HyperParameterTuningJobName"]
        self.definition = request["TrainingJobDefinition"]
        tuned = decode_hyperparameter(self.definition["StaticHyperParameters"].get(HP_TUNED, "{}"))
        self.tune = tune_from_request(request["HyperParameterTuningJobConfig"], tuned if isinstance(tuned, dict)
                                      else {})
        self.trials = []
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"sandbox-tuning-{self.name}")

    def start(self):
        self.thread.start()

    def _launch(self, name, values, on_line):
        self.sandbox.line_listeners[name] = on_line
        from botocore.exceptions import ClientError

        trial = {k: v for k, v in self.definition.items() if k != "StaticHyperParameters"}
        try:
            self.sandbox.client("sagemaker").create_training_job(
                TrainingJobName=name, HyperParameters={**self.definition["StaticHyperParameters"], **values}, **trial)
        except ClientError as err:
            # a retry after a first attempt that created the job (its reply lost on a busy machine):
            # the name is this trial's own, so the job that holds it is this trial
            if err.response.get("Error", {}).get("Code") != "ResourceInUse":
                raise
        return _SandboxTrial(self.sandbox, name)

    def _run(self):
        from .executors.tuning import best_trial, run_trials

        regex = {m["Name"]: m["Regex"] for m in self.definition["AlgorithmSpecification"].get(
            "MetricDefinitions", [])}.get(self.tune.metric, "$^")
        trials = run_trials(self.tune, self.name, regex, self._launch, on_change=self._changed)
        best = best_trial(trials, self.tune.objective)
        job = self.sandbox.tuning(self.name)
        if best is not None:
            job.best_training_job = self._summary(best)
        job.hyper_parameter_tuning_job_status = "Completed" if best is not None else "Failed"
        if best is None:
            job.failure_reason = "No training job succeeded with an objective metric value"
        job.hyper_parameter_tuning_end_time = datetime.datetime.now(datetime.timezone.utc)

    def _changed(self, trial):
        if trial not in self.trials:
            self.trials.append(trial)
        job = self.sandbox.tuning(self.name)
        counts = {s: sum(1 for t in self.trials if t.status == s) for s in ("Completed", "InProgress", "Stopped")}
        job.training_job_status_counters = {**counts, "RetryableError": 0,
                                            "NonRetryableError": sum(1 for t in self.trials if t.status == "Failed")}
        job.objective_status_counters = {"Succeeded": sum(1 for t in self.trials if t.objective is not None
                                                          and t.status != "InProgress"),
                                         "Pending": counts["InProgress"],
                                         "Failed": sum(1 for t in self.trials if t.status == "Failed")}

    def _summary(self, trial) -> dict:
        job = self.sandbox.job(trial.name)
        row = {"TrainingJobName": trial.name, "TrainingJobArn": job.arn, "CreationTime": job.creation_time,
               "TrainingJobStatus": job.training_job_status, "TunedHyperParameters": dict(trial.values),
               "ObjectiveStatus": "Succeeded" if trial.objective is not None else "Pending"}
        if trial.objective is not None:
            row["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": self.tune.objective, "MetricName": self.tune.metric, "Value": trial.objective}
        return row

    def summaries(self) -> list:
        rows = []
        for trial in list(self.trials):
            row = self._summary(trial)
            if hasattr(row["CreationTime"], "timestamp"):
                row["CreationTime"] = row["CreationTime"].timestamp()
            rows.append(row)
        return rows


class SandboxJob:
    """One job created in the sandbox: status and transitions in moto's SageMaker backend,
    each host's output in CloudWatch Logs as <job>/algo-N-<epoch>, artifacts in moto's S3."""

    FLUSH_SECONDS = 0.3

    def __init__(self, sandbox: LoopbackAws, request: dict, reused_from: str = None):
        import datetime

        from .executors.local_job import LocalJob, S3Storage

        self.sandbox = sandbox
        self.name = request["TrainingJobName"]
        self.logs = sandbox.client("logs")
        self.epoch = int(time.time())
        self.pending = {}
        self.lock = threading.Lock()
        self.transitions = []
        self.datetime = datetime
        env = dict(__import__("os").environ)
        env.update(sandbox.env())
        from .executors.warm_pools import POOL_DIR_ENV, keep_alive
        from .runtime.debugging import SANDBOX_ENV

        env[SANDBOX_ENV] = "1"  # the job stands for a SageMaker one: `shell` asks the sandbox, as it would AWS
        if keep_alive(request):  # the warm pool's cache, handed on with the pool
            env[POOL_DIR_ENV] = sandbox.pool_folder(request["TrainingJobName"], reused_from)
        self.job = LocalJob(request, S3Storage(sandbox.client("s3")), on_line=self._line,
                            on_status=self._status, env=env)
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"sandbox-{self.name}")
        self.start_time = None
        self.request = request
        self.reused_from = reused_from

    def start(self):
        now = self.datetime.datetime.now(self.datetime.timezone.utc)
        self.start_time = now
        self.sandbox.set_job(self.name, training_job_status="InProgress", secondary_status="Starting",
                             secondary_status_transitions=[dict(t) for t in self.transitions],  # a plan's wait
                             training_start_time=now, training_end_time=None, final_metric_data_list=[])
        self.thread.start()

    def stop(self):
        self.job.stop("Stopped")

    def _status(self, status, message):
        if status == "Starting" and self.reused_from:
            message = f"Reusing the instances kept in the warm pool of {self.reused_from}"
        now = self.datetime.datetime.now(self.datetime.timezone.utc)
        if self.transitions:
            self.transitions[-1]["EndTime"] = now
        self.transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        current = self.sandbox.job(self.name).training_job_status
        self.sandbox.set_job(self.name, secondary_status=status if current != "Stopping" else "Stopping",
                             secondary_status_transitions=[dict(t) for t in self.transitions])

    def _line(self, host, text):
        listener = self.sandbox.line_listeners.get(self.name)
        if listener is not None:
            listener(text)
        with self.lock:
            self.pending.setdefault(host, []).append((int(time.time() * 1000), text or " "))

    def _flush(self):
        with self.lock:
            pending, self.pending = self.pending, {}
        for host, events in pending.items():
            stream = f"{self.name}/{host}-{self.epoch}"
            try:
                self.logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
            except self.logs.exceptions.ResourceAlreadyExistsException:
                pass
            self.logs.put_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream,
                                     logEvents=[{"timestamp": t, "message": m} for t, m in events])

    def _run(self):
        try:
            self.logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
        except self.logs.exceptions.ResourceAlreadyExistsException:
            pass
        done = threading.Event()

        def flusher():
            while not done.wait(self.FLUSH_SECONDS):
                self._flush()

        flush_thread = threading.Thread(target=flusher, daemon=True)
        flush_thread.start()
        try:
            outcome = self.job.run()
        except Exception as err:  # noqa: BLE001 - the sandbox reports it as the job's failure
            from .executors.local_job import Outcome

            outcome = Outcome("Failed", f"InternalServerError: {err}"[:1024], 0, "Failed")
        finally:
            shutil.rmtree(self.job.workdir, ignore_errors=True)
        done.set()
        flush_thread.join()
        self._flush()
        self._status(outcome.secondary or outcome.status, {"Completed": "Training job completed",
                                                           "Failed": "Training job failed",
                                                           "Stopped": "Training job stopped"}.get(outcome.status, ""))
        now = self.datetime.datetime.now(self.datetime.timezone.utc)
        self.sandbox.set_job(self.name, training_job_status=outcome.status, failure_reason=outcome.failure_reason,
                             training_time_in_seconds=outcome.training_seconds,
                             billable_time_in_seconds=outcome.training_seconds, training_end_time=now,
                             last_modified_time=now)
        if outcome.status == "Completed":
            self.sandbox.keep_warm_pool(self.request)
