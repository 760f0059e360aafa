"""Side effects on AWS: the only package that imports boto3, always inside functions."""
