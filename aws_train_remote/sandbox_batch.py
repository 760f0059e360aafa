"""The sandbox's AWS Batch job queues for SageMaker training and their scheduling policies, which
moto lacks (it knows neither SAGEMAKER_TRAINING queues nor quota-share policies): what
CreateSchedulingPolicy, CreateJobQueue, DescribeJobQueues and DescribeSchedulingPolicies answer,
and what SubmitServiceJob refuses for a queue of each kind. A queue the sandbox was never told of
takes any job, FIFO (ServiceQueues, below); one created here judges its jobs as Batch documents:

- a fair-share policy requires a share identifier (SubmitServiceJob's shareIdentifier: "If the job
  queue has a fair-share scheduling policy, then this parameter must be specified"), and a queue
  without one refuses it ("Don't specify this parameter if the job queue doesn't have a fair-share
  scheduling policy");
- a quota-share policy requires a quota share name, and a queue without one refuses it, alike.

The refusal's wording is the sandbox's own (Batch's exact text is not documented); its code is
Batch's ClientException. Also what the sandbox echoes of a training job that moto drops.
"""
from __future__ import annotations

import json
import threading
import time

ACCOUNT, REGION = "123456789012", "us-east-1"
OPERATIONS = {"createschedulingpolicy": "CreateSchedulingPolicy",
              "describeschedulingpolicies": "DescribeSchedulingPolicies",
              "createjobqueue": "CreateJobQueue", "describejobqueues": "DescribeJobQueues"}


def _refuse(message: str):
    return 400, {"__type": "ClientException", "message": message}


class QueuePolicies:
    def __init__(self):
        self.policies = {}  # arn -> the policy as DescribeSchedulingPolicies answers it
        self.queues = {}  # name -> the queue as DescribeJobQueues answers it
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.policies.clear()
            self.queues.clear()

    def install(self, injector) -> None:
        """Answer these operations for what is created here; moto answers the rest (guards)."""
        for op in OPERATIONS.values():
            injector.guards[f"batch.{op}"] = getattr(self, op)

    def CreateSchedulingPolicy(self, body):  # noqa: N802 - the API's own name
        """A quota-share policy (moto drops its quotaSharePolicy) or any policy: kept here, so a
        SAGEMAKER_TRAINING queue created here can name it."""
        request = json.loads(body or b"{}")
        name = request.get("name")
        arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:scheduling-policy/{name}"
        policy = {"name": name, "arn": arn, "tags": request.get("tags") or {}}
        for kind in ("fairsharePolicy", "quotaSharePolicy"):
            if request.get(kind) is not None:
                policy[kind] = request[kind]
        with self.lock:
            self.policies[arn] = policy
        return 200, {"name": name, "arn": arn}

    def DescribeSchedulingPolicies(self, body):  # noqa: N802
        arns = json.loads(body or b"{}").get("arns") or []
        with self.lock:
            if not any(a in self.policies for a in arns):
                return None
            return 200, {"schedulingPolicies": [json.loads(json.dumps(self.policies[a])) for a in arns
                                                if a in self.policies]}

    def CreateJobQueue(self, body):  # noqa: N802
        request = json.loads(body or b"{}")
        if request.get("jobQueueType") != "SAGEMAKER_TRAINING":
            return None  # moto's kind of queue
        name = request["jobQueueName"]
        arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{name}"
        queue = {"jobQueueName": name, "jobQueueArn": arn, "state": request.get("state") or "ENABLED",
                 "status": "VALID", "priority": request.get("priority", 1), "jobQueueType": "SAGEMAKER_TRAINING",
                 "serviceEnvironmentOrder": request.get("serviceEnvironmentOrder") or []}
        if request.get("schedulingPolicyArn"):
            queue["schedulingPolicyArn"] = request["schedulingPolicyArn"]
        with self.lock:
            if name in self.queues:
                return _refuse(f"Job queue {name} already exists")
            self.queues[name] = queue
        return 200, {"jobQueueName": name, "jobQueueArn": arn}

    def DescribeJobQueues(self, body):  # noqa: N802
        wanted = [q.rsplit("/", 1)[-1] for q in json.loads(body or b"{}").get("jobQueues") or []]
        with self.lock:
            if not wanted and self.queues:  # every queue (gc looks for jobs waiting in them); moto's left out
                return 200, {"jobQueues": [json.loads(json.dumps(q)) for q in self.queues.values()]}
            if not any(name in self.queues for name in wanted):
                return None
            return 200, {"jobQueues": [json.loads(json.dumps(self.queues[n])) for n in wanted if n in self.queues]}

    def refusal(self, request: dict):
        """SubmitServiceJob's ClientException for a queue created here, or None to take the job."""
        name = str(request.get("jobQueue", "")).rsplit("/", 1)[-1]
        with self.lock:
            queue = self.queues.get(name)
            policy = self.policies.get((queue or {}).get("schedulingPolicyArn"), {})
        if queue is None:
            return None
        fair, quota = "fairsharePolicy" in policy, "quotaSharePolicy" in policy
        if fair and not request.get("shareIdentifier"):
            return _refuse(f"Job queue {name} has a fair-share scheduling policy: a shareIdentifier is required")
        if request.get("shareIdentifier") and not fair:
            return _refuse(f"Job queue {name} has no fair-share scheduling policy: shareIdentifier is not allowed")
        if quota and not request.get("quotaShareName"):
            return _refuse(f"Job queue {name} has a quota-share scheduling policy: a quotaShareName is required")
        if request.get("quotaShareName") and not quota:
            return _refuse(f"Job queue {name} has no quota-share scheduling policy: quotaShareName is not allowed")
        return None


