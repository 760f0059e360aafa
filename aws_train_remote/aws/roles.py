"""`aws-train-remote role create`: a SageMaker execution role scoped to one bucket. Never called
implicitly: a launch only looks roles up."""
from __future__ import annotations

import json

from .session import error_code

DEFAULT_ROLE = "aws-train-remote-training"

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}


def execution_policy(bucket: str) -> dict:
    """What a training job needs: its bucket (code, inputs, checkpoints, model), its logs and
    metrics, pulling images from ECR, and the channels of the SSM agent that SageMaker starts in a
    job with remote debugging (`aws-train-remote shell`; train-remote-debugging.html). Nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Bucket", "Effect": "Allow",
             "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": f"arn:aws:s3:::{bucket}"},
            {"Sid": "Objects", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
             "Resource": f"arn:aws:s3:::{bucket}/*"},
            {"Sid": "Logs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                        "logs:DescribeLogStreams"],
             "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/*"},
            {"Sid": "Metrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"},
            {"Sid": "Images", "Effect": "Allow",
             "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability"],
             "Resource": "*"},
            {"Sid": "RemoteDebugging", "Effect": "Allow",
             "Action": ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                        "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"],
             "Resource": "*"},
        ],
    }


def create_execution_role(iam, name: str, bucket: str):
    """(arn, created): the role `name` with the execution policy for `bucket`; an existing role of
    that name is returned unchanged (created=False)."""
    from botocore.exceptions import ClientError

    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"], False
    except ClientError as err:
        if error_code(err) != "NoSuchEntity":
            raise
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST),
                          Description=f"SageMaker training jobs of aws-train-remote (bucket {bucket})",
                          Tags=[{"Key": "aws-train-remote", "Value": "execution-role"}])["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="aws-train-remote-training",
                        PolicyDocument=json.dumps(execution_policy(bucket)))
    return arn, True
