"""How the script is started on this host: a plain process, or torchrun as the SageMaker
PyTorch toolkit does it (reference/container_contract.md sections 3.3 and 6), with the
user's argv remapped to container paths. Pure: facts in, command and variables out."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import contract

MASTER_PORT = "7777"
# EFA-capable types get FI_PROVIDER=efa; the RDMA ones also the device-RDMA switches. p5en, p6-b200,
# p6-b300 and g7e from 8xlarge: EFA interfaces in AWS's own table of SageMaker instance types
# (aws/sagemaker-hyperpod-cli, training/constants.py, INSTANCE_RESOURCES "efa": 16, 8, 16; 1, 1, 2, 4).
EFA_TYPES = {"ml.g4dn.8xlarge", "ml.g4dn.12xlarge", "ml.g5.48xlarge", "ml.p3dn.24xlarge", "ml.p4d.24xlarge",
             "ml.p4de.24xlarge", "ml.p5.48xlarge", "ml.p5e.48xlarge", "ml.trn1.32xlarge", "ml.trn1n.32xlarge",
             "ml.trn2.48xlarge", "ml.p6e-gb200.36xlarge", "ml.p5en.48xlarge", "ml.p6-b200.48xlarge",
             "ml.p6-b300.48xlarge", "ml.g7e.8xlarge", "ml.g7e.12xlarge", "ml.g7e.24xlarge", "ml.g7e.48xlarge"}
RDMA_TYPES = {"ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge", "ml.p5e.48xlarge", "ml.trn1.32xlarge",
              "ml.trn1n.32xlarge", "ml.trn2.48xlarge", "ml.p6e-gb200.36xlarge"}


@dataclass(frozen=True)
class LaunchPlan:
    command: list
    env: dict = field(default_factory=dict)
    torchrun: bool = False


def remap_argv(argv: list, paths: dict, layout) -> list:
    """The user's argv, with the path flags re-added in front pointing at container paths.

    In front, so `--`, positionals and argparse.REMAINDER in the user's argv are untouched."""
    front = []
    for name, spec in sorted((paths.get("inputs") or {}).items()):
        if spec.get("unpack"):  # --sagemaker-model-from: the earlier model, unpacked before the script
            front += [spec["flag"], model_init_dir(layout, name, spec)]
            continue
        if spec.get("mode") == "Pipe":
            target = layout.pipe_path(name, 0)
        elif spec.get("file"):
            target = os.path.join(layout.channel_dir(name), spec["file"])
        else:
            target = layout.channel_dir(name)
        front += [spec["flag"], target, spec["flag"] + "-mode", spec.get("mode") or "File"]
        if spec.get("distribution"):  # so args.<input>_distribution is the job's, not the default
            front += [spec["flag"] + "-distribution", spec["distribution"]]
    if paths.get("model"):
        front += [paths["model"], layout.model_dir]
    if paths.get("output"):
        front += [paths["output"], layout.output_data_dir]
    if paths.get("checkpoint"):
        checkpoint = paths.get("checkpoint_path") or layout.checkpoint_dir
        front += [paths["checkpoint"], contract.rebase(checkpoint, layout.root)]
    if paths.get("tensorboard"):  # what SageMaker uploads with TensorBoardOutputConfig
        tensorboard = paths.get("tensorboard_path") or contract.DEFAULT_TENSORBOARD_PATH
        front += [paths["tensorboard"], contract.rebase(tensorboard, layout.root)]
    for flag, rel in sorted((paths.get("dependencies") or {}).items()):
        front += [flag, os.path.join(layout.code_dir, rel)]
    if paths.get("run"):
        front += [paths["run"], "no"]
    return front + list(argv)


def model_init_dir(layout, name: str, spec: dict) -> str:
    """Where the model channel's content is for the script: its archive unpacked beside the
    channel, or the channel itself when it holds a folder."""
    if (spec.get("file") or "").endswith((".tar.gz", ".tgz", ".tar")):
        return layout.channel_dir(name) + "-unpacked"
    return os.path.join(layout.channel_dir(name), spec["file"]) if spec.get("file") else layout.channel_dir(name)


