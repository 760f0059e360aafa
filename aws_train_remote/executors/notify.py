"""Hearing that a job ended: `aws-train-remote notify setup|status|remove`, and the terminal's bell.

`notify setup` creates, only when asked and once, an EventBridge rule on SageMaker's "SageMaker
Training Job State Change" events (docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-
with-eventbridge.html: the event's detail carries the job's Tags as a map) of jobs that end
(Completed, Failed, Stopped) and carry the tag --sagemaker-notify puts on a job; its target is an SNS
topic with an email subscription, or an API destination (with its connection, and the IAM role
EventBridge needs to call it) that POSTs the event to a webhook. Rule, topic and role carry the tag
OWNER_TAG; connections and API destinations take no tags, so theirs is the Description. `remove`
deletes exactly those of the names below that carry the mark, and names any it leaves alone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from ..aws.session import error_code
from ..errors import AwsError, UsageError
from ..spec.cost import NOTIFY_TAG

NAME = "aws-train-remote-notify"  # the rule, topic, connection and API destination
ROLE = "aws-train-remote-notify-events"  # the role EventBridge assumes to call the API destination
OWNER_TAG = ("aws-train-remote:created-by", "notify setup")
MARK = "created by aws-train-remote notify setup"
EMAIL_TARGET, WEBHOOK_TARGET = "atr-email", "atr-webhook"
ENDED = ("Completed", "Failed", "Stopped")


def event_pattern() -> dict:
    """The jobs the rule hears: ended, and tagged by --sagemaker-notify."""
    return {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Training Job State Change"],
            "detail": {"TrainingJobStatus": list(ENDED), "Tags": {NOTIFY_TAG: ["yes"]}}}


def check_setup_args(email, webhook, header, environ) -> tuple:
    """(email, webhook, (header name, value)) judged before any AWS call."""
    import re

    if not email and not webhook:
        raise UsageError("notify setup", None, "nothing to set up", "pass --email ADDRESS, --webhook URL, or both")
    if email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        raise UsageError("--email", email, "not an email address", "e.g. --email me@example.com")
    loopback = bool(environ.get("AWS_ENDPOINT_URL"))  # the sandbox: a local http:// server is fine
    if webhook and not (webhook.startswith("https://") or (loopback and webhook.startswith("http://"))):
        raise UsageError("--webhook", webhook, "EventBridge calls only https:// endpoints",
                         "give the webhook's https:// URL")
    name, value = "X-Aws-Train-Remote", "notify"
    if header:
        name, sep, value = header.partition("=")
        if not sep or not name.strip() or not value:
            raise UsageError("--webhook-header", header, "expected NAME=VALUE",
                             "e.g. --webhook-header Authorization=Bearer-xyz")
    return email, webhook, (name.strip(), value)


def _owned_tags() -> list:
    return [{"Key": OWNER_TAG[0], "Value": OWNER_TAG[1]}]


def setup(session, region: str, account: str, *, email=None, webhook=None, header=("X-Aws-Train-Remote", "notify"),
          out=None) -> int:
    """Create what is missing, say what exists; every resource named in the output."""
    out = out if out is not None else sys.stdout
    events = session.client("events")
    rule_arn = _ensure_rule(events, out)
    if email:
        topic = _ensure_topic(session.client("sns"), account, region, rule_arn, email, out)
        events.put_targets(Rule=NAME, Targets=[{"Id": EMAIL_TARGET, "Arn": topic}])
        print(f"target: the rule sends to SNS topic {topic}", file=out)
    if webhook:
        destination = _ensure_destination(events, webhook, header, out)
        role = _ensure_role(session.client("iam"), destination, out)
        events.put_targets(Rule=NAME, Targets=[{"Id": WEBHOOK_TARGET, "Arn": destination, "RoleArn": role}])
        print(f"target: the rule POSTs the event to {webhook}", file=out)
    print(f"jobs launched with --sagemaker-notify now tell this when they end; `aws-train-remote notify remove "
          f"--region {region}` deletes all of it", file=out)
    return 0


def _ensure_rule(events, out) -> str:
    from botocore.exceptions import ClientError

    pattern = json.dumps(event_pattern())
    try:
        rule = events.describe_rule(Name=NAME)
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        arn = events.put_rule(Name=NAME, EventPattern=pattern, State="ENABLED", Description=MARK,
                              Tags=_owned_tags())["RuleArn"]
        print(f"created: EventBridge rule {NAME} ({arn}) on SageMaker Training Job State Change, for ended jobs "
              f"tagged {NOTIFY_TAG}=yes", file=out)
        return arn
    if not _rule_is_ours(events, rule["Arn"]):
        raise AwsError(f"an EventBridge rule named {NAME} exists but was not made by notify setup; "
                       "rename or delete it, then run notify setup again")
    print(f"exists: EventBridge rule {NAME} ({rule['Arn']})", file=out)
    return rule["Arn"]


def _rule_is_ours(events, arn: str) -> bool:
    tags = events.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    return any((t["Key"], t["Value"]) == OWNER_TAG for t in tags)


def _ensure_topic(sns, account: str, region: str, rule_arn: str, email: str, out) -> str:
    arn = _topic_arn(account, region)
    existing = arn in _topic_arns(sns)
    if existing and not _topic_is_ours(sns, arn):
        raise AwsError(f"an SNS topic named {NAME} exists but was not made by notify setup; delete or rename it")
    if not existing:
        arn = sns.create_topic(Name=NAME, Tags=_owned_tags())["TopicArn"]
        print(f"created: SNS topic {arn}", file=out)
    else:
        print(f"exists: SNS topic {arn}", file=out)
    # EventBridge publishes only to a topic whose policy lets it (eb-use-resource-based.html#eb-sns-permissions)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "aws-train-remote-notify", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sns:Publish", "Resource": arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]}
    sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(policy))
    subscribed = [s for s in _subscriptions(sns, arn) if s.get("Protocol") == "email" and s.get("Endpoint") == email]
    if subscribed:
        print(f"exists: email subscription of {email}", file=out)
    else:
        sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email)
        print(f"created: email subscription of {email}: confirm it with the link AWS has just mailed there", file=out)
    return arn


def _topic_arn(account: str, region: str) -> str:
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    return f"arn:{partition}:sns:{region}:{account}:{NAME}"


def _topic_arns(sns) -> list:
    arns, kwargs = [], {}
    while True:
        page = sns.list_topics(**kwargs)
        arns += [t["TopicArn"] for t in page.get("Topics", [])]
        if not page.get("NextToken"):
            return arns
        kwargs["NextToken"] = page["NextToken"]


def _topic_is_ours(sns, arn: str) -> bool:
    return any((t["Key"], t["Value"]) == OWNER_TAG for t in sns.list_tags_for_resource(ResourceArn=arn).get("Tags", []))


def _subscriptions(sns, arn: str) -> list:
    subs, kwargs = [], {"TopicArn": arn}
    while True:
        page = sns.list_subscriptions_by_topic(**kwargs)
        subs += page.get("Subscriptions", [])
        if not page.get("NextToken"):
            return subs
        kwargs["NextToken"] = page["NextToken"]


def _ensure_destination(events, webhook: str, header, out) -> str:
    from botocore.exceptions import ClientError

    auth = {"ApiKeyAuthParameters": {"ApiKeyName": header[0], "ApiKeyValue": header[1]}}
    try:
        connection = events.describe_connection(Name=NAME)
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        connection = events.create_connection(Name=NAME, Description=MARK, AuthorizationType="API_KEY",
                                              AuthParameters=auth)
        print(f"created: EventBridge connection {NAME} ({connection['ConnectionArn']}), sending header {header[0]}",
              file=out)
    else:
        if connection.get("Description") != MARK:
            raise AwsError(f"an EventBridge connection named {NAME} exists but was not made by notify setup")
        events.update_connection(Name=NAME, AuthorizationType="API_KEY", AuthParameters=auth)
        print(f"exists: EventBridge connection {NAME}", file=out)
    try:
        destination = events.describe_api_destination(Name=NAME)
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        arn = events.create_api_destination(Name=NAME, Description=MARK, ConnectionArn=connection["ConnectionArn"],
                                            InvocationEndpoint=webhook, HttpMethod="POST",
                                            InvocationRateLimitPerSecond=1)["ApiDestinationArn"]
        print(f"created: EventBridge API destination {NAME} ({arn}) -> POST {webhook}", file=out)
        return arn
    if destination.get("Description") != MARK:
        raise AwsError(f"an EventBridge API destination named {NAME} exists but was not made by notify setup")
    if destination.get("InvocationEndpoint") != webhook:
        events.update_api_destination(Name=NAME, InvocationEndpoint=webhook, HttpMethod="POST")
        print(f"updated: EventBridge API destination {NAME} -> POST {webhook}", file=out)
    else:
        print(f"exists: EventBridge API destination {NAME} -> POST {webhook}", file=out)
    return destination["ApiDestinationArn"]


def _ensure_role(iam, destination: str, out) -> str:
    """The role EventBridge assumes to call the API destination (eb-api-destinations.html)."""
    from botocore.exceptions import ClientError

    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    try:
        role = iam.get_role(RoleName=ROLE)["Role"]
    except ClientError as err:
        if error_code(err) != "NoSuchEntity":
            raise
        role = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust), Description=MARK,
                               Tags=_owned_tags())["Role"]
        print(f"created: IAM role {ROLE} ({role['Arn']}), which EventBridge assumes to call the webhook", file=out)
    else:
        if not any((t["Key"], t["Value"]) == OWNER_TAG for t in role.get("Tags", [])):
            raise AwsError(f"an IAM role named {ROLE} exists but was not made by notify setup")
        print(f"exists: IAM role {ROLE}", file=out)
    base = destination.rsplit("/", 1)[0]  # the ARN ends in a version id that changes on update
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "events:InvokeApiDestination",
                                                       "Resource": f"{base}/*"}]}
    iam.put_role_policy(RoleName=ROLE, PolicyName="invoke-api-destination", PolicyDocument=json.dumps(policy))
    return role["Arn"]


def status(session, region: str, out=None) -> int:
    """What exists of notify setup's resources in this region."""
    from botocore.exceptions import ClientError

    out = out if out is not None else sys.stdout
    events = session.client("events")
    try:
        rule = events.describe_rule(Name=NAME)
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        print(f"no notifications are set up in {region}; `aws-train-remote notify setup --email ADDRESS` "
              "or `--webhook URL` sets them up", file=out)
        return 0
    ours = "" if _rule_is_ours(events, rule["Arn"]) else " (not made by notify setup)"
    print(f"rule: {NAME} ({rule.get('State')}){ours}: jobs tagged {NOTIFY_TAG}=yes that end {'/'.join(ENDED)}",
          file=out)
    targets = events.list_targets_by_rule(Rule=NAME).get("Targets", [])
    for target in targets:
        if ":sns:" in target["Arn"]:
            subs = _subscriptions(session.client("sns"), target["Arn"])
            who = ", ".join(f"{s['Endpoint']} ({_confirmed(s)})" for s in subs if s.get("Protocol") == "email")
            who = who or "no email subscription"
            print(f"email: SNS topic {target['Arn']}: {who}", file=out)
        elif ":api-destination/" in target["Arn"]:
            url = events.describe_api_destination(Name=NAME).get("InvocationEndpoint")
            print(f"webhook: POST {url} (API destination {target['Arn']})", file=out)
        else:
            print(f"other target: {target['Arn']}", file=out)
    if not targets:
        print("no target: the rule sends nowhere; run notify setup with --email or --webhook", file=out)
    return 0


