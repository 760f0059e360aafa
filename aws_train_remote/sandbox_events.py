"""What the sandbox adds to moto for cost and notice: the Price List Query API's GetProducts for a
few instance types, and SageMaker's "Training Job State Change" events of its jobs on EventBridge.

GetProducts answers in the Price List's own format (one JSON text per product: product.attributes
with productFamily, regionCode, instanceName, platoinstancetype; terms.OnDemand.<offer>.
priceDimensions.<rate>.pricePerUnit.USD per "Hrs"), so aws/pricing.py's parser is tested on it.
Its figures are the sandbox's own round numbers, NOT AWS prices: each SKU says so.

EventBridge: moto 5 delivers PutEvents to log groups, SQS queues, archives and buses; an SNS topic
target raises NotImplementedError there, and an API destination is called without the event, and
only when MOTO_EVENTS_INVOKE_HTTP is set (moto/events/models.py, Rule.send_to_targets). So for the
rules that match a job's event the sandbox delivers it itself, as EventBridge does: to an SNS topic
through moto's SNS (which records the publish and hands it on to the topic's subscriptions, an SQS
queue's too), to an API destination as an HTTP POST of the event with its connection's API key
header. Other targets are moto's. Deliveries run in order on one thread, outside the backend lock.
"""
from __future__ import annotations

import datetime
import json
import logging
import queue
import threading
import urllib.request
import uuid

# The sandbox's figures in USD per instance-hour: round numbers chosen for tests, not prices of AWS.
SANDBOX_PRICES = {"ml.m5.large": 0.10, "ml.m5.xlarge": 0.20, "ml.c5.xlarge": 0.20, "ml.g5.xlarge": 1.00,
                  "ml.g6.xlarge": 0.80, "ml.p4d.24xlarge": 30.00, "ml.trn1.32xlarge": 20.00}
OFFER, RATE = "JRTCKXETXF", "6YS6EN2CT7"  # the Price List's on-demand offer term and hourly rate codes
DETAIL_TYPE = "SageMaker Training Job State Change"


def _filters(body: bytes) -> dict:
    request = json.loads(body or b"{}")
    return {f.get("Field"): f.get("Value") for f in request.get("Filters") or [] if f.get("Type") == "TERM_MATCH"}


def product(instance_type: str, region: str, usd: float) -> str:
    """One PriceList item for a training instance, as the Price List writes it."""
    sku = "SANDBOX" + uuid.uuid5(uuid.NAMESPACE_URL, f"{region}/{instance_type}").hex[:9].upper()
    doc = {
        "product": {"productFamily": "ML Instance", "sku": sku, "attributes": {
            "regionCode": region, "servicecode": "AmazonSageMaker", "servicename": "Amazon SageMaker",
            "usagetype": f"SANDBOX-Train:{instance_type}", "locationType": "AWS Region",
            "location": f"sandbox ({region})", "instanceName": instance_type, "operation": "RunInstance",
            "platoinstancetype": "Training", "component": "Training"}},
        "serviceCode": "AmazonSageMaker",
        "terms": {"OnDemand": {f"{sku}.{OFFER}": {
            "priceDimensions": {f"{sku}.{OFFER}.{RATE}": {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "rateCode": f"{sku}.{OFFER}.{RATE}", "pricePerUnit": {"USD": f"{usd:.10f}"},
                "description": f"${usd} per sandbox training hour on {instance_type} (a sandbox figure, not an "
                               "AWS price)"}},
            "sku": sku, "effectiveDate": "2024-01-01T00:00:00Z", "offerTermCode": OFFER, "termAttributes": {}}}},
        "version": "sandbox", "publicationDate": "2024-01-01T00:00:00Z",
    }
    return json.dumps(doc)


def get_products(body: bytes):
    """pricing:GetProducts, which moto lacks: the sandbox's training products that match the filters."""
    request = json.loads(body or b"{}")
    if request.get("ServiceCode") != "AmazonSageMaker":
        return 200, {"FormatVersion": "aws_v1", "PriceList": []}
    wanted = _filters(body)
    items = []
    for kind, usd in SANDBOX_PRICES.items():
        doc = json.loads(product(kind, wanted.get("regionCode", "us-east-1"), usd))
        attrs = {**doc["product"]["attributes"], "productFamily": doc["product"]["productFamily"]}
        if all(attrs.get(field) == value for field, value in wanted.items()):
            items.append(json.dumps(doc))
    return 200, {"FormatVersion": "aws_v1", "PriceList": items}


