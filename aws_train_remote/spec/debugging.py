"""Debugging: what helps see into a job or test its recovery -- a shell into the running container
(remote debugging), a failed script's container kept up to look inside, and the simulated spot
interruptions of local mode. Pure."""
from __future__ import annotations

from ..errors import UsageError

KEYS = ("simulate_interruption", "debug", "keep_on_failure")

# SageMaker's own words (train-remote-debugging.html, Considerations): an SSM session cannot start
# in a container with network isolation, which prevents outbound network calls
NO_ISOLATION = "SageMaker does not support remote debugging with network isolation"


def debugging_fields(v, *, run: str, network_isolation: bool = False, tune: bool = False) -> dict:
    """The JobSpec fields of debugging, or UsageError for the first flag that is wrong.
    network_isolation, tune: the other areas' values these flags are judged against."""
    if v.get("simulate_interruption") is not None and run != "local":
        raise UsageError("--sagemaker-simulate-interruption", ",".join(map(str, v["simulate_interruption"])),
                         "only applies to --sagemaker-run local", "add --sagemaker-run local")
    debug, keep = bool(v.get("debug")), int(v.get("keep_on_failure") or 0)
    if debug and network_isolation:
        raise UsageError("--sagemaker-debug", "yes", NO_ISOLATION,
                         "drop --sagemaker-network-isolation, or --sagemaker-debug")
    if debug and tune:  # HyperParameterTrainingJobDefinition has no RemoteDebugConfig
        raise UsageError("--sagemaker-debug", "yes", "a tuning job's trials take no RemoteDebugConfig",
                         "drop it; turn it on for one running trial with: aws-train-remote shell TRIAL --enable")
    if keep and network_isolation and run == "yes":  # the kept container could never be reached
        raise UsageError("--sagemaker-keep-on-failure", keep, NO_ISOLATION + ", so nothing could look inside",
                         "drop --sagemaker-network-isolation, or --sagemaker-keep-on-failure")
    return dict(simulate_interruption=tuple(v.get("simulate_interruption") or ()), debug=debug,
                keep_on_failure=keep)