def echoed(request: dict) -> dict:
    """set_job attributes for what DescribeTrainingJob answers on AWS and moto leaves out: the
    InfraCheckConfig as asked, and an uncompressed model's ModelArtifacts, which names the
    prefix of its files (the SageMaker SDK reads it so: estimator.model_data)."""
    attrs = {}
    if "InfraCheckConfig" in request:  # (DescribeTrainingJob answers no SessionChainingConfig: nor does this)
        attrs["infra_check_config"] = dict(request["InfraCheckConfig"])
    output = request.get("OutputDataConfig") or {}
    if output.get("CompressionType") == "NONE":
        attrs["model_artifacts"] = {"S3ModelArtifacts": output["S3OutputPath"].rstrip("/")
                                    + f"/{request['TrainingJobName']}/output/model/"}
    return attrs


class ServiceQueues:
    """AWS Batch job queues for SageMaker training (SubmitServiceJob), which moto lacks: FIFO, one
    job at a time per queue; a queued request becomes a real sandbox training job when its turn
    comes, and the service job ends with it, as Batch reports it."""

    TICK = 0.2
    ACTIVE = ("SCHEDULED", "STARTING", "RUNNING")

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.jobs = {}  # jobId -> the service job as DescribeServiceJob returns it
        self.tokens = {}  # clientToken -> jobId: a retried submit returns the same job
        self.lock = threading.Lock()
        self.thread = None

    def reset(self):
        with self.lock:
            self.jobs.clear()
            self.tokens.clear()

    def SubmitServiceJob(self, body):  # noqa: N802 - the API's own name
        import uuid

        request = json.loads(body)
        refused = self.sandbox.queue_policies.refusal(request)  # a fair-share or quota-share queue's rules
        if refused:
            return refused
        with self.lock:
            token = request.get("clientToken")
            if token and token in self.tokens:
                job = self.jobs[self.tokens[token]]
            else:
                job_id = str(uuid.uuid4())
                job = {"jobId": job_id, "jobName": request["jobName"], "jobQueue": request["jobQueue"],
                       "jobArn": f"arn:aws:batch:us-east-1:123456789012:service-job/{job_id}",
                       "serviceJobType": request["serviceJobType"],
                       "serviceRequestPayload": request["serviceRequestPayload"], "status": "SUBMITTED",
                       "createdAt": int(time.time() * 1000), "attempts": [], "isTerminated": False,
                       "tags": request.get("tags") or {},
                       **{k: request[k] for k in ("shareIdentifier", "schedulingPriority", "quotaShareName")
                          if k in request}}
                self.jobs[job_id] = job
                if token:
                    self.tokens[token] = job_id
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, daemon=True, name="sandbox-queues")
                self.thread.start()
        return 200, {"jobArn": job["jobArn"], "jobName": job["jobName"], "jobId": job["jobId"]}

    def DescribeServiceJob(self, body):  # noqa: N802
        with self.lock:
            job = self.jobs.get(json.loads(body).get("jobId"))
            if job is None:
                return 400, {"__type": "ClientException", "message": "Job not found"}
            return 200, json.loads(json.dumps(job))

    def ListServiceJobs(self, body):  # noqa: N802
        """A queue's jobs, newest first: with a JOB_NAME filter (case-insensitive, a trailing * a
        prefix) of any status, else those of `jobStatus` (default RUNNING), as Batch documents it."""
        request = json.loads(body or b"{}")
        queue = str(request.get("jobQueue", "")).rsplit("/", 1)[-1]
        names = [f for f in request.get("filters") or [] if f.get("name") == "JOB_NAME"]
        pattern = (names[0].get("values") or [""])[0].lower() if names else None

        def wanted(job):
            if job["jobQueue"].rsplit("/", 1)[-1] != queue:
                return False
            if pattern is None:
                return job["status"] == request.get("jobStatus", "RUNNING")
            name = job["jobName"].lower()
            return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern

        with self.lock:
            found = sorted((j for j in self.jobs.values() if wanted(j)), key=lambda j: -j["createdAt"])
            rows = [{k: j[k] for k in ("jobId", "jobName", "jobArn", "status", "createdAt", "serviceJobType")
                     if k in j} for j in found]
        return 200, {"jobSummaryList": json.loads(json.dumps(rows))}

    def TerminateServiceJob(self, body):  # noqa: N802
        request = json.loads(body)
        with self.lock:
            job = self.jobs.get(request.get("jobId"))
            if job is None:
                return 400, {"__type": "ClientException", "message": "Job not found"}
            if job["status"] not in ("SUCCEEDED", "FAILED"):
                job.update(status="FAILED", statusReason=request.get("reason", "terminated"), isTerminated=True,
                           stoppedAt=int(time.time() * 1000))
        return 200, {}

    def _run(self):
        while True:
            with self.lock:
                pending = [j for j in self.jobs.values() if j["status"] not in ("SUCCEEDED", "FAILED")]
            if not pending:
                return
            for job in pending:
                self._advance(job)
            time.sleep(self.TICK)

    def _advance(self, job):
        with self.lock:
            status = job["status"]
            busy = any(j["jobQueue"] == job["jobQueue"] and j["status"] in self.ACTIVE and j is not job
                       for j in self.jobs.values())
            if status == "SUBMITTED":
                job["status"] = "RUNNABLE"
                return
            if status == "RUNNABLE":
                if busy or any(j["jobQueue"] == job["jobQueue"] and j["status"] == "RUNNABLE"
                               and j["createdAt"] < job["createdAt"] for j in self.jobs.values()):
                    job["statusReason"] = "waiting for the jobs ahead of it in the queue"
                    return
                job.update(status="SCHEDULED", scheduledAt=int(time.time() * 1000))
                job.pop("statusReason", None)
                return
        if status == "SCHEDULED":
            payload = json.loads(job["serviceRequestPayload"])
            tags = [{"Key": k, "Value": v} for k, v in job["tags"].items()]
            try:
                arn = self.sandbox.client("sagemaker").create_training_job(
                    **payload, **({"Tags": tags} if tags else {}))["TrainingJobArn"]
            except Exception as err:  # noqa: BLE001 - Batch reports a refused request as the job's failure
                with self.lock:
                    job.update(status="FAILED", statusReason=f"Received status from SageMaker: {err}",
                               stoppedAt=int(time.time() * 1000))
                return
            attempt = {"serviceResourceId": {"name": "TrainingJobArn", "value": arn},
                       "startedAt": int(time.time() * 1000)}
            with self.lock:
                job.update(status="STARTING", startedAt=attempt["startedAt"], latestAttempt=attempt,
                           attempts=[attempt])
            return
        name = job["latestAttempt"]["serviceResourceId"]["value"].rsplit("/", 1)[-1]
        training = self.sandbox.job(name).training_job_status
        with self.lock:
            if status == "STARTING":
                job["status"] = "RUNNING"
            elif training in ("Completed", "Failed", "Stopped"):
                job.update(status="SUCCEEDED" if training == "Completed" else "FAILED",
                           stoppedAt=int(time.time() * 1000), isTerminated=training == "Stopped")
                if training != "Completed":
                    job["statusReason"] = f"Received status from SageMaker: training job {training}"