def _ms(when) -> str:
    return str(int(when.timestamp() * 1000)) if hasattr(when, "timestamp") else None


def state_change_event(job, account: str, region: str) -> dict:
    """The event SageMaker sends for a training job's status change (automating-sagemaker-with-
    eventbridge.html): the job's description as `detail`, its tags as a map."""
    detail = {"TrainingJobName": job.training_job_name, "TrainingJobArn": job.arn,
              "TrainingJobStatus": job.training_job_status, "SecondaryStatus": job.secondary_status,
              "HyperParameters": job.hyper_parameters or {}, "RoleArn": job.role_arn,
              "AlgorithmSpecification": job.algorithm_specification, "ResourceConfig": job.resource_config,
              "OutputDataConfig": job.output_data_config, "StoppingCondition": job.stopping_condition,
              "CreationTime": _ms(job.creation_time),
              "TrainingStartTime": _ms(getattr(job, "training_start_time", None)),
              "TrainingEndTime": _ms(getattr(job, "training_end_time", None)),
              "LastModifiedTime": _ms(getattr(job, "last_modified_time", None)),
              "Tags": {t["Key"]: t.get("Value", "") for t in job.tags or []}}
    if job.training_job_status == "Failed" and getattr(job, "failure_reason", None):
        detail["FailureReason"] = job.failure_reason
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": DETAIL_TYPE, "source": "aws.sagemaker",
            "account": account, "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
            "resources": [job.arn], "detail": json.loads(json.dumps(detail, default=str))}


class StateChanges:
    """Delivers the events of the sandbox's jobs, in order, on one thread."""

    def __init__(self):
        self.pending = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True, name="sandbox-events")
        self.thread.start()
        self.delivered = []  # (target ARN, status): what a test may check besides the targets' own records

    def job_changed(self, job) -> None:
        """Called with the backend lock held, when a job's status has just changed."""
        _, _, _, region, account, _ = job.arn.split(":", 5)
        self.pending.put((state_change_event(job, account, region), account, region))

    def drain(self, timeout: float = 10) -> None:
        """Wait until every event so far has been delivered."""
        done = threading.Event()
        self.pending.put((None, done, None))
        done.wait(timeout)

    def _run(self):
        while True:
            event, account, region = self.pending.get()
            if event is None:
                account.set()
                continue
            try:
                self._deliver(event, account, region)
            except Exception:  # noqa: BLE001 - a broken target must not stop the next event's delivery
                logging.getLogger(__name__).exception("sandbox: delivering %s", event["detail-type"])

    def _deliver(self, event, account: str, region: str) -> None:
        from moto.events.models import events_backends

        backend = events_backends[account][region]
        for rule in list(backend.event_buses["default"].rules.values()):
            if rule.state != "ENABLED" or not rule.event_pattern.matches_event(event):
                continue
            for target in list(rule.targets):
                arn = target["Arn"]
                if ":sns:" in arn:
                    from moto.sns.models import sns_backends

                    sns_backends[account][region].publish(message=json.dumps(event), arn=arn)
                elif ":api-destination/" in arn:
                    self._post(backend, arn, event)
                else:
                    continue  # moto's own deliveries (SQS, logs) happen on PutEvents, not here
                self.delivered.append((arn, event["detail"]["TrainingJobStatus"]))

    @staticmethod
    def _post(backend, arn: str, event: dict) -> None:
        destination = backend.destinations[arn.split(":api-destination/", 1)[1].split("/")[0]]
        connection = next((c for c in backend.connections.values() if c.arn == destination.connection_arn), None)
        headers = {"Content-Type": "application/json"}
        key = ((connection.auth_parameters if connection else {}) or {}).get("ApiKeyAuthParameters") or {}
        if key.get("ApiKeyName"):
            headers[key["ApiKeyName"]] = key.get("ApiKeyValue", "")
        request = urllib.request.Request(destination.invocation_endpoint, data=json.dumps(event).encode(),
                                         headers=headers, method=destination.http_method or "POST")
        urllib.request.urlopen(request, timeout=10).read()
