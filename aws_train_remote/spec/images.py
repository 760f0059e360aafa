"""Default training images, kept in code: the PyTorch DLCs by version and device, and for
Trainium the Neuron (neuronx) PyTorch training image, which the SageMaker SDK's table lacks (it only
knows pytorch-training-neuron 1.11). Tags and registry accounts are those of the AWS Deep Learning
Containers list (aws/deep-learning-containers docs/src/data and docs/reference/region_availability.md,
and aws-neuron/deep-learning-containers' README, as of August 2026); images move every release, so
--sagemaker-image always wins. See reference/neuron.md."""
from __future__ import annotations

from ..contract import is_trainium

# AWS's DLC registry account differs in the opt-in regions (region_availability.md).
_DLC_ACCOUNTS = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-6": "633930458069",
    "ap-southeast-7": "590183813437",
    "ca-west-1": "204538143572",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
}
DEFAULT_DLC_ACCOUNT = "763104351884"

# framework version -> (repository, cpu tag, gpu tag). From 2.11 the SageMaker PyTorch images are
# built on Amazon Linux 2023 and published in the "pytorch" repository; earlier ones in
# "pytorch-training" on Ubuntu.
PYTORCH_TAGS = {
    "2.3.0": ("pytorch-training", "2.3.0-cpu-py311-ubuntu20.04-sagemaker",
              "2.3.0-gpu-py311-cu121-ubuntu20.04-sagemaker"),
    "2.4.0": ("pytorch-training", "2.4.0-cpu-py311-ubuntu22.04-sagemaker",
              "2.4.0-gpu-py311-cu124-ubuntu22.04-sagemaker"),
    "2.5.1": ("pytorch-training", "2.5.1-cpu-py311-ubuntu22.04-sagemaker",
              "2.5.1-gpu-py311-cu124-ubuntu22.04-sagemaker"),
    "2.6.0": ("pytorch-training", "2.6.0-cpu-py312-ubuntu22.04-sagemaker",
              "2.6.0-gpu-py312-cu126-ubuntu22.04-sagemaker"),
    "2.7.1": ("pytorch-training", "2.7.1-cpu-py312-ubuntu22.04-sagemaker",
              "2.7.1-gpu-py312-cu128-ubuntu22.04-sagemaker"),
    "2.8.0": ("pytorch-training", "2.8.0-cpu-py312-ubuntu22.04-sagemaker",
              "2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker"),
    "2.9.0": ("pytorch-training", "2.9.0-cpu-py312-ubuntu22.04-sagemaker",
              "2.9.0-gpu-py312-cu130-ubuntu22.04-sagemaker"),
    "2.10.0": ("pytorch-training", "2.10.0-cpu-py313-ubuntu22.04-sagemaker",
               "2.10.0-gpu-py313-cu130-ubuntu22.04-sagemaker"),
    "2.11.0": ("pytorch", "2.11.0-cpu-amzn2023-sagemaker", "2.11.0-cu130-amzn2023-sagemaker"),
    "2.12.1": ("pytorch", "2.12.1-cpu-amzn2023-sagemaker", "2.12.1-cu130-amzn2023-sagemaker"),
    "2.13.0": ("pytorch", "2.13.0-cpu-amzn2023-sagemaker", "2.13.0-cu133-amzn2023-sagemaker"),
}
LATEST_PYTORCH = "2.13.0"
# Trainium: the last published PyTorch training image (Neuron 2.30.0, XLA-based torch-neuronx), which
# runs on Trn1, Trn2 and Trn3. From Neuron 2.32 the DLCs no longer ship torch-neuronx for training.
NEURONX_TAG = "2.9.0-neuronx-py312-sdk2.30.0-ubuntu24.04"

# Instance families by kind: GPU (g*, p*: NVIDIA), CPU (general purpose, compute, memory), Trainium.
# A family of another kind (inf*: inference only) or one we do not know gets no default image: a
# guess would start the wrong image on an expensive instance; --sagemaker-image always works.
_GPU_PREFIXES = ("g", "p")
_CPU_PREFIXES = ("m", "c", "r", "t", "x", "z")
_NEURONX_FAMILIES = ("trn1", "trn1n", "trn2", "trn3")


def pytorch_version(version: str) -> str:
    """A full version from the table for "2.8" or "2.8.0"; the input unchanged if none matches."""
    if version in PYTORCH_TAGS:
        return version
    matches = [v for v in PYTORCH_TAGS if v.rsplit(".", 1)[0] == version]
    return matches[-1] if matches else version


def instance_family(instance_type: str) -> str:
    parts = instance_type.split(".")
    return parts[1] if len(parts) >= 3 else ""


def device_kind(instance_type: str):
    """"gpu", "cpu", "trainium", or None for a family we do not know."""
    family = instance_family(instance_type)
    if is_trainium(instance_type):
        return "trainium"
    if family[:1] in _GPU_PREFIXES and family[1:2].isdigit():
        return "gpu"
    if family[:1] in _CPU_PREFIXES and family[1:2].isdigit():
        return "cpu"
    return None


