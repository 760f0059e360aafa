"""The environment a script sees: the SageMaker training toolkit's SM_* variables, with the
same names and serialisation (reference/container_contract.md section 3.2), for the job
described by the three config files. Pure: facts in, a dict of strings out; fit_exec_limits then
makes it fit what Linux's exec allows."""
from __future__ import annotations

import json
import os

from .. import contract

_REMOVED_HPS = ("_tuning_objective_metric", "default_user_module_name")
# sagemaker_* hyperparameters the toolkit (or we) consume; the others are framework params.
_CONSUMED = {"sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
             "sagemaker_region", "sagemaker_container_log_level", "sagemaker_job_name", "sagemaker_s3_output"}
DISTRIBUTION_FLAGS = ("sagemaker_mpi_enabled", "sagemaker_parameter_server_enabled",
                      "sagemaker_distributed_dataparallel_enabled", "sagemaker_pytorch_ddp_enabled",
                      "sagemaker_pytorch_xla_multi_worker_enabled", "sagemaker_multi_worker_mirrored_strategy_enabled",
                      "sagemaker_torch_distributed_enabled")


def decode_all(raw_hps: dict) -> dict:
    return {k: contract.decode_hyperparameter(v) for k, v in raw_hps.items()}


def user_hyperparameters(raw_hps: dict) -> dict:
    return {k: contract.decode_hyperparameter(v) for k, v in raw_hps.items()
            if not k.startswith("sagemaker_") and k not in _REMOVED_HPS}


def framework_params(raw_hps: dict) -> dict:
    return {k: contract.decode_hyperparameter(v) for k, v in raw_hps.items()
            if k.startswith("sagemaker_") and k not in _CONSUMED and not k.startswith("sagemaker_atr_")}


class Cluster:
    """Topology facts from resourceconfig.json, with the toolkit's defaults for missing keys."""

    def __init__(self, resource: dict, raw_hps: dict, launching_torchrun: bool = False):
        self.resource = resource
        self.hosts = list(resource.get("hosts") or [resource.get("current_host", "algo-1")])
        self.current_host = resource.get("current_host", self.hosts[0])
        self.instance_type = resource.get("current_instance_type", "local")
        self.group = resource.get("current_group_name", "homogeneousCluster")
        self.interface = resource.get("network_interface_name", "eth0")
        self.groups = list(resource.get("instance_groups") or [])
        self.topology = resource.get("topology") or []
        hps = decode_all(raw_hps)
        explicit = hps.get("sagemaker_distribution_instance_groups")
        if explicit:
            self.distribution_groups = list(explicit)
        elif launching_torchrun or any(hps.get(flag) for flag in DISTRIBUTION_FLAGS):  # truthy, as the toolkit
            self.distribution_groups = [self.group]
        else:
            self.distribution_groups = []

    @property
    def group_hosts(self) -> list:
        for g in self.groups:
            if g.get("instance_group_name") == self.group:
                return list(g.get("hosts", []))
        return []

    @property
    def distribution_hosts(self) -> list:
        """Hosts of the distribution groups, in instance_groups file order (contract 6.2)."""
        if not self.groups:
            return list(self.hosts)
        wanted = self.distribution_groups or [self.group]
        hosts = []
        for g in self.groups:
            if g.get("instance_group_name") in wanted:
                hosts += list(g.get("hosts", []))
        return hosts

    @property
    def in_distribution_group(self) -> bool:
        return not self.groups or self.group in (self.distribution_groups or [self.group])

    @property
    def master(self) -> str:
        hosts = self.distribution_hosts
        return hosts[0] if hosts else self.hosts[0]

    @property
    def is_hetero(self) -> bool:
        return len(self.groups) > 1


def script_channels(input_config: dict) -> dict:
    """The channels the script sees. In a job of ours (it has our driver channel) the driver, code
    and compile-cache channels are ours, not the script's: a script that loops over its channels
    must not read atr.pyz as data. A job launched by another tool keeps every channel, as the
    toolkit does."""
    if contract.DRIVER_CHANNEL not in input_config:
        return dict(input_config)
    return {name: value for name, value in input_config.items() if name not in contract.RESERVED_CHANNELS}


