"""The SageMaker container contract as data: /opt/ml paths, our channel and hyperparameter
names, and the codecs that carry the user's exact argv through HyperParameters.

Standard library only: this module travels to the container with the runtime and is shared
by the client (which encodes) and the bootstrap (which decodes), so the two cannot drift.
See ../shared/reference/container_contract.md (sections 1, 2 and 4).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

DEFAULT_ROOT = "/opt/ml"
ROOT_ENV = "SAGEMAKER_BASE_DIR"  # the variable SageMaker's own training toolkit honours

# Environment of the job: where the runtime saves new Neuron compile-cache entries, and (local
# mode and the sandbox only, where algo-N do not resolve) the address torchrun's master uses.
NEURON_CACHE_S3_ENV = "ATR_NEURON_CACHE_S3"
MASTER_ADDR_OVERRIDE_ENV = "ATR_MASTER_ADDR_OVERRIDE"
MASTER_PORT_OVERRIDE_ENV = "ATR_MASTER_PORT_OVERRIDE"  # local jobs: a free port each, so two never collide

# Set by the bootstrap for the script: training_main then skips config files (the run is
# already decided by the argv, and the image may lack PyYAML).
IN_CONTAINER_ENV = "AWS_TRAIN_REMOTE_IN_CONTAINER"

DRIVER_CHANNEL = "atr_driver"
CODE_CHANNEL = "code"
NEURON_CACHE_CHANNEL = "atr_neuron_cache"
RESERVED_CHANNELS = (DRIVER_CHANNEL, CODE_CHANNEL, NEURON_CACHE_CHANNEL)

# The runtime travels as one zip application in the driver channel; python3 runs it by path.
# Each channel is a folder-like prefix holding one object, so where the file lands is certain.
DRIVER_FILE = "atr.pyz"
BUNDLE_FILE = "sourcedir.tar.gz"
DEFAULT_CHECKPOINT_PATH = "/opt/ml/checkpoints"
DEFAULT_TENSORBOARD_PATH = "/opt/ml/output/tensorboard"  # TensorBoardOutputConfig.LocalPath's default
# A local input in File mode arrives as content-addressed objects (a ManifestFile channel); the
# runtime lays the user's tree out from the version's tree object (plan/store.py writes it,
# runtime/input_tree.py reads it); HP_TREES names each channel's tree.
TREE_VERSION = 1

# Hyperparameters of our own start with "sagemaker_" so that, as with the SDK's own keys,
# the toolkit's rules keep them out of SM_HPS, SM_HP_* and the script's argv.
HP_ARGV = "sagemaker_atr_argv"  # chunked: sagemaker_atr_argv_0, _1, ...
HP_PATHS = "sagemaker_atr_paths"  # JSON: which flags point at channels and /opt/ml dirs
HP_TREES = "sagemaker_atr_trees"  # JSON {channel: sha256 of its tree object}: File channels of the input store
HP_PROGRAM = "sagemaker_program"
# A tuning trial has no ContainerEntrypoint: SageMaker's toolkit in the image runs ENTRY_FILE from
# the small ENTRY_ARCHIVE (sagemaker_submit_directory), which hands over to our runtime; the
# script's own file then travels in HP_SCRIPT, and the tuned values' flags in HP_TUNED.
ENTRY_FILE = "atr_entry.py"
ENTRY_ARCHIVE = "atr-entry.tar.gz"
HP_SCRIPT = "sagemaker_atr_program"
HP_TUNED = "sagemaker_atr_tuned"  # JSON {hyperparameter name: the script's flag}
HP_REGION = "sagemaker_region"
HP_JOB_NAME = "sagemaker_job_name"
HP_TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"
HP_NPROC = "sagemaker_mpi_num_of_processes_per_host"
HP_DISTRIBUTION = "sagemaker_atr_distribution"
HP_DEPENDENCIES = "sagemaker_atr_dependencies"
HP_REQUIREMENTS = "sagemaker_atr_requirements"
HP_SETTINGS = "sagemaker_atr_settings"  # JSON {option key: value text}: the job's real --sagemaker-* settings
SETTINGS_ENV_PREFIX = "AWS_TRAIN_REMOTE_"  # how the runtime hands them to training_main inside the job

HP_VALUE_LIMIT = 2500  # CreateTrainingJob: each HyperParameters value <= 2500 characters
HP_COUNT_LIMIT = 100
# Linux's limit on one argv or environment string at exec (MAX_ARG_STRLEN, 32 pages), its final
# NUL included; the whole argv + environment must also fit in ARG_MAX (os.sysconf("SC_ARG_MAX")).
ARG_STRLEN_LIMIT = 131072
CHANNEL_LIMIT = 20


@dataclass(frozen=True)
class Layout:
    """The /opt/ml tree of one host, rooted anywhere (tests and local mode use a temp dir)."""

    root: str = DEFAULT_ROOT

    @classmethod
    def from_env(cls, environ=None) -> Layout:
        environ = os.environ if environ is None else environ
        return cls(environ.get(ROOT_ENV) or DEFAULT_ROOT)

    def _p(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def input_dir(self) -> str:
        return self._p("input")

    @property
    def config_dir(self) -> str:
        return self._p("input", "config")

    @property
    def data_dir(self) -> str:
        return self._p("input", "data")

    def channel_dir(self, name: str) -> str:
        return self._p("input", "data", name)

    def pipe_path(self, name: str, epoch: int = 0) -> str:
        return self._p("input", "data", f"{name}_{epoch}")

    @property
    def model_dir(self) -> str:
        return self._p("model")

    @property
    def output_dir(self) -> str:
        return self._p("output")

    @property
    def output_data_dir(self) -> str:
        return self._p("output", "data")

    @property
    def intermediate_dir(self) -> str:
        return self._p("output", "intermediate")

    @property
    def failure_file(self) -> str:
        return self._p("output", "failure")

    @property
    def success_file(self) -> str:
        return self._p("output", "success")

    @property
    def code_dir(self) -> str:
        return self._p("code")

    @property
    def checkpoint_dir(self) -> str:
        return self._p("checkpoints")

    def config_file(self, name: str) -> str:
        return self._p("input", "config", name)


_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(/.*)?$")


def split_s3(uri: str) -> tuple:
    """('bucket', 'key/prefix') of a well-formed s3:// URI, else ValueError. The one splitter:
    the spec validates user input with it, the runtime and executors take URIs apart with it."""
    match = _S3_URI.match(uri) if isinstance(uri, str) else None
    if not match or ".." in match.group(1):
        raise ValueError("expected s3://bucket/key with a valid bucket name "
                         "(3-63 lower-case letters, digits, dots, hyphens)")
    return match.group(1), (match.group(2) or "/")[1:]


def rebase(path: str, root: str) -> str:
    """An /opt/ml path from a request, under another root (local mode, the sandbox, tests)."""
    if root != DEFAULT_ROOT and (path == DEFAULT_ROOT or path.startswith(DEFAULT_ROOT + "/")):
        return root + path[len(DEFAULT_ROOT):]
    return path


def encode_hyperparameter(value, compact: bool = False) -> str:
    """As the SageMaker SDK does: JSON for everything, so the toolkit's json.loads restores types.
    Values JSON cannot hold travel as their str()."""
    try:
        if compact:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return json.dumps(value, ensure_ascii=False)  # SageMaker counts characters, not \uXXXX escapes
    except (TypeError, ValueError):
        return json.dumps(str(value), ensure_ascii=False)


def entry_point_problem(name: str):
    """What is wrong with a script path relative to the code folder, or None. One rule for the
    launcher (which refuses before anything is created) and the runtime (which checks again):
    the script is started as an argv entry, never through a shell, so spaces, quotes and any
    other printable character are fine; what could leave the code folder or read as an option
    is not."""
    if not name:
        return "is empty"
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        return "holds a control character (a newline, a tab, ...)"
    if name.startswith("/"):
        return "is an absolute path"
    if name.startswith("-"):
        return "starts with '-' (python would read it as an option)"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "has an empty, '.' or '..' part"
    return None


def is_trainium(instance_type: str) -> bool:
    """ml.trn1.*, ml.trn1n.*, ml.trn2.*, ml.trn3.*: NeuronCores, torchrun, the compile cache."""
    parts = instance_type.split(".")
    return len(parts) >= 3 and parts[1].startswith(("trn1", "trn2", "trn3"))


def decode_hyperparameter(text: str):
    """The toolkit's rule: json.loads, keeping the raw string when that fails."""
    try:
        return json.loads(text)
    except ValueError:
        return text


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_argv(argv, limit: int = HP_VALUE_LIMIT) -> dict:
    """The exact argv as JSON, split over as many hyperparameters as the value limit needs.
    Characters stay as they are, since SageMaker counts characters (a CJK one as \\u4e2d would take
    six); only lone surrogates (argv bytes that were not UTF-8, kept by Python's surrogateescape)
    travel as \\udcXX escapes, so every value is valid UTF-8 text. A chunk may end inside an escape:
    decode_argv joins the chunks before it parses them."""
    text = json.dumps(list(argv), ensure_ascii=False)
    text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    chunks = [text[i : i + limit] for i in range(0, len(text), limit)] or ["[]"]
    return {f"{HP_ARGV}_{i}": chunk for i, chunk in enumerate(chunks)}


def exec_size(text: str) -> int:
    """Bytes a string takes at exec on Linux, its NUL included: UTF-8 (a lone surrogate, a byte
    that was not UTF-8, counted as three, never fewer than it takes)."""
    return len(text.encode("utf-8", "surrogatepass")) + 1


def argv_too_long(argv):
    """(index, bytes) of the first argument Linux would refuse to exec, or None."""
    for i, arg in enumerate(argv):
        if len(arg) * 4 >= ARG_STRLEN_LIMIT and exec_size(arg) > ARG_STRLEN_LIMIT:  # cheap for short ones
            return i, exec_size(arg) - 1
    return None


def decode_argv(hyperparameters) -> list:
    chunks = []
    i = 0
    while f"{HP_ARGV}_{i}" in hyperparameters:
        chunks.append(hyperparameters[f"{HP_ARGV}_{i}"])
        i += 1
    if not chunks:
        return []
    argv = json.loads("".join(chunks))
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"{HP_ARGV}: expected a JSON list of strings")
    return argv


def sm_serialize(value) -> str:
    """The toolkit's serialisation of SM_* values: str as-is, None empty, else sorted compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
