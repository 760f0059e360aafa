"""Network and security: the IAM role the job runs as, KMS keys, the VPC, network isolation and
inter-container encryption. Pure."""
from __future__ import annotations

import re

from .checks import need

KEYS = ("role", "kms_key", "volume_kms_key", "subnets", "security_groups", "network_isolation",
        "encrypt_inter_container", "session_chaining")

ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@\-/]{1,512}$")
ROLE_NAME = re.compile(r"^[\w+=,.@\-]{1,64}$")
SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")
LOCAL_ROLE = "arn:aws:iam::000000000000:role/local"  # a local run needs no role; the request needs one


def security_fields(v, *, local: bool, tune: bool = False) -> dict:
    """The JobSpec fields of network and security, or UsageError for the first flag that is wrong.
    tune: whether the tuning area has a tuning job (its trials take no SessionChainingConfig)."""
    need(not (v["session_chaining"] and tune), "--sagemaker-session-chaining", "yes",
         "a tuning job's trials take no SessionChainingConfig", "drop it, or --sagemaker-tune")
    role = v.get("role") or (LOCAL_ROLE if local else None)
    need(bool(role), "--sagemaker-role", None, "no IAM role for the job",
         "pass --sagemaker-role NAME_OR_ARN (create one with: aws-train-remote role create), or set role: in "
         "aws-train-remote.yaml, or SageMaker.TrainingJob.RoleArn in ~/.config/sagemaker/config.yaml")
    need(bool(ROLE_ARN.match(role) or ROLE_NAME.match(role)), "--sagemaker-role", role,
         "neither a role name nor a role ARN",
         "use e.g. MySageMakerRole or arn:aws:iam::123456789012:role/MySageMakerRole")
    subnets, groups = tuple(v.get("subnets") or ()), tuple(v.get("security_groups") or ())
    need(bool(subnets) == bool(groups), "--sagemaker-subnets" if groups else "--sagemaker-security-groups",
         None, "a VPC needs both subnets and security groups", "pass both --sagemaker-subnets and "
         "--sagemaker-security-groups")
    for subnet in subnets:
        need(bool(SUBNET.match(subnet)), "--sagemaker-subnets", subnet, "not a subnet id", "use e.g. subnet-0abc1234")
    for group in groups:
        need(bool(SECURITY_GROUP.match(group)), "--sagemaker-security-groups", group,
             "not a security group id", "use e.g. sg-0abc1234")
    return dict(role=role, kms_key=v.get("kms_key"), volume_kms_key=v.get("volume_kms_key"), subnets=subnets,
                security_groups=groups, network_isolation=v["network_isolation"],
                encrypt_inter_container=v["encrypt_inter_container"], session_chaining=v["session_chaining"])
