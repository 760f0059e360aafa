"""The aws-train-remote command."""
