"""The loopback sandbox: moto on 127.0.0.1, behind a small WSGI layer that names each AWS
operation, records it (with its body for SageMaker calls), can inject faults by rule, and
emulates what moto lacks (StopTrainingJob; job states are set with set_job).

Used by the tests, the benchmarks and `aws-train-remote sandbox`. Fault rules are programmed
over HTTP (POST /_fault), so code in another process sees them too. moto is needed:
pip install 'aws-train-remote[sandbox]'. See reference/moto_fidelity.md section 5.1.
"""
from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.parse
import urllib.request

S3_ERROR = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected"
            b"</Message><RequestId>injected</RequestId></Error>")


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
        self.lock = threading.Lock()

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
        size = len(body)
        rule = None
        with self.lock:
            for candidate in self.rules:
                if candidate["times"] > 0 and candidate["regex"].search(op):
                    candidate["times"] -= 1
                    rule = candidate
                    break
            entry = {"op": op, "injected": bool(rule and rule.get("status")), "bytes": size}
            if op.startswith("SageMaker."):
                entry["body"] = json.loads(body or b"{}")
            self.log.append(entry)
        if rule and rule.get("delay"):
            time.sleep(rule["delay"])
        if rule and rule.get("status"):
            return self._error(op, rule, start_response)
        if op in self.handlers:
            status, payload = self.handlers[op](body)
            data = json.dumps(payload).encode()
            start_response(f"{status} OK", [("Content-Type", "application/x-amz-json-1.1"),
                                             ("Content-Length", str(len(data)))])
            return [data]
        return self.app(environ, start_response)

    def _error(self, op, rule, start_response):
        status = int(rule["status"])
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
            import re

            rule["regex"] = re.compile(rule["op"])
            rule.setdefault("times", 1)
            with self.lock:
                self.rules.append(rule)
        elif method == "DELETE":
            with self.lock:
                self.rules.clear()
                self.log.clear()
        with self.lock:
            payload = json.dumps({"log": self.log, "rules": [
                {k: v for k, v in r.items() if k != "regex"} for r in self.rules]}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [payload]


class LoopbackAws:
    """moto behind the fault injector on 127.0.0.1:<free port>, in a thread of this process."""

    def __init__(self, port: int = 0):
        try:
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
            from werkzeug.serving import make_server
        except ImportError:
            from .errors import MissingDependencyError

            raise MissingDependencyError("the sandbox needs moto: pip install 'aws-train-remote[sandbox]'") from None

        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        self.injector = FaultInjector(DomainDispatcherApplication(create_backend_app))
        self.server = make_server("127.0.0.1", port, self.injector, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

        self.injector.handlers["SageMaker.StopTrainingJob"] = self._stop_training_job

    def stop(self):
        self.server.shutdown()

    # -- what moto does not emulate: job lifecycle (reference/moto_fidelity.md 1.2, 1.3, 1.6)
    def job(self, name: str, account: str = "123456789012", region: str = "us-east-1"):
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[account][region].training_jobs[name]

    def set_job(self, name: str, **attrs):
        job = self.job(name)
        for key, value in attrs.items():
            setattr(job, key, value)

    def _stop_training_job(self, body):
        name = json.loads(body)["TrainingJobName"]
        self.set_job(name, training_job_status="Stopping", secondary_status="Stopping")
        return 200, {}

    def reset(self):
        urllib.request.urlopen(urllib.request.Request(self.url + "/moto-api/reset", method="POST")).read()
        self.clear_faults()

    def inject(self, op: str, status: int = None, times: int = 1, delay: float = 0, code: str = None):
        rule = {"op": op, "status": status, "times": times, "delay": delay, "code": code}
        urllib.request.urlopen(urllib.request.Request(self.url + "/_fault", data=json.dumps(rule).encode(),
                                                      method="POST")).read()

    def clear_faults(self):
        urllib.request.urlopen(urllib.request.Request(self.url + "/_fault", method="DELETE")).read()

    def calls(self) -> list:
        with self.injector.lock:
            return list(self.injector.log)

    def env(self) -> dict:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
