"""The loopback sandbox: moto on 127.0.0.1, behind a small WSGI layer that names each AWS
operation, records it (with its body for SageMaker calls), can inject faults by rule, and
emulates what moto lacks (StopTrainingJob; job states are set with set_job).

Used by the tests, the benchmarks and `aws-train-remote sandbox`. Fault rules are programmed
over HTTP (POST /_fault), so code in another process sees them too. A rule matches an
operation (and optionally an S3 path), may skip its first matches, fire with a probability,
and answers with an error status, a delay, or a dropped connection -- before moto saw the
request, or *after* moto acted on it (the reply lost on the way back, the case that makes
retries dangerous). Calls the sandbox makes itself (a job's staging, its logs) are never
faulted. Its WSGI layer and fault rules live in sandbox_faults.py, its jobs in sandbox_jobs.py, its
Batch queues in sandbox_batch.py. moto is needed:
pip install 'aws-train-remote[sandbox]'. See reference/moto_fidelity.md section 5.1.
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import urllib.parse
import urllib.request

from . import sandbox_batch, sandbox_capacity, sandbox_events
from .sandbox_batch import ServiceQueues
from .sandbox_faults import (  # noqa: F401 - the sandbox's public names, as before
    BATCH_OPERATIONS,
    FAULT_KINDS,
    INTERNAL_AGENT,
    S3_ERROR,
    FaultInjector,
    operation_name,
    simulate_principal_policy,
)
from .sandbox_jobs import SandboxJob, SandboxTuning

CAPACITY_REASON = ("CapacityError: Unable to provision requested ML compute capacity. Please retry using a "
                   "different ML instance type.")


class LoopbackAws:
    """moto behind the fault injector on 127.0.0.1:<free port>, in a thread of this process."""

    def __init__(self, port: int = 0, run_jobs: bool = True):
        try:
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
            from werkzeug.serving import make_server
        except ImportError:
            from .errors import MissingDependencyError

            raise MissingDependencyError("the sandbox needs moto: pip install 'aws-train-remote[sandbox]'") from None

        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        self.injector = FaultInjector(DomainDispatcherApplication(create_backend_app))
        self.server = make_server("127.0.0.1", port, self.injector, threaded=True)
        self.server.socket.listen(1024)  # werkzeug's 128 is short for a CI machine's bursts
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

        self.injector.handlers["SageMaker.StopTrainingJob"] = self._stop_training_job
        self.injector.guards["SageMaker.CreateTrainingJob"] = self._create_guard
        self.run_jobs = run_jobs  # False: jobs stay as moto leaves them (tests script their states)
        self.runners = {}
        # capacity SageMaker cannot find: a job asking for one of these instance types (or for spot,
        # with no_spot_capacity) fails at once with SageMaker's CapacityError, as on AWS
        self.no_capacity = set()
        self.no_spot_capacity = False
        # training plans (sandbox_capacity.py): add_training_plan makes one that becomes Active later
        self.plans = sandbox_capacity.TrainingPlans()
        self.injector.handlers["SageMaker.DescribeTrainingPlan"] = self.plans.describe
        self.warm_pools = {}  # match key -> (job that kept it, expiry time): --sagemaker-keep-alive
        self.pool_folders = {}  # job -> its warm pool's cache folder, handed on to the job that reuses the pool
        self.injector.handlers["SageMaker.UpdateTrainingJob"] = self._update_training_job
        self.queues = ServiceQueues(self)  # AWS Batch service jobs, which moto does not emulate
        self.queue_policies = sandbox_batch.QueuePolicies()  # SAGEMAKER_TRAINING queues and their policies
        self.queue_policies.install(self.injector)
        self.tunings = {}  # tuning job name -> SandboxTuning: moto stores tuning jobs but runs no trials
        self.line_listeners = {}  # training job name -> callable(text): a tuner reading its trial's log
        self.injector.after["SageMaker.CreateHyperParameterTuningJob"] = self._start_tuning
        self.injector.handlers["SageMaker.ListTrainingJobsForHyperParameterTuningJob"] = self._list_trials
        for op in ("SubmitServiceJob", "DescribeServiceJob", "TerminateServiceJob", "ListServiceJobs"):
            self.injector.handlers[f"batch.{op}"] = getattr(self.queues, op)
        self.injector.after["SageMaker.CreateTrainingJob"] = self._start_job
        self.injector.rewrites["SageMaker.ListTrainingJobs"] = self._list_with_secondary_status
        self.injector.handlers["query.SimulatePrincipalPolicy"] = simulate_principal_policy
        # issue 20: prices (GetProducts) and the jobs' state-change events on EventBridge (sandbox_events.py)
        self.injector.handlers["AWSPriceListService.GetProducts"] = sandbox_events.get_products
        self.state_changes = sandbox_events.StateChanges()

    def stop(self):
        self.server.shutdown()
        self._drop_pool_folders()

    def _drop_pool_folders(self):
        for folder in self.pool_folders.values():
            shutil.rmtree(folder, ignore_errors=True)
        self.pool_folders.clear()

    def pool_folder(self, job: str, reused_from: str = None) -> str:
        """The warm pool cache folder of `job`: the pool's it reuses, else a new one (issue 19.6)."""
        import tempfile

        folder = self.pool_folders.pop(reused_from, None) if reused_from else None
        self.pool_folders[job] = folder or tempfile.mkdtemp(prefix="atr-warm-pool-")
        return self.pool_folders[job]

    def _update_training_job(self, body):
        """UpdateTrainingJob, which moto lacks: RemoteDebugConfig while the job is Downloading or
        Training, as SageMaker allows (train-remote-debugging.html). Its other members are not emulated."""
        request = json.loads(body or b"{}")
        name = request.get("TrainingJobName")
        try:
            job = self.job(name)
        except KeyError:
            return 400, {"__type": "ValidationException", "message": f"Could not find training job {name!r}."}
        others = sorted(set(request) - {"TrainingJobName", "RemoteDebugConfig"})
        if others:
            return 400, {"__type": "ValidationException", "message": f"the sandbox does not emulate {others}"}
        if job.training_job_status != "InProgress" or job.secondary_status not in ("Downloading", "Training"):
            return 400, {"__type": "ValidationException", "message": "RemoteDebugConfig can be updated only while the "
                         f"job's SecondaryStatus is Downloading or Training; it is {job.secondary_status}"}
        if "RemoteDebugConfig" in request:
            self.set_job(name, remote_debug_config={
                "EnableRemoteDebug": bool(request["RemoteDebugConfig"].get("EnableRemoteDebug"))})
        return 200, {"TrainingJobArn": job.arn}

    # -- what moto does not emulate: job lifecycle (reference/moto_fidelity.md 1.2, 1.3, 1.6)
    def job(self, name: str, account: str = "123456789012", region: str = "us-east-1"):
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[account][region].training_jobs[name]

    def set_job(self, name: str, **attrs):
        with self.injector.backend:  # never half-changed under a DescribeTrainingJob being answered
            job = self.job(name)
            before = job.training_job_status
            for key, value in attrs.items():
                setattr(job, key, value)
            if job.training_job_status != before:  # SageMaker's event on EventBridge (sandbox_events.py)
                self.state_changes.job_changed(job)

    def _stop_training_job(self, body):
        name = json.loads(body)["TrainingJobName"]
        job = self.job(name)
        if job.training_job_status not in ("InProgress", "Stopping"):
            return 400, {"__type": "ValidationException",
                         "message": f"The job status is {job.training_job_status}"}
        self.set_job(name, training_job_status="Stopping", secondary_status="Stopping")
        runner = self.runners.get(name)
        if runner is not None:
            runner.stop()
        return 200, {}

    def add_training_plan(self, name: str, instance_type: str, count: int = 1, active_after: float = 0.0) -> str:
        """A training plan for `count` instances of `instance_type`, Active `active_after` seconds from
        now (Scheduled until then); its ARN, for --sagemaker-training-plan."""
        return self.plans.add(name, instance_type, count, active_after)

    def _create_guard(self, body):
        """CreateTrainingJob's refusals: a taken name, a training plan that cannot take the job."""
        return self._refuse_taken_name(body) or self.plans.refusal(body)

    def _refuse_taken_name(self, body):
        """AWS refuses a second job of the same name; moto silently replaces the first (fidelity 1.1)."""
        name = json.loads(body or b"{}").get("TrainingJobName")
        try:
            self.job(name)
        except KeyError:
            return None
        return 400, {"__type": "ResourceInUse", "message": f"Training job names must be unique within an AWS "
                     f"account and region, and a training job with this name already exists ({name})"}

    def _list_with_secondary_status(self, reply):
        """ListTrainingJobs answers each job's SecondaryStatus on AWS; moto leaves it out."""
        for summary in reply.get("TrainingJobSummaries", []):
            _, _, _, region, account, _ = summary.get("TrainingJobArn", "::::::").split(":", 5)
            try:
                summary.setdefault("SecondaryStatus", self.job(summary["TrainingJobName"], account, region)
                                   .secondary_status)
            except KeyError:
                pass
        return reply

    def _start_job(self, body):
        """CreateTrainingJob really runs the job: through the local executor, in a thread."""
        request = json.loads(body)
        # moto answers a made-up MetricDefinitions in place of the request's (`metrics` reads them)
        self.set_job(request["TrainingJobName"], algorithm_specification=dict(request["AlgorithmSpecification"]))
        self.set_job(request["TrainingJobName"], **sandbox_batch.echoed(request))  # issue 19.5's settings
        if request.get("RemoteDebugConfig"):  # moto drops it; DescribeTrainingJob answers it on AWS
            self.set_job(request["TrainingJobName"], remote_debug_config=dict(request["RemoteDebugConfig"]))
        if not self.run_jobs:
            return
        request = self._with_capacity(request)
        if request is None:
            return
        plan = request["ResourceConfig"].get("TrainingPlanArn")
        if plan and not self.plans.active(plan):  # Pending until the plan is Active (sandbox_capacity.py)
            waiting = sandbox_capacity.PlanWait(self, request, self._run_job)
            self.runners[request["TrainingJobName"]] = waiting
            waiting.start()
            return
        self._run_job(request)

    def _with_capacity(self, request):
        """The request as it runs: an InstancePreferences list with SageMaker's selection made (the
        first type not in no_capacity), or None when the job could not get capacity (then Failed)."""
        resources = request["ResourceConfig"]
        if resources.get("InstancePreferences"):
            kind, count = sandbox_capacity.select(resources, self.no_capacity)
            if kind is not None:
                resources = {**resources, "SelectedInstanceType": kind, "SelectedInstanceCount": count}
                self.set_job(request["TrainingJobName"], resource_config=dict(resources))
                return {**request, "ResourceConfig": resources}
        elif resources.get("InstanceType") not in self.no_capacity and not (
                self.no_spot_capacity and request.get("EnableManagedSpotTraining")):
            return request
        self.set_job(request["TrainingJobName"], training_job_status="Failed", secondary_status="Failed",
                     failure_reason=CAPACITY_REASON)
        return None

    def _run_job(self, request, transitions=()):
        """Run the job through the local executor; `transitions`: its phases so far (a plan's wait)."""
        try:
            runner = SandboxJob(self, request, reused_from=self._take_warm_pool(request))
            runner.transitions = [dict(t) for t in transitions]
            self.runners[request["TrainingJobName"]] = runner
            runner.start()
        except Exception as err:  # noqa: BLE001 - the job exists: it fails as SageMaker's own would
            self.set_job(request["TrainingJobName"], training_job_status="Failed", secondary_status="Failed",
                         failure_reason=f"InternalServerError: the sandbox could not start the job ({err})")
            raise
        return runner

    @staticmethod
    def _pool_key(request) -> str:
        """What a job must match to reuse a warm pool (AWS: role, instances, volume, network)."""
        resources = request["ResourceConfig"]
        return json.dumps([request.get("RoleArn"), resources.get("InstanceType"), resources.get("InstanceCount"),
                           resources.get("InstanceGroups"), resources.get("VolumeSizeInGB"),
                           request.get("VpcConfig")], sort_keys=True)

    def keep_warm_pool(self, request) -> None:
        keep = request["ResourceConfig"].get("KeepAlivePeriodInSeconds") or 0
        if keep:
            self.warm_pools[self._pool_key(request)] = (request["TrainingJobName"], time.time() + keep)
            self.set_job(request["TrainingJobName"], warm_pool_status={
                "Status": "Available", "ResourceRetainedBillableTimeInSeconds": 0})

    def _take_warm_pool(self, request):
        """The job whose warm pool this new job takes over, if one matches and is still kept."""
        kept = self.warm_pools.pop(self._pool_key(request), None)
        if kept is None or kept[1] < time.time():
            return None
        earlier, expiry = kept
        keep = self.job(earlier).resource_config.get("KeepAlivePeriodInSeconds") or 0
        self.set_job(earlier, warm_pool_status={
            "Status": "Reused", "ReusedByJob": request["TrainingJobName"],
            "ResourceRetainedBillableTimeInSeconds": max(0, round(keep - (expiry - time.time())))})
        return earlier

    def tuning(self, name: str, account: str = "123456789012", region: str = "us-east-1"):
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[account][region].hyper_parameter_tuning_jobs[name]

    def _start_tuning(self, body):
        """moto records a tuning job as Completed with a made-up best trial; here it starts empty and
        its trials really run, as sandbox training jobs."""
        request = json.loads(body)
        name = request["HyperParameterTuningJobName"]
        job = self.tuning(name)
        job.hyper_parameter_tuning_job_status = "InProgress" if self.run_jobs else "Completed"
        job.best_training_job = job.OverallBestTrainingJob = None
        job.training_job_status_counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0,
                                            "NonRetryableError": 0, "Stopped": 0}
        job.objective_status_counters = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        job.hyper_parameter_tuning_end_time = None
        if self.run_jobs:
            tuning = SandboxTuning(self, request)
            self.tunings[name] = tuning
            tuning.start()

    def _list_trials(self, body):
        tuning = self.tunings.get(json.loads(body).get("HyperParameterTuningJobName"))
        return 200, {"TrainingJobSummaries": tuning.summaries() if tuning else []}

    def wait_for_jobs(self, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        for runner in list(self.runners.values()):
            runner.thread.join(max(0.0, deadline - time.time()))

    def client(self, service: str):
        """A client for the sandbox's own side (a job's staging and logs): never faulted."""
        import boto3
        from botocore.config import Config

        env = self.env()
        return boto3.client(service, endpoint_url=self.url, region_name=env["AWS_REGION"],
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                            config=Config(user_agent_extra=INTERNAL_AGENT))

    def reset(self):
        urllib.request.urlopen(urllib.request.Request(self.url + "/moto-api/reset", method="POST")).read()
        self.queues.reset()
        self.queue_policies.reset()
        self.injector.foreign_buckets.clear()
        self.injector.unexpected.clear()
        self.clear_faults()
        self.warm_pools.clear()  # their jobs are gone with the reset
        self.plans.reset()
        self._drop_pool_folders()

    def inject(self, op: str, status: int = None, times: int = 1, delay: float = 0, code: str = None, *,
               kind: str = None, kinds=None, rate: float = None, skip: int = 0, path: str = None, seed: int = 0):
        """A fault rule: `op` a regex on the operation name (s3.PutObject, SageMaker.CreateTrainingJob,
        Logs.GetLogEvents, query.GetCallerIdentity); `path` one on the S3 key path. It skips its first
        `skip` matches, then fires on each match with probability `rate` (default: always), at most
        `times` times. What it does: `status`/`code`/`delay` as given, or `kind` (one of FAULT_KINDS),
        or a kind drawn from `kinds` for each firing (seeded: the same seed draws the same sequence)."""
        rule = {"op": op, "status": status, "times": times, "delay": delay, "code": code, "kind": kind,
                "kinds": list(kinds) if kinds else None, "rate": rate, "skip": skip, "path": path, "seed": seed}
        urllib.request.urlopen(urllib.request.Request(self.url + "/_fault", data=json.dumps(rule).encode(),
                                                      method="POST")).read()

    def clear_faults(self):
        urllib.request.urlopen(urllib.request.Request(self.url + "/_fault", method="DELETE")).read()

    def add_foreign_bucket(self, name: str, owner: str = "999999999999") -> None:
        """A bucket that exists but belongs to another account (moto has one account)."""
        self.client("s3").create_bucket(Bucket=name)
        self.injector.foreign_buckets[name] = owner

    def calls(self) -> list:
        with self.injector.lock:
            return list(self.injector.log)

    def create_role(self, name: str) -> str:
        """A ready execution role, as `aws-train-remote role create` makes on AWS; its ARN."""
        from .aws.roles import create_execution_role

        return create_execution_role(self.client("iam"), name, "sagemaker-us-east-1-123456789012")[0]

    def env(self) -> dict:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