def is_gpu(instance_type: str) -> bool:
    return device_kind(instance_type) == "gpu"


def dlc_registry(region: str) -> str:
    account = _DLC_ACCOUNTS.get(region, DEFAULT_DLC_ACCOUNT)
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}"


class UnknownFamily(ValueError):
    """No default image for this instance family: the user must name one."""


def default_image(framework: str, version: str, instance_type: str, region: str) -> str:
    """The image URI, or ValueError naming the versions we know (UnknownFamily for the instance)."""
    kind = device_kind(instance_type)
    if kind is None:
        raise UnknownFamily(f"no default image for the {instance_family(instance_type)!r} instance family")
    if framework != "pytorch":
        raise ValueError("only the pytorch framework has default images; pass --sagemaker-image")
    if kind == "trainium":
        if instance_family(instance_type) not in _NEURONX_FAMILIES:
            raise UnknownFamily(f"no verified Neuron training image for {instance_family(instance_type)!r} yet")
        return f"{dlc_registry(region)}/pytorch-training-neuronx:{NEURONX_TAG}"
    full = pytorch_version(version)
    if full not in PYTORCH_TAGS:
        raise ValueError("no default image for pytorch " + version + "; known: " + ", ".join(PYTORCH_TAGS))
    repository, cpu, gpu = PYTORCH_TAGS[full]
    return f"{dlc_registry(region)}/{repository}:{gpu if is_gpu(instance_type) else cpu}"


# GPUs per instance for the sizes with more than one (AWS instance type pages); others have 0 or 1.
# g7e and p6-b300: AWS's own table of SageMaker instance types (aws/sagemaker-hyperpod-cli,
# src/sagemaker/hyperpod/training/constants.py, INSTANCE_RESOURCES, June 2026: g7e.2x/4x/8xlarge 1 GPU,
# 12xlarge 2, 24xlarge 4, 48xlarge 8; p6-b300.48xlarge 8); that botocore 1.44's TrainingInstanceType
# lists ml.p5en, ml.p6-b200, ml.p6-b300, ml.g7 and ml.g7e says SageMaker trains on them. ml.g7 sizes
# are left out until an AWS source gives their GPU counts: they count as 1 here (a note's wording only).
_MULTI_GPU = {
    "g4dn.12xlarge": 4, "g4dn.metal": 8, "g5.12xlarge": 4, "g5.24xlarge": 4, "g5.48xlarge": 8,
    "g6.12xlarge": 4, "g6.24xlarge": 4, "g6.48xlarge": 8, "g6e.12xlarge": 4, "g6e.24xlarge": 4,
    "g6e.48xlarge": 8, "g7e.12xlarge": 2, "g7e.24xlarge": 4, "g7e.48xlarge": 8, "p3.8xlarge": 4,
    "p3.16xlarge": 8, "p3dn.24xlarge": 8, "p4d.24xlarge": 8, "p4de.24xlarge": 8, "p5.48xlarge": 8,
    "p5e.48xlarge": 8, "p5en.48xlarge": 8, "p6-b200.48xlarge": 8, "p6-b300.48xlarge": 8,
}


def gpu_count(instance_type: str) -> int:
    """GPUs of a SageMaker instance type: the multi-GPU sizes by table, 1 for other g/p types."""
    name = instance_type[3:] if instance_type.startswith("ml.") else instance_type
    if name in _MULTI_GPU:
        return _MULTI_GPU[name]
    return 1 if name[:1] in ("g", "p") and not name.startswith("p2") else 0


def image_note(spec, given: bool) -> str:
    """Which image the job runs and why, for the dry run."""
    if given:
        return f"image: {spec.image} (from --sagemaker-image)"
    kind = device_kind(spec.instance_type)
    why = {"trainium": "the Neuron (torch-neuronx, XLA) training image for Trainium",
           "gpu": "the PyTorch GPU training image", "cpu": "the PyTorch CPU training image"}[kind]
    return (f"image: {spec.image} ({why}, chosen for {spec.instance_type}; --sagemaker-image or "
            "--sagemaker-framework-version picks another)")


def distribution_note(spec):
    """One line when several instances or GPUs will each run a single plain process (the toolkit's
    default, which we keep), saying how to opt in to torchrun; None otherwise."""
    if spec.distribution != "auto" or spec.trainium:
        return None
    gpus = gpu_count(spec.instance_type)
    several = [f"{spec.instance_count} instances" if spec.instance_count > 1 else "",
               f"{gpus} GPUs per instance" if gpus > 1 else ""]
    if not any(several):
        return None
    return (f"{' and '.join(s for s in several if s)}: one plain process per instance, as SageMaker's toolkit "
            "does; for one process per GPU across instances pass --sagemaker-distribution torchrun (or "
            "distribution=\"torchrun\" in training_main)")
