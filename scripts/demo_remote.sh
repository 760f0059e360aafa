#!/usr/bin/env bash
# The remote half of the demo; scripts/demo.sh runs it inside `aws-train-remote sandbox`, so
# AWS_ENDPOINT_URL points at a loopback AWS whose training jobs really run on this machine.
set -euo pipefail
PY=.venv/bin/python
ROLE=arn:aws:iam::123456789012:role/DemoSageMakerRole
echo "== 4. --sagemaker-run yes: package, upload, create the job, tail its logs (spot, 3 epochs)"
$PY demo/train.py --sagemaker-run yes --sagemaker-role $ROLE --sagemaker-spot \
    --sagemaker-base-job-name demo --epochs 3
echo "== 5. relaunch for 6 epochs: nothing is uploaded again; the job resumes from its spot checkpoint"
$PY demo/train.py --sagemaker-run yes --sagemaker-role $ROLE --sagemaker-spot \
    --sagemaker-base-job-name demo --epochs 6 --sagemaker-download --model-dir demo/output/remote-model
echo "== 6. job management from the terminal"
$PY -m aws_train_remote.cli.main list
