"""Counting accelerators the way the toolkit does: `nvidia-smi --list-gpus` lines starting
with "GPU ", and the sum of nc_count in `neuron-ls -j` (64 on trn2.48xlarge)."""
from __future__ import annotations

import json
import multiprocessing
import subprocess


def _run(cmd) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def num_gpus() -> int:
    return sum(1 for line in _run(["nvidia-smi", "--list-gpus"]).splitlines() if line.startswith("GPU "))


def num_neurons(instance_type: str) -> int:
    if "trn2.48xlarge" in instance_type:
        return 64
    text = _run(["neuron-ls", "-j"])
    try:
        devices = json.loads(text) if text.strip() else []
    except ValueError:
        return 0
    return sum(int(d.get("nc_count", 0)) for d in devices if isinstance(d, dict))


def num_cpus() -> int:
    return multiprocessing.cpu_count()
