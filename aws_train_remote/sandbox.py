"""The loopback sandbox: moto on 127.0.0.1, behind a small WSGI layer that names each AWS
operation, records it (with its body for SageMaker calls), can inject faults by rule, and
emulates what moto lacks (StopTrainingJob; job states are set with set_job).

Used by the tests, the benchmarks and `aws-train-remote sandbox`. Fault rules are programmed
over HTTP (POST /_fault), so code in another process sees them too. A rule matches an
operation (and optionally an S3 path), may skip its first matches, fire with a probability,
and answers with an error status, a delay, or a dropped connection -- before moto saw the
request, or *after* moto acted on it (the reply lost on the way back, the case that makes
retries dangerous). Calls the sandbox makes itself (a job's staging, its logs) are never
faulted. moto is needed: pip install 'aws-train-remote[sandbox]'. See
reference/moto_fidelity.md section 5.1.
"""
from __future__ import annotations

import datetime
import io
import json
import logging
import random
import re
import shutil
import socket
import threading
import time
import urllib.parse
import urllib.request

from . import sandbox_batch, sandbox_capacity, sandbox_events

INTERNAL_AGENT = "atr-sandbox-internal"  # user-agent mark of the sandbox's own calls: never faulted
FAULT_KINDS = ("throttle", "500", "503", "slow", "slow_reply", "drop_before", "drop_after")
S3_ERROR = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected"
            b"</Message><RequestId>injected</RequestId></Error>")


def simulate_principal_policy(body: bytes):
    """iam:SimulatePrincipalPolicy, which moto lacks (a 500) and the SageMaker SDK's ModelTrainer
    calls before anything else: the sandbox enforces no IAM policy, so every action is allowed."""
    from xml.sax.saxutils import escape

    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))

    def listed(name):  # Name.member.1, .2, ... .10: in number order
        found = [(int(k.rsplit(".", 1)[1]), v[0]) for k, v in form.items() if k.startswith(name + ".member.")]
        return [value for _, value in sorted(found)]

    actions, resources = listed("ActionNames"), listed("ResourceArns") or ["*"]
    members = "".join(f"<member><EvalActionName>{escape(a)}</EvalActionName><EvalResourceName>{escape(r)}"
                      "</EvalResourceName><EvalDecision>allowed</EvalDecision></member>"
                      for a in actions for r in resources)
    return 200, ('<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
                 f"<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>{members}"
                 "</EvaluationResults></SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>sandbox"
                 "</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>").encode()


def operation_name(environ, body: bytes = b"") -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        service, _, op = target.partition(".")
        return f"{service.split('_')[0]}.{op}"
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        query.update(urllib.parse.parse_qs(body.decode("utf-8", "replace")))
    method = environ["REQUEST_METHOD"]
    if "Action" in query:
        return f"query.{query['Action'][0]}"
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "/batch/aws4_request" in auth:  # rest-json: the operation is the path, /v1/<operation in lower case>
        name = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
        return "batch." + BATCH_OPERATIONS.get(name, name)
    if "/s3/aws4_request" in auth or "/s3/" in auth or not auth:
        if method == "PUT" and "partNumber" in query:
            return "s3.UploadPart"
        if method == "POST" and "uploads" in query:
            return "s3.CreateMultipartUpload"
        if method == "POST" and "uploadId" in query:
            return "s3.CompleteMultipartUpload"
        if method == "DELETE" and "uploadId" in query:
            return "s3.AbortMultipartUpload"
        if method == "PUT" and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
            return "s3.CopyObject"
        if method == "PUT":
            path = environ.get("PATH_INFO", "/").strip("/")
            return "s3.PutObject" if "/" in path else "s3.CreateBucket"
        if method == "GET" and "uploads" in query:
            return "s3.ListMultipartUploads"
        if method == "GET" and ("list-type" in query or environ.get("PATH_INFO", "/").strip("/").count("/") == 0):
            return "s3.ListObjectsV2"
        if method == "GET":
            return "s3.GetObject"
        if method == "HEAD":
            path = environ.get("PATH_INFO", "/").strip("/")
            return "s3.HeadObject" if "/" in path else "s3.HeadBucket"
        if method == "POST" and "delete" in query:
            return "s3.DeleteObjects"
        if method == "DELETE":
            return "s3.DeleteObject"
        return f"s3.{method}"
    return f"unknown.{method}"