def apply_tuned(argv: list, tuned: dict, raw_hps: dict) -> list:
    """A tuning trial: each tuned value (SageMaker writes it as plain text) replaces the script's
    flag in the argv, so the script parses `--lr 0.05` exactly as if it had been typed."""
    out = list(argv)
    for name, flag in sorted(tuned.items()):
        if name not in raw_hps:
            continue
        value = raw_hps[name]
        if isinstance(value, str) and value.startswith('"'):  # a JSON string, as some writers quote it
            value = contract.decode_hyperparameter(value)
        kept, i = [], 0
        while i < len(out):
            token = out[i]
            if token == "--":
                kept += out[i:]
                break
            if token == flag:
                i += 2
                continue
            if token.startswith(flag + "="):
                i += 1
                continue
            kept.append(token)
            i += 1
        out = [flag, str(value)] + kept
    return out


def toolkit_args(user_hps: dict) -> list:
    """The toolkit's argv for a job without our exact argv (a plain SageMaker job): user
    hyperparameters sorted, `--key value` (`-k value` for one character), values through str()
    after decoding, as contract section 4 observed."""
    args = []
    for key in sorted(user_hps):
        value = user_hps[key]
        if isinstance(value, dict):
            text = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        elif value is None:
            text = ""
        else:
            text = str(value)
        args += [("-" if len(key) == 1 else "--") + key, text]
    return args


TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"
_NOT_HERE = "which aws-train-remote's runtime does not run (SageMaker's own toolkit does, in the framework image)"
# The launchers SageMaker's PyTorch toolkit chooses from, in the order it checks them
# (sagemaker_pytorch_container/training.py), then TensorFlow's. torch_distributed is torchrun, run
# as the toolkit runs it; the others need mpirun with ssh between instances, SageMaker's
# data-parallel library or GPUs, so a job asking for one fails before its script with this line
# instead of running as one plain process per host, which the script would not expect.
TOOLKIT_LAUNCHERS = {
    "sagemaker_mpi_enabled": f"asks for the MPI launcher (mpirun over ssh between the instances), {_NOT_HERE}; "
                             "distribution torch_distributed (torchrun) runs a DDP script here",
    "sagemaker_pytorch_ddp_enabled": "asks for the pytorchddp launcher (mpirun with smddprun, GPU instances only), "
                                     f"{_NOT_HERE}; distribution torch_distributed (torchrun) runs the same DDP script",
    TORCH_DISTRIBUTED: None,
    "sagemaker_distributed_dataparallel_enabled": "asks for SageMaker's data-parallel library (smdistributed "
                                                  f"dataparallel through mpirun, GPU instances only), {_NOT_HERE}",
    "sagemaker_pytorch_xla_multi_worker_enabled": "asks for the PT-XLA launcher, which needs GPUs and SageMaker's "
                                                  f"torch_xla build (the toolkit refuses it without GPUs), {_NOT_HERE}",
    "sagemaker_parameter_server_enabled": f"asks for TensorFlow's parameter-server launcher, {_NOT_HERE}",
    "sagemaker_multi_worker_mirrored_strategy_enabled": "asks for TensorFlow's MultiWorkerMirroredStrategy launcher, "
                                                        f"{_NOT_HERE}",
}


def toolkit_launcher(hps: dict):
    """The launcher hyperparameter that decides, as the toolkit reads them (decoded, truthy, the
    first in its order wins), or None: a plain process."""
    return next((flag for flag in TOOLKIT_LAUNCHERS if hps.get(flag)), None)


def nproc_per_node(hps: dict, num_gpus: int, num_neurons: int) -> int:
    override = hps.get("sagemaker_mpi_num_of_processes_per_host")
    if override not in (None, ""):
        return int(override)
    return num_gpus if num_gpus > 0 else (num_neurons if num_neurons > 0 else 1)


