#!/usr/bin/env bash
# Set up everything and run the demo end to end: train locally, resume from the checkpoint,
# show the exact SageMaker request, then run the same script as a training job in the loopback
# sandbox (a local moto server whose jobs really run here): no AWS account, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
ATR_EXTRAS=${ATR_EXTRAS:-sandbox} bash scripts/bootstrap.sh
PY=.venv/bin/python
out=demo/output
rm -rf "$out"
echo "== 1. local run, 3 epochs (main(args) runs here; no AWS import)"
$PY demo/train.py --epochs 3 --model-dir $out/model --output-dir $out/data --checkpoint-dir $out/checkpoints
echo "== 2. run again with --epochs 5: resumes from the newest checkpoint"
$PY demo/train.py --epochs 5 --model-dir $out/model --output-dir $out/data --checkpoint-dir $out/checkpoints
echo "== 3. the SageMaker job the same script would create (dry run: no network, no credentials)"
$PY demo/train.py --sagemaker-run yes --sagemaker-dry-run --sagemaker-region us-east-1 \
    --sagemaker-role DemoSageMakerRole --sagemaker-spot --sagemaker-instance ml.m5.large > $out/dry-run.json
$PY - "$out/dry-run.json" <<'PY'
import json, sys
from botocore.session import get_session
from botocore.validate import ParamValidator
doc = json.load(open(sys.argv[1]))
req = doc["request"]
shape = get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape
report = ParamValidator().validate(req, shape)
assert not report.has_errors(), report.generate_report()
print(f"job {req['TrainingJobName']} on {req['ResourceConfig']['InstanceType']}, spot={req['EnableManagedSpotTraining']}")
for c in req["InputDataConfig"]:
    print(f"  channel {c['ChannelName']:<11} {c['DataSource']['S3DataSource']['S3Uri']}")
print(f"  {len(doc['uploads'])} objects in the upload plan; request passes botocore validation")
print(f"  full request: {sys.argv[1]}")
PY
.venv/bin/python -m aws_train_remote.cli.main sandbox -- bash scripts/demo_remote.sh
echo "demo finished: local model in $out/model/model.json, remote model in $out/remote-model/model.json"