def toolkit_env(layout, raw_hps: dict, resource: dict, input_config: dict, *, num_cpus: int, num_gpus: int,
                num_neurons: int, job_name: str, user_args: list, entry_point: str, environ: dict,
                launching_torchrun: bool = False) -> dict:
    """SM_* and the few other variables the toolkit exports, as strings."""
    cluster = Cluster(resource, raw_hps, launching_torchrun)
    input_config = script_channels(input_config)
    hps = user_hyperparameters(raw_hps)
    decoded = decode_all(raw_hps)
    channels = sorted(input_config)
    module_name = entry_point[:-3] if entry_point.endswith(".py") else entry_point
    groups_dict = {g.get("instance_group_name"): g for g in cluster.groups}
    facts = {
        "model_dir": layout.model_dir,
        "input_dir": layout.input_dir,
        "input_config_dir": layout.config_dir,
        "output_dir": layout.output_dir,
        "output_data_dir": layout.output_data_dir,
        "output_intermediate_dir": layout.intermediate_dir,
        "channels": channels,
        "input_data_config": input_config,
        "hps": hps,
        "user_args": list(user_args),
        "framework_params": framework_params(raw_hps),
        "user_entry_point": environ.get("SAGEMAKER_PROGRAM") or entry_point,
        "module_name": module_name,
        "module_dir": decoded.get("sagemaker_submit_directory") or layout.code_dir,
        "framework_module": environ.get("SAGEMAKER_TRAINING_MODULE", ""),
        "log_level": decoded.get("sagemaker_container_log_level", 20),
        "hosts": cluster.hosts,
        "current_host": cluster.current_host,
        "current_instance_type": cluster.instance_type,
        "current_instance_group": cluster.group,
        "current_instance_group_hosts": cluster.group_hosts,
        "instance_groups": [g.get("instance_group_name") for g in cluster.groups],
        "instance_groups_dict": groups_dict,
        "distribution_instance_groups": cluster.distribution_groups,
        "is_hetero": cluster.is_hetero,
        "network_interface_name": cluster.interface,
        "resource_config": resource,
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "num_neurons": num_neurons,
    }
    env = {}
    for key, value in facts.items():
        env["SM_" + key.upper()] = contract.sm_serialize(value)
    for name in channels:
        env["SM_CHANNEL_" + name.upper()] = layout.channel_dir(name)
    for key, value in hps.items():
        env["SM_HP_" + key.upper()] = contract.sm_serialize(value)
    if cluster.topology:
        env["SM_TOPOLOGY"] = contract.sm_serialize(cluster.topology)
    training_env = dict(facts)
    training_env.update({
        "hyperparameters": hps,
        "additional_framework_parameters": facts["framework_params"],
        "channel_input_dirs": {name: layout.channel_dir(name) for name in channels},
        "distribution_hosts": cluster.distribution_hosts,
        "is_master": cluster.current_host == cluster.master,
        "master_hostname": cluster.master,
        "job_name": job_name,
        "topology": cluster.topology,
    })
    env["SM_TRAINING_ENV"] = json.dumps(training_env, sort_keys=True)
    env["SAGEMAKER_JOB_NAME"] = str(decoded.get("sagemaker_job_name") or job_name or "")
    env["SAGEMAKER_REGION"] = str(decoded.get("sagemaker_region") or environ.get("AWS_REGION") or "")
    env["CURRENT_HOST"] = cluster.current_host
    env["TRAINING_JOB_NAME"] = job_name or ""
    return env


# -- what exec allows (issue 18.6): Linux refuses to start a program when one argv or environment
# string passes MAX_ARG_STRLEN, or all of them with their pointers pass ARG_MAX. The toolkit's
# SM_* variables repeat the argv and every hyperparameter in one string each, so a job SageMaker
# accepts could not start its script; they give way, the script's argv never does.

class ExecLimit(Exception):
    """The script's own argv is more than Linux starts a program with."""


_KERNEL_CAP = 6 * 1024 * 1024  # fs/exec.c: never more than 3/4 of _STK_LIM (8 MiB), whatever the stack
_MARGIN = 16 * 1024  # what torchrun and the interpreter add on the way to the script
_POINTER = 8
# Keys of SM_TRAINING_ENV that repeat the argv and hyperparameters: left out first, so the rest
# (hosts, current_host, master_hostname, ...) still reaches scripts that read it.
_BULKY = ("user_args", "hyperparameters", "hps", "additional_framework_parameters", "framework_params",
          "input_data_config", "resource_config", "instance_groups_dict")


