"""Data: the script's inputs (a local path, an s3:// URI or a file system), how each is read
and by which instance groups, the earlier model of --sagemaker-model-from, the script's local
output folders, and SageMaker's channel limit. Pure, but for looking at the local paths named."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .. import contract
from ..errors import UsageError
from . import naming, values
from .checks import location_or_s3, need

KEYS = ("model_from", "model_dir", "output_dir", "checkpoint_dir", "model_init", "tensorboard_dir")

MODEL_CHANNEL = "model"
JOB_MODEL = "job:"  # a model_from location still to be looked up: the model of this job


@dataclass(frozen=True)
class InputSpec:
    name: str
    location: str  # absolute local path or s3:// URI
    mode: str  # File, FastFile or Pipe
    flag: str
    single_file: bool = False  # a local file, not a folder: the channel holds just it
    distribution: str = "replicated"  # or "sharded": each instance gets about 1/N of the files
    suffix: str = ""  # a path inside the channel that args.<name> points at (aws-sagemaker-remote)
    model_init: bool = False  # the 'model' channel of --sagemaker-model-from: unpacked for args.model_init
    local: str = None  # efs:// or fsx:// inputs: the local folder that stands for it (--<input>-local)
    instance_groups: tuple = ()  # a heterogeneous cluster: only these groups get the input

    @property
    def is_s3(self) -> bool:
        return values.is_s3_uri(self.location)

    @property
    def is_fs(self) -> bool:
        return values.is_fs_uri(self.location)

    @property
    def is_remote(self) -> bool:
        """Read where it is (S3 or a file system), never uploaded."""
        return self.is_s3 or self.is_fs


def data_fields(v, definition, namespace, *, cwd: str, run: str, instance_groups: tuple, subnets: tuple,
                source_dir: str, instance_type: str, neuron_cache: str) -> dict:
    """The JobSpec fields of the data, or UsageError for the first input that is wrong."""
    group_names = [name for name, _, _ in instance_groups]
    inputs = [script_input(definition, namespace, name, cwd=cwd, run=run, group_names=group_names, subnets=subnets)
              for name, _default in definition.inputs]
    if v.get("model_from"):
        inputs.append(model_input(v["model_from"], inputs, cwd))
    for item in inputs:
        real = os.path.realpath(item.location) if not item.is_remote else None
        if real and not item.single_file:
            need(not (source_dir == real or source_dir.startswith(real.rstrip(os.sep) + os.sep)),
                 item.flag, item.location, "is the source folder or holds it (inputs are kept out of the code "
                 "bundle, so the code would not ship)", "put the data in a sub-folder of its own, or give an "
                 "s3:// URI")
    channel_count = len(inputs) + 2 + (1 if contract.is_trainium(instance_type) and neuron_cache != "none" else 0)
    room = contract.CHANNEL_LIMIT - channel_count + len(inputs)
    need(channel_count <= contract.CHANNEL_LIMIT, "inputs", len(inputs), "too many input channels",
         f"SageMaker allows {contract.CHANNEL_LIMIT} channels, {room} of them for inputs")
    return dict(inputs=tuple(inputs),
                model_dir=os.path.abspath(os.path.join(cwd, str(namespace.model_dir))),
                local_output_dir=os.path.abspath(os.path.join(cwd, str(namespace.output_dir))),
                local_checkpoint_dir=os.path.abspath(os.path.join(cwd, str(namespace.checkpoint_dir))),
                local_tensorboard_dir=os.path.abspath(os.path.join(cwd, str(namespace.tensorboard_dir))))


def script_input(definition, namespace, name: str, *, cwd, run, group_names, subnets) -> InputSpec:
    """One inputs= key from its --<name> flag and the flags beside it (-mode, -suffix, ...)."""
    flag = definition.input_flag(name)
    raw = getattr(namespace, name)
    need(raw not in (None, ""), flag, None, "no location for this input", f"pass {flag} PATH_OR_S3_URI")
    if values.is_fs_uri(raw):
        return _file_system_input(namespace, name, flag, raw, cwd=cwd, run=run, subnets=subnets)
    location = location_or_s3(flag, raw, cwd)
    suffix = str(getattr(namespace, f"{name}_suffix", "") or "").strip("/")
    need(not suffix or ".." not in suffix.split("/"), f"{flag}-suffix", suffix, "must stay inside the input",
         "give a relative path without ..")
    repeat = getattr(namespace, f"{name}_repeat", None)
    need(repeat in (None, 0, 1), f"{flag}-repeat", repeat, "repeating an input is not supported",
         "loop over the data in the script (e.g. more epochs)")
    need(not getattr(namespace, f"{name}_shuffle", False), f"{flag}-shuffle", "yes",
         "shuffling an input is not supported", "shuffle in the script's data loader")
    only = tuple(values.parse_list(getattr(namespace, f"{name}_instance_groups", None) or ()))
    need(not only or bool(group_names), f"{flag}-instance-groups", ",".join(only), "only applies to a "
         "heterogeneous cluster", "add --sagemaker-instance-group NAME=TYPE:COUNT flags")
    unknown = [g for g in only if g not in group_names]
    need(not unknown, f"{flag}-instance-groups", ",".join(unknown), "is not one of the instance groups",
         "use the names given to --sagemaker-instance-group")
    return InputSpec(name, location, getattr(namespace, f"{name}_mode"), flag,
                     single_file=not values.is_s3_uri(location) and not os.path.isdir(location),
                     distribution=getattr(namespace, f"{name}_distribution", "replicated"),
                     suffix=suffix, instance_groups=only)


def _file_system_input(namespace, name, flag, raw, *, cwd, run, subnets) -> InputSpec:
    """An efs:// or fsx:// input: mounted through the job's VPC, in File mode."""
    try:
        values.parse_fs_uri(raw)
    except ValueError as err:
        raise UsageError(flag, raw, str(err), "e.g. efs://fs-0123abcd/datasets/train") from None
    need(bool(subnets), flag, raw, "a file system input is mounted through the job's VPC",
         "pass --sagemaker-subnets and --sagemaker-security-groups of the file system's VPC")
    mode = getattr(namespace, f"{name}_mode")
    need(mode == "File", f"{flag}-mode", mode, "a file system input is mounted, in File mode", f"drop {flag}-mode")
    local_copy = getattr(namespace, f"{name}_local", None)
    if run == "local":
        need(bool(local_copy), flag, raw, "local mode cannot mount a file system",
             f"pass {flag}-local FOLDER with a local copy of it")
    return InputSpec(name, raw, "File", flag,
                     local=location_or_s3(f"{flag}-local", local_copy, cwd) if local_copy else None)