class FaultInjector:
    def __init__(self, app):
        self.app = app
        self.rules = []
        self.log = []
        self.handlers = {}  # operation -> fn(body bytes) -> (status, json-able body): emulate what moto lacks
        self.guards = {}  # operation -> fn(body bytes) -> None (let moto answer) or (status, body)
        self.foreign_buckets = {}  # bucket -> owning account: moto ignores ExpectedBucketOwner, AWS answers 403
        self.after = {}  # operation -> fn(body bytes): run after moto answered it with 200
        self.rewrites = {}  # operation -> fn(reply dict) -> reply dict: what moto leaves out of a 200 answer
        self.lock = threading.Lock()
        # moto's backends are plain dicts and objects, not thread-safe: a listing that meets a create
        # raised "dictionary changed size" as a 500, and the client's retry of a create that had
        # acted looked like a lost reply. One request at a time reaches them (and the jobs' own
        # state changes take the same lock); injected delays are slept outside it.
        self.backend = threading.RLock()
        self.unexpected = []  # (op, error) of every reply the sandbox itself failed: a test expects none

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_fault"):
            return self._control(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) \
            if environ.get("CONTENT_LENGTH") else b""
        if not body and environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            body = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        op = operation_name(environ, body)
        internal = INTERNAL_AGENT in environ.get("HTTP_USER_AGENT", "")
        fault = None if internal else self._pick_fault(op, path)
        with self.lock:
            entry = {"op": op, "injected": fault is not None and fault["kind"] != "slow", "bytes": len(body),
                     "fault": fault and fault["kind"], "internal": internal}
            if op.startswith("SageMaker."):
                entry["body"] = json.loads(body or b"{}")
            if op.startswith("s3."):
                entry["owner"] = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
                entry["path"] = urllib.parse.unquote(path)
            self.log.append(entry)
        if fault and fault.get("delay"):
            time.sleep(fault["delay"])
        if fault and fault["kind"] == "drop_before":
            return self._drop(environ)
        if fault and fault.get("status"):
            return self._error(op, fault, start_response)
        if op.startswith("s3.") and self._foreign(environ, path):
            return self._error(op, {"status": 403, "code": "AccessDenied"}, start_response)
        with self.backend:
            result = self._answer(environ, start_response, op, body, fault)
        if fault and fault.get("reply_delay"):  # moto acted; the reply comes later (outside the lock)
            time.sleep(fault["reply_delay"])
        return result

    def _answer(self, environ, start_response, op, body, fault):
        guard = self.guards.get(op)
        answer = guard(body) if guard else None
        if answer is None and op in self.handlers:
            answer = self.handlers[op](body)
        if answer is not None:
            status, payload = answer
            xml = isinstance(payload, bytes)  # a query-protocol reply (IAM), already XML
            data = payload if xml else json.dumps(payload).encode()
            reason = {200: "OK", 400: "Bad Request"}.get(status, "Error")
            if fault and fault["kind"] == "drop_after":
                return self._drop(environ)
            start_response(f"{status} {reason}", [("Content-Type", "text/xml" if xml else "application/x-amz-json-1.1"),
                                             ("Content-Length", str(len(data)))])
            return [data]
        seen = {}
        reply = {}
        rewrite = self.rewrites.get(op)

        def capture(status, headers, exc_info=None):
            seen["status"] = status
            reply["headers"] = headers
            if (fault and fault["kind"] == "drop_after") or rewrite:
                return lambda data: None  # dropped, or answered below once rewritten
            return start_response(status, headers, exc_info)

        result = list(self.app(environ, capture))
        if seen.get("status", "")[:1] == "5":
            self.unexpected.append((op, seen["status"]))
        if seen.get("status", "").startswith("200") and op in self.after:
            try:
                self.after[op](body)
            except Exception as err:  # noqa: BLE001 - moto acted: the reply must say so, never a 500
                self.unexpected.append((op, repr(err)))
                logging.getLogger(__name__).exception("sandbox: after %s", op)
        if fault and fault["kind"] == "drop_after":  # moto acted; the reply never arrives
            return self._drop(environ)
        if rewrite:
            data = b"".join(result)
            if seen.get("status", "").startswith("200"):
                data = json.dumps(rewrite(json.loads(data))).encode()
            headers = [(k, v) for k, v in reply["headers"] if k.lower() != "content-length"]
            start_response(seen["status"], headers + [("Content-Length", str(len(data)))])
            return [data]
        return result

    def _foreign(self, environ, path: str) -> bool:
        """A call that names an owner other than the bucket's (AWS: 403 AccessDenied)."""
        bucket = path.strip("/").split("/", 1)[0]
        owner = self.foreign_buckets.get(bucket)
        expected = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
        return owner is not None and expected is not None and expected != owner

    def _pick_fault(self, op: str, path: str):
        """The first rule that matches and fires, as a dict: kind, status, code, delay."""
        with self.lock:
            for rule in self.rules:
                if rule["times"] <= 0 or not rule["regex"].search(op):
                    continue
                if rule.get("path_regex") is not None and not rule["path_regex"].search(urllib.parse.unquote(path)):
                    continue
                if rule.get("skip", 0) > 0:
                    rule["skip"] -= 1
                    continue
                if rule.get("rate") is not None and rule["rng"].random() >= rule["rate"]:
                    continue
                rule["times"] -= 1
                kind = rule.get("kind")
                if rule.get("kinds"):
                    kind = rule["rng"].choice(rule["kinds"])
                return self._fault_of(kind, rule, op)
        return None

    @staticmethod
    def _fault_of(kind, rule, op):
        if kind is None:  # the original form: a status and/or a delay
            return {"kind": "status" if rule.get("status") else "slow", "status": rule.get("status"),
                    "code": rule.get("code"), "delay": rule.get("delay") or 0}
        if kind == "throttle":
            status, code = (503, "SlowDown") if op.startswith("s3.") else (400, "ThrottlingException")
            if op.startswith("query."):
                code = "Throttling"
            return {"kind": kind, "status": status, "code": code, "delay": rule.get("delay") or 0}
        if kind in ("500", "503"):
            code = {"500": "InternalError", "503": "ServiceUnavailable"}[kind]
            if op.startswith("s3.") and kind == "503":
                code = "SlowDown"
            return {"kind": kind, "status": int(kind), "code": code, "delay": rule.get("delay") or 0}
        if kind == "slow":
            return {"kind": kind, "delay": rule.get("delay") or rule["rng"].uniform(0.05, 0.4)}
        if kind in ("drop_before", "drop_after"):
            return {"kind": kind, "delay": rule.get("delay") or 0}
        if kind == "slow_reply":  # moto acts at once; the reply comes `delay` seconds later
            return {"kind": kind, "reply_delay": rule.get("delay") or 1.0}
        raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")

    @staticmethod
    def _drop(environ):
        """Close the connection without a reply: the client sees the peer hang up."""
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionResetError("sandbox: connection dropped by a fault rule")

    def _error(self, op, rule, start_response):
        status = int(rule["status"])
        if rule.get("kind") == "status" and not rule.get("code") and op.startswith("s3.") and status == 503:
            rule = dict(rule, code="SlowDown")
        code = rule.get("code") or ("SlowDown" if op.startswith("s3.") and status == 503 else
                                    "InternalError" if status >= 500 else "ThrottlingException")
        if op.startswith("s3."):
            body = S3_ERROR.replace(b"{code}", code.encode())
            ctype = "application/xml"
        elif op.startswith("query."):
            body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected"
                    f"</Message></Error><RequestId>x</RequestId></ErrorResponse>").encode()
            ctype = "text/xml"
        else:
            body = json.dumps({"__type": code, "message": "Rate exceeded"}).encode()
            ctype = "application/x-amz-json-1.1"
        reason = {400: "Bad Request", 500: "Internal Server Error", 503: "Slow Down"}.get(status, "Error")
        start_response(f"{status} {reason}", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    def _control(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        if method == "POST":
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            rule = json.loads(raw)
            rule["regex"] = re.compile(rule["op"])
            rule["path_regex"] = re.compile(rule["path"]) if rule.get("path") else None
            rule["rng"] = random.Random(rule.get("seed", 0))
            rule.setdefault("times", 1)
            with self.lock:
                self.rules.append(rule)
        elif method == "DELETE":
            with self.lock:
                self.rules.clear()
                self.log.clear()
        with self.lock:
            payload = json.dumps({"log": self.log, "rules": [
                {k: v for k, v in r.items() if k not in ("regex", "path_regex", "rng")} for r in self.rules]}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [payload]


BATCH_OPERATIONS = {"submitservicejob": "SubmitServiceJob", "describeservicejob": "DescribeServiceJob",
                    "terminateservicejob": "TerminateServiceJob", "listservicejobs": "ListServiceJobs",
                    **sandbox_batch.OPERATIONS}
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
