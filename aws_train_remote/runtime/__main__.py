"""`python3 -m aws_train_remote.runtime`: run the job found under SAGEMAKER_BASE_DIR (or /opt/ml).
In a real job the same bootstrap starts from the driver channel's atr.pyz."""
import sys

from .bootstrap import main

if __name__ == "__main__":
    sys.exit(main())