def model_input(raw: str, inputs, cwd: str) -> InputSpec:
    """--sagemaker-model-from as the 'model' channel: an s3:// URI, a local model.tar.gz or folder
    (uploaded like any input), or a job name (JOB_MODEL + name, looked up at launch)."""
    flag = "--sagemaker-model-from"
    need(all(i.name != MODEL_CHANNEL for i in inputs), flag, raw, "the script already has an input named "
         f"{MODEL_CHANNEL!r}, the channel the earlier model travels in", "rename that input")
    if values.is_s3_uri(raw):
        location = location_or_s3(flag, raw, cwd)
        single = not location.endswith("/")
    elif os.path.exists(os.path.join(cwd, os.path.expanduser(raw))):
        location = os.path.abspath(os.path.join(cwd, os.path.expanduser(raw)))
        single = os.path.isfile(location)
    elif naming.is_valid_job_name(raw) and "." not in raw:
        location, single = JOB_MODEL + raw, True
    else:
        raise UsageError(flag, raw, "neither a job name, an s3:// URI, nor a local model.tar.gz or folder",
                         "e.g. --sagemaker-model-from demo-20261123-101500-a1b2c3")
    return InputSpec(MODEL_CHANNEL, location, "File", "--model-init", single_file=single, model_init=True)
