"""The sandbox's WSGI layer in front of moto: it names each AWS operation, records it (with its
body for SageMaker calls), answers what moto lacks through handlers and guards, runs hooks after
moto acted, and injects faults by rule (an error status, a delay, a connection dropped before or
after moto acted). Used by sandbox.LoopbackAws; see its docstring and reference/moto_fidelity.md."""
from __future__ import annotations

import io
import json
import logging
import random
import re
import socket
import threading
import time
import urllib.parse

from . import sandbox_batch

BATCH_OPERATIONS = {"submitservicejob": "SubmitServiceJob", "describeservicejob": "DescribeServiceJob",
                    "terminateservicejob": "TerminateServiceJob", "listservicejobs": "ListServiceJobs",
                    **sandbox_batch.OPERATIONS}

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
