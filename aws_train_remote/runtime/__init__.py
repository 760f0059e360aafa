"""The in-container runtime. Standard library only: it travels to the job as the driver
channel and runs on whatever python3 the image has, without this package or boto3 there.

Run by hand against a folder laid out like /opt/ml:
    SAGEMAKER_BASE_DIR=/tmp/job/opt/ml python3 -m aws_train_remote.runtime
"""