def network_env(cluster, environ=None) -> dict:
    """What the PyTorch layer always exports (contract 3.3). SageMaker jobs keep the toolkit's
    port 7777; local jobs get a free port each."""
    port = (environ or {}).get(contract.MASTER_PORT_OVERRIDE_ENV) or MASTER_PORT
    return {"MASTER_ADDR": cluster.master, "MASTER_PORT": port, "NCCL_SOCKET_IFNAME": cluster.interface,
            "NCCL_IB_DISABLE": "1", "NCCL_DEBUG": "WARN"}


def selected_instance(settings: dict, resource: dict):
    """For a job launched with an on-demand instance list (its `instance` setting is the list, as
    ml.g5.xlarge:2,ml.g6.xlarge:4): (settings that say the type and count SageMaker selected, a
    log line), learnt from resourceconfig.json, which names the type this host runs as
    (current_instance_type) and every host; None for a job of one type. The image was one for the
    list; the process count (GPUs, NeuronCores), torchrun and the EFA settings follow the type
    itself, since they are read from the host and its resourceconfig."""
    listed = str(settings.get("instance") or "")
    kind = resource.get("current_instance_type")
    if "," not in listed or not kind or kind == "local":
        return None
    hosts = resource.get("hosts") or [resource.get("current_host")]
    chosen = {"instance": kind, "instance_count": str(len(hosts))}
    return chosen, f"instance type: {len(hosts)} x {kind}, SageMaker's choice from {listed.replace(',', ', ')}"


def wants_torchrun(distribution: str, cluster, nproc: int) -> bool:
    """torchrun when asked for. With nothing chosen ("auto"), as SageMaker's toolkit: one plain
    process per host, also on a host with several GPUs -- except on Trainium, where a plain
    process would use one NeuronCore of 2-64 and Neuron training scripts are written for
    torchrun (XLA/PJRT), so "auto" there means one worker per NeuronCore across hosts."""
    if distribution == "none" or not cluster.in_distribution_group:
        return False
    if distribution == "torchrun":
        return True
    return contract.is_trainium(cluster.instance_type) and (len(cluster.distribution_hosts) > 1 or nproc > 1)


def torchrun_command(python: str, which=None) -> list:
    """torchrun of the interpreter that runs the job (not whichever is first on PATH): the one next
    to it, else the one on PATH, else `python -m torch.distributed.run`."""
    import shutil

    which = which or shutil.which
    beside = os.path.join(os.path.dirname(python), "torchrun")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return [beside]
    on_path = which("torchrun")
    return [on_path] if on_path else [python, "-m", "torch.distributed.run"]


def plan_launch(*, python: str, script: str, argv: list, hps: dict, cluster, num_gpus: int, num_neurons: int,
                distribution: str, environ: dict) -> LaunchPlan:
    nproc = nproc_per_node(hps, num_gpus, num_neurons)
    env = network_env(cluster, environ)
    if not wants_torchrun(distribution, cluster, nproc):
        return LaunchPlan([python, script, *argv], env, torchrun=False)
    hosts = cluster.distribution_hosts
    command = [*torchrun_command(python), "--nnodes", str(len(hosts)), "--nproc_per_node", str(nproc)]
    if len(hosts) > 1:
        # local mode and the sandbox run every host on one machine, where algo-N do not resolve
        master = environ.get(contract.MASTER_ADDR_OVERRIDE_ENV) or cluster.master
        env["MASTER_ADDR"] = master
        command += ["--master_addr", master, "--master_port", env["MASTER_PORT"],
                    "--node_rank", str(hosts.index(cluster.current_host))]
    command += [script, *argv]
    if str(environ.get("RUN_NEURON_PARALLEL_COMPILE", "")) == "1":
        command = ["neuron_parallel_compile", *command]
    env["NCCL_PROTO"] = "simple"
    if cluster.instance_type in EFA_TYPES:
        env["FI_PROVIDER"] = "efa"
    if cluster.instance_type in RDMA_TYPES:
        env["FI_EFA_USE_DEVICE_RDMA"] = "1"
        env["RDMAV_FORK_SAFE"] = "1"
    return LaunchPlan(command, env, torchrun=True)
