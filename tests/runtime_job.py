"""Helpers for runtime tests: a folder laid out like /opt/ml, and fake device tools on PATH."""
import io
import json
import os
import stat
import sys
import tarfile

from aws_train_remote import contract

FAKE_TOOL = r'''#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
record = os.environ.get("FAKE_RECORD")
if name == "nvidia-smi":
    for i in range(int(os.environ.get("FAKE_GPUS", "0"))):
        print(f"GPU {{i}}: NVIDIA A10G (UUID: GPU-{{i}})")
    sys.exit(0)
if name == "neuron-ls":
    n = int(os.environ.get("FAKE_NEURON_DEVICES", "0"))
    print(json.dumps([{{"neuron_device": i, "nc_count": 2}} for i in range(n)]))
    sys.exit(0)
keep = ("MASTER_ADDR", "MASTER_PORT", "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE", "NCCL_DEBUG", "NCCL_PROTO",
        "FI_PROVIDER", "FI_EFA_USE_DEVICE_RDMA", "RDMAV_FORK_SAFE", "NEURON_COMPILE_CACHE_URL", "SM_NUM_NEURONS",
        "SM_NUM_GPUS", "SM_DISTRIBUTION_INSTANCE_GROUPS")
with open(record, "a") as fh:
    fh.write(json.dumps({{"argv": [name] + [os.path.basename(a) if a.endswith("/torchrun") else a for a in sys.argv[1:]], "cwd": os.getcwd(),
                         "env": {{k: os.environ[k] for k in keep if k in os.environ}}}}) + "\n")
'''


def fake_tools(folder, names=("nvidia-smi", "neuron-ls", "torchrun", "neuron_parallel_compile")):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        path = os.path.join(folder, name)
        with open(path, "w") as fh:
            fh.write(FAKE_TOOL.format(python=sys.executable))
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return folder


def tar_bytes(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class JobRoot:
    """root/ = what SageMaker puts under /opt/ml for one host."""

    def __init__(self, root):
        self.root = str(root)
        self.layout = contract.Layout(self.root)
        os.makedirs(self.layout.config_dir, exist_ok=True)

    def code(self, files: dict):
        folder = self.layout.channel_dir(contract.CODE_CHANNEL)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "bundle.tar.gz"), "wb") as fh:
            fh.write(tar_bytes(files))

    def channel(self, name, files: dict):
        folder = self.layout.channel_dir(name)
        for rel, data in files.items():
            path = os.path.join(folder, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(data)

    def configure(self, *, program="train.py", argv=(), inputs=None, hps=None, hosts=("algo-1",), current="algo-1",
                  instance_type="ml.m5.large", groups=None, distribution="auto", channels=None, extra_paths=None):
        inputs = inputs or {}
        paths = {"inputs": {n: {"flag": "--" + n.replace("_", "-"), "mode": m, "file": None} for n, m in inputs.items()},
                 "model": "--model-dir", "output": "--output-dir", "checkpoint": "--checkpoint-dir",
                 "checkpoint_path": "/opt/ml/checkpoints", "run": "--sagemaker-run", "dependencies": {}}
        paths.update(extra_paths or {})
        raw = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in (hps or {}).items()}
        raw.update({contract.HP_PROGRAM: json.dumps(program), contract.HP_PATHS: json.dumps(paths),
                    contract.HP_DISTRIBUTION: json.dumps(distribution), contract.HP_JOB_NAME: json.dumps("job-1")})
        raw.update(contract.encode_argv(list(argv)))
        resource = {"current_host": current, "current_instance_type": instance_type,
                    "current_group_name": "homogeneousCluster", "hosts": sorted(hosts),
                    "instance_groups": groups or [{"instance_group_name": "homogeneousCluster",
                                                   "instance_type": instance_type, "hosts": list(hosts)}],
                    "network_interface_name": "eth0"}
        if groups:
            resource["current_group_name"] = next(g["instance_group_name"] for g in groups if current in g["hosts"])
            resource["current_instance_type"] = next(g["instance_type"] for g in groups if current in g["hosts"])
        names = list(channels or []) + [contract.DRIVER_CHANNEL, contract.CODE_CHANNEL] + list(inputs)
        data_config = {n: {"TrainingInputMode": "Pipe" if inputs.get(n) == "Pipe" else "File",
                           "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"} for n in names}
        for name, body in (("hyperparameters.json", raw), ("resourceconfig.json", resource),
                           ("inputdataconfig.json", data_config)):
            with open(self.layout.config_file(name), "w") as fh:
                json.dump(body, fh)
        return raw