def arg_max() -> int:
    try:
        limit = os.sysconf("SC_ARG_MAX")
    except (AttributeError, ValueError, OSError):
        limit = -1
    return min(limit if limit > 0 else contract.ARG_STRLEN_LIMIT, _KERNEL_CAP)


def _entry(name: str, value: str) -> int:
    return contract.exec_size(f"{name}={value}")


def _where(name: str, config_dir: str) -> str:
    if name == "SM_USER_ARGS":
        return "the script's own argv (sys.argv)"
    if name in ("SM_INPUT_DATA_CONFIG", "SM_CHANNELS") or name.startswith("SM_CHANNEL_"):
        return os.path.join(config_dir, "inputdataconfig.json")
    if name in ("SM_RESOURCE_CONFIG", "SM_HOSTS", "SM_TOPOLOGY", "SM_INSTANCE_GROUPS_DICT"):
        return os.path.join(config_dir, "resourceconfig.json")
    return os.path.join(config_dir, "hyperparameters.json")


def _give_way(env: dict, name: str, limit: int, why: str, config_dir: str, log) -> None:
    """Shorten SM_TRAINING_ENV to fit `limit` bytes, or leave `name` out; one line either way."""
    where = _where(name, config_dir)
    if name == "SM_TRAINING_ENV":
        try:
            facts = json.loads(env[name])
        except ValueError:
            facts = None
        dropped = []
        for key in _BULKY:
            if not isinstance(facts, dict) or _entry(name, json.dumps(facts, sort_keys=True)) <= limit:
                break
            if key in facts:
                facts.pop(key)
                dropped.append(key)
        if isinstance(facts, dict) and _entry(name, json.dumps(facts, sort_keys=True)) <= limit:
            env[name] = json.dumps(facts, sort_keys=True)
            log(f"{name} is set without {', '.join(dropped)} ({why}); they are in {where} "
                "and the script's argv")
            return
    size = _entry(name, env.pop(name))
    log(f"{name} is not set ({size} bytes; {why}); the same is in {where}")


def fit_exec_limits(env: dict, command: list, config_dir: str, log) -> dict:
    """The environment the script starts with, within what exec allows: an SM_* variable over
    Linux's per-string limit is shortened or left out (the same data stays in the config files);
    past ARG_MAX in total, the largest SM_* go next. Raises ExecLimit when the command alone is more
    than Linux starts, before the script, in one line naming the limit."""
    env = dict(env)
    too_long = contract.argv_too_long(command)
    if too_long is not None:
        i, size = too_long
        which = f"the value of {command[i - 1]}" if i and command[i - 1].startswith("-") else f"argument {i}"
        raise ExecLimit(f"{which} is {size} bytes; Linux starts no program with an argument over "
                        f"{contract.ARG_STRLEN_LIMIT - 1} bytes (MAX_ARG_STRLEN)")
    one = f"Linux allows {contract.ARG_STRLEN_LIMIT} bytes per variable, MAX_ARG_STRLEN"
    for name in sorted(env):
        if name.startswith("SM_") and _entry(name, env[name]) > contract.ARG_STRLEN_LIMIT:
            _give_way(env, name, contract.ARG_STRLEN_LIMIT, one, config_dir, log)
    limit = arg_max() - _MARGIN
    argv_size = sum(contract.exec_size(a) + _POINTER for a in command)
    if argv_size > limit:
        raise ExecLimit(f"the script's command takes {argv_size} bytes; Linux starts no program past "
                        f"{limit + _MARGIN} for the command and its environment (ARG_MAX, "
                        "os.sysconf('SC_ARG_MAX'))")

    def total():
        return argv_size + sum(_entry(k, v) + _POINTER for k, v in env.items())

    while total() > limit:
        bulky = [k for k in env if k.startswith("SM_")]
        if not bulky:
            raise ExecLimit(f"the script's command and environment take {total()} bytes; Linux starts no "
                            f"program past {limit + _MARGIN} (ARG_MAX, os.sysconf('SC_ARG_MAX'))")
        name = max(bulky, key=lambda k: _entry(k, env[k]))
        room = _entry(name, env[name]) - (total() - limit)
        _give_way(env, name, max(room, 0), f"Linux allows {limit + _MARGIN} bytes for the command and its "
                  "environment, ARG_MAX", config_dir, log)
    return env