def _confirmed(subscription: dict) -> str:
    return "pending confirmation" if subscription.get("SubscriptionArn") == "PendingConfirmation" else "confirmed"


def remove(session, region: str, account: str, out=None) -> int:
    """Delete what notify setup created (by its names and mark); name anything left alone."""
    from botocore.exceptions import ClientError

    out = out if out is not None else sys.stdout
    events, sns, iam = session.client("events"), session.client("sns"), session.client("iam")
    removed = 0

    def gone(what):
        nonlocal removed
        removed += 1
        print(f"deleted: {what}", file=out)

    try:
        rule = events.describe_rule(Name=NAME)
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        rule = None
    if rule is not None and _rule_is_ours(events, rule["Arn"]):
        ids = [t["Id"] for t in events.list_targets_by_rule(Rule=NAME).get("Targets", [])]
        if ids:
            events.remove_targets(Rule=NAME, Ids=ids)
        events.delete_rule(Name=NAME)
        gone(f"EventBridge rule {NAME}")
    elif rule is not None:
        print(f"left alone: EventBridge rule {NAME} (not made by notify setup)", file=out)
    topic = _topic_arn(account, region)
    if topic in _topic_arns(sns):
        if _topic_is_ours(sns, topic):
            sns.delete_topic(TopicArn=topic)  # its subscriptions go with it
            gone(f"SNS topic {topic} and its subscriptions")
        else:
            print(f"left alone: SNS topic {topic} (not made by notify setup)", file=out)
    for kind, describe, delete in (("API destination", events.describe_api_destination, events.delete_api_destination),
                                   ("connection", events.describe_connection, events.delete_connection)):
        try:
            found = describe(Name=NAME)
        except ClientError as err:
            if error_code(err) != "ResourceNotFoundException":
                raise
            continue
        if found.get("Description") == MARK:
            delete(Name=NAME)
            gone(f"EventBridge {kind} {NAME}")
        else:
            print(f"left alone: EventBridge {kind} {NAME} (not made by notify setup)", file=out)
    try:
        role = iam.get_role(RoleName=ROLE)["Role"]
    except ClientError as err:
        if error_code(err) != "NoSuchEntity":
            raise
        role = None
    if role is not None and any((t["Key"], t["Value"]) == OWNER_TAG for t in role.get("Tags", [])):
        for policy in iam.list_role_policies(RoleName=ROLE).get("PolicyNames", []):
            iam.delete_role_policy(RoleName=ROLE, PolicyName=policy)
        iam.delete_role(RoleName=ROLE)
        gone(f"IAM role {ROLE}")
    elif role is not None:
        print(f"left alone: IAM role {ROLE} (not made by notify setup)", file=out)
    if not removed:
        print(f"nothing of notify setup's was found in {region}", file=out)
    return 0


# -- the terminal's bell ---------------------------------------------------------------------------

def desktop_notifier(environ=None, which=shutil.which, platform=sys.platform):
    """The command that shows a desktop notification here, or None: notify-send on a Linux desktop,
    osascript on macOS."""
    environ = os.environ if environ is None else environ
    if platform == "darwin" and which("osascript"):
        return [which("osascript"), "-e"]
    found = which("notify-send")
    if found and (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY") or environ.get("DBUS_SESSION_BUS_ADDRESS")):
        return [found, "--app-name=aws-train-remote"]
    return None


def ring(job: str, status: str, out, environ=None, which=shutil.which, platform=sys.platform,
         run=subprocess.run) -> bool:
    """A followed job ended: the terminal's bell, and the desktop's notifier when there is one. Only
    on a terminal: a log file or a pipe gets neither. True when it rang."""
    isatty = getattr(out, "isatty", None)
    if not (isatty and isatty()):
        return False
    out.write("\a")
    out.flush()
    notifier = desktop_notifier(environ, which, platform)
    if notifier:
        title, body = "aws-train-remote", f"{job} ended {status}"
        osascript = os.path.basename(notifier[0]) == "osascript"
        args = notifier + ([f'display notification "{body}" with title "{title}"'] if osascript else [title, body])
        try:
            run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            pass  # a notifier that fails costs the notice, never the launch's exit status
    return True


def cmd_notify(session, args, region: str, environ) -> int:
    if args.action != "setup" and (args.email or args.webhook or args.webhook_header):
        raise UsageError("notify " + args.action, None, "--email, --webhook and --webhook-header belong to setup",
                         f"run: aws-train-remote notify setup ... (or notify {args.action} alone)")
    if args.action == "setup":
        email, webhook, header = check_setup_args(args.email, args.webhook, args.webhook_header, environ)
    if args.action == "status":
        return status(session, region)
    from .sagemaker import account_id

    account = account_id(session)
    if args.action == "remove":
        return remove(session, region, account)
    return setup(session, region, account, email=email, webhook=webhook, header=header)
