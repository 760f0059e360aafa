"""The one table of generated options. argparse flags, config-file keys, environment
variables, training_main keywords and docs/flags.md are all derived from OPTIONS.

A row's `key` is its config key (`instance_count`), its keyword for training_main and the
JobSpec field it feeds; its flag is `--<name>`; its environment variable AWS_TRAIN_REMOTE_<KEY>.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import values

ENV_PREFIX = "AWS_TRAIN_REMOTE_"

RUN_CONTROL = "run control"
JOB = "job"
STORAGE = "storage"
SECURITY = "security"
SOURCE = "source"
DATA = "data"
GROUPS = (RUN_CONTROL, JOB, STORAGE, SECURITY, SOURCE, DATA)

_PARSERS = {
    "str": values.parse_str,
    "int": values.parse_int,
    "bool": values.parse_bool,
    "run": values.parse_run,
    "duration": values.parse_duration,
    "durations": values.parse_durations,
    "pairs": values.parse_pairs,
    "list": values.parse_list,
    "s3": values.parse_s3_uri,
    "file_or_mapping": lambda raw: raw if isinstance(raw, dict) else values.parse_str(raw),
    "bool_or_s3": values.parse_bool_or_s3,
}


@dataclass(frozen=True)
class Option:
    name: str  # flag without the dashes
    group: str
    help: str
    kind: str = "str"  # a key of _PARSERS, or "choice"
    default: object = None
    choices: tuple = ()
    aliases: tuple = ()  # other flag names (aws-sagemaker-remote's, mostly)
    keyword_aliases: tuple = ()  # other training_main keywords
    metavar: str = None
    repeat: bool = False  # the flag may be given several times; values accumulate
    configurable: bool = True  # may come from config file / environment / keyword

    @property
    def key(self) -> str:
        bare = self.name[len("sagemaker-"):] if self.name.startswith("sagemaker-") else self.name
        return bare.replace("-", "_")

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def flags(self) -> tuple:
        return (self.flag,) + tuple(f"--{a}" for a in self.aliases)

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.key.upper()

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def parse(self, raw):
        """Raw value (argv/env string or YAML value) to typed value; ValueError if malformed."""
        if raw is None:
            return None
        if self.kind == "choice":
            text = str(raw).strip()
            for choice in self.choices:
                if text.lower() == choice.lower():
                    return choice
            raise ValueError("expected one of " + ", ".join(self.choices))
        if self.repeat and self.kind != "pairs" and not isinstance(raw, (list, tuple)):
            raw = [raw]
        return _PARSERS[self.kind](raw)


Opt = Option
OPTIONS = (
    # run control
    Opt("sagemaker-run", RUN_CONTROL, "where to run: no = here, as a plain script; yes = as a SageMaker "
      "training job; local = the same job request executed on this machine", kind="run", default="no",
      choices=("no", "yes", "local"), keyword_aliases=("run",)),
    Opt("sagemaker-wait", RUN_CONTROL, "follow the job and its logs until it ends", kind="bool", default=True),
    Opt("sagemaker-dry-run", RUN_CONTROL, "print the CreateTrainingJob request and the upload plan; "
      "make no AWS call", kind="bool", default=False),
    Opt("sagemaker-config", RUN_CONTROL, "YAML config file (default: aws-train-remote.yaml next to "
      "the script, then ~/.config/aws-train-remote/config.yaml)", metavar="FILE", configurable=False),
    Opt("sagemaker-profile", RUN_CONTROL, "AWS profile to use", aliases=("sagemaker-aws-profile",)),
    Opt("sagemaker-region", RUN_CONTROL, "AWS region (default: AWS_REGION, then the profile's region)",
      aliases=("sagemaker-aws-region",)),
    Opt("sagemaker-output-json", RUN_CONTROL, "write the job's description (DescribeTrainingJob) as JSON to "
      "FILE when it is created, and again when it ends", metavar="FILE"),
    Opt("sagemaker-stop-on-interrupt", RUN_CONTROL, "Ctrl-C while following stops the job instead "
      "of detaching", kind="bool", default=False),
    Opt("sagemaker-budget", RUN_CONTROL, "the most a launch may cost, in US dollars: one whose worst case (instances x "
      "on-demand price x max run; a tuning job's trials together) is more is refused before anything is created",
      metavar="USD"),
    Opt("sagemaker-budget-unknown-ok", RUN_CONTROL, "with --sagemaker-budget: launch even when the price cannot be "
      "looked up (no network, no pricing:GetProducts permission); without it such a launch is refused", kind="bool",
      default=False),
    # job
    Opt("sagemaker-job-name", JOB, "exact job name (default: base name + time + random suffix)"),
    Opt("sagemaker-base-job-name", JOB, "base of generated job names and of the default checkpoint "
      "and compile-cache prefixes (default: the script's name)"),
    Opt("sagemaker-role", JOB, "IAM role name or ARN the job runs as",
      aliases=("sagemaker-training-role",), keyword_aliases=("training_role",)),
    Opt("sagemaker-image", JOB, "container image URI (default: the PyTorch image for the instance "
      "type; the Neuron image for Trainium)", aliases=("sagemaker-training-image",),
      keyword_aliases=("training_image",)),
    Opt("sagemaker-framework", JOB, "framework of the default image", kind="choice", default="pytorch",
      choices=("pytorch",)),
    Opt("sagemaker-framework-version", JOB, "PyTorch version of the default image (2.3 to 2.13; 2.13 = 2.13.0)",
        default="2.13.0"),
    Opt("sagemaker-instance", JOB, "instance type, or an ordered list of up to 5 (ml.p5.48xlarge,ml.p4d.24xlarge), "
      "each TYPE or TYPE:COUNT: on demand SageMaker starts the job on the first type with capacity "
      "(InstancePreferences); with --sagemaker-spot a job that cannot get capacity is relaunched on the next, "
      "with the same data and checkpoints", default="ml.m5.large",
      aliases=("sagemaker-training-instance",), keyword_aliases=("training_instance",)),
    Opt("sagemaker-instance-count", JOB, "number of instances", kind="int", default=1,
      aliases=("sagemaker-training-instance-count",), keyword_aliases=("training_instance_count",)),
    Opt("sagemaker-instance-group", JOB, "a heterogeneous cluster: one group of instances, NAME=TYPE:COUNT "
      "(repeatable, up to 5); replaces --sagemaker-instance and --sagemaker-instance-count", kind="pairs",
      metavar="NAME=TYPE:COUNT", repeat=True),
    Opt("sagemaker-distribution-group", JOB, "a heterogeneous cluster: the group the distribution "
      "(torchrun) runs on (default: the first group); the other groups run one plain process each",
      metavar="NAME"),
    Opt("sagemaker-volume-size", JOB, "EBS volume per instance in GB", kind="int", default=30,
      aliases=("sagemaker-training-volume-size",), keyword_aliases=("volume_size_in_gb",)),
    Opt("sagemaker-max-run", JOB, "maximum run time (seconds, or 90m, 2h, 1d)", kind="duration",
      default=86400, keyword_aliases=("max_run",)),
    Opt("sagemaker-spot", JOB, "use managed spot capacity", kind="bool", default=False,
      aliases=("sagemaker-spot-instances",), keyword_aliases=("spot_instances",)),
    Opt("sagemaker-spot-force", JOB, "allow spot without a checkpoint location", kind="bool",
      default=False),
    Opt("sagemaker-max-wait", JOB, "spot: maximum time to wait plus run (default: max-run + 1h)",
      kind="duration"),
    Opt("sagemaker-tune", JOB, "a hyperparameter tuning job over the script's own flags: a YAML spec "
      "(search space, objective metric, strategy, trials: the docs' tuning page), or tune={...} in training_main",
      kind="file_or_mapping", metavar="SPEC.yaml"),
    Opt("sagemaker-mlflow", JOB, "MLflow tracking for the job: a tracking URI (http(s)://, file:/..., databricks) or "
      "a SageMaker managed MLflow ARN; the launch logs a run (job, instance, spot, git commit, the script's flags) "
      "that the job's mlflow.start_run() continues", metavar="URI_OR_ARN"),
    Opt("sagemaker-mlflow-experiment", JOB, "MLflow experiment of that run (default: the base job name)",
      metavar="NAME"),
    Opt("sagemaker-queue", JOB, "submit the job to this AWS Batch job queue for SageMaker training "
      "(SubmitServiceJob) instead of starting it at once; the launch follows it through the queue into the job",
      metavar="QUEUE"),
    Opt("sagemaker-queue-share", JOB, "--sagemaker-queue with a fair-share scheduling policy: the job's share "
      "identifier (SubmitServiceJob's shareIdentifier), which such a queue requires and any other refuses",
      metavar="SHARE"),
    Opt("sagemaker-queue-priority", JOB, "--sagemaker-queue: the job's scheduling priority, 0-9999 (higher goes "
      "first among the jobs of its share; SubmitServiceJob's schedulingPriority)", kind="int", metavar="N"),
    Opt("sagemaker-queue-quota-share", JOB, "--sagemaker-queue with a quota-share scheduling policy: the quota share "
      "the job runs in (SubmitServiceJob's quotaShareName), which such a queue requires and any other refuses",
      metavar="NAME"),
    Opt("sagemaker-training-plan", JOB, "run on the capacity reserved by this SageMaker training plan "
      "(ResourceConfig.TrainingPlanArn); the job waits, Pending, until the plan is Active; --sagemaker-instance "
      "must be the plan's instance type", metavar="ARN"),
    Opt("sagemaker-max-pending", JOB, "GPU and Trainium jobs: how long SageMaker may keep the job waiting for "
      "capacity before it stops it, 30m to 28d (StoppingCondition.MaxPendingTimeInSeconds); with a training plan, "
      "only the wait on an Active plan counts", kind="duration"),
    Opt("sagemaker-max-retries", JOB, "SageMaker's RetryStrategy: retry the job up to this many times (0-30) "
      "when it fails with an InternalServerError; capacity shortages are not retried by it (see the instance "
      "list of --sagemaker-instance and --sagemaker-spot-fallback)", kind="int", default=0),
    Opt("sagemaker-spot-fallback", JOB, "when a spot job cannot get capacity, relaunch it on demand with the "
      "same data and checkpoints", kind="bool", default=False),
    Opt("sagemaker-keep-alive", JOB, "keep instances warm this long after the job (0-3600 s)",
      kind="duration", default=0),
    Opt("sagemaker-env", JOB, "environment variable for the job, KEY=VALUE (repeatable)", kind="pairs",
      metavar="KEY=VALUE", repeat=True),
    Opt("sagemaker-tag", JOB, "tag for the job, KEY=VALUE (repeatable)", kind="pairs",
      metavar="KEY=VALUE", repeat=True),
    Opt("sagemaker-notify", JOB, "tag the job so that `aws-train-remote notify setup`'s EventBridge rule tells "
      "its email address or webhook when the job ends", kind="bool", default=False),
    Opt("sagemaker-metric", JOB, "metric definition, NAME=REGEX (repeatable)", kind="pairs",
      metavar="NAME=REGEX", repeat=True, keyword_aliases=("metrics",)),
    Opt("sagemaker-experiment-name", JOB, "SageMaker Experiments: the experiment this job belongs to "
      "(created if missing)"),
    Opt("sagemaker-trial-name", JOB, "SageMaker Experiments: the trial within --sagemaker-experiment-name "
      "(created if missing)"),
    Opt("sagemaker-experiment-run", JOB, "SageMaker Experiments: the run of --sagemaker-experiment-name the job "
      "is recorded under (ExperimentConfig's RunName), as the SageMaker SDK's Run does", metavar="NAME"),
    Opt("sagemaker-infra-check", JOB, "SageMaker checks the instances' hardware (GPUs, network) before the job "
      "starts and replaces a faulty one (InfraCheckConfig)", kind="bool", default=False),
    Opt("sagemaker-distribution", JOB, "multi-process launch: torchrun = one process per GPU or NeuronCore "
      "across instances; auto = as SageMaker's toolkit, one plain process per instance (torchrun on "
      "Trainium); none = one plain process per instance everywhere", kind="choice",
      default="auto", choices=("auto", "none", "torchrun")),
    Opt("sagemaker-nproc-per-node", JOB, "torchrun processes per instance (default: GPUs, else "
      "NeuronCores, else 1)", kind="int"),
    Opt("sagemaker-simulate-interruption", JOB, "--sagemaker-run local only: simulate spot interruptions "
        "(SIGTERM, checkpoints kept, job restarted) to test resume logic; each time counts from the moment "
        "the script (re)starts, e.g. 30s,90s interrupts twice", kind="durations"),
    Opt("sagemaker-debug", JOB, "remote debugging (RemoteDebugConfig): SageMaker starts an SSM agent in the "
      "container, so `aws-train-remote shell JOB` opens a shell in it while it runs; not with "
      "--sagemaker-network-isolation", kind="bool", default=False),
    Opt("sagemaker-keep-on-failure", JOB, "when the script fails, keep its container up this long (e.g. 30m; never "
      "past --sagemaker-max-run) to look inside with `aws-train-remote shell`; the job then ends Failed with the "
      "script's error", kind="duration", default=0),
    Opt("sagemaker-neuron-parallel-compile", JOB, "Trainium: run neuron_parallel_compile before "
      "training to fill the compile cache", kind="bool", default=False),
    Opt("sagemaker-training-image-path", JOB, "aws-sagemaker-remote's Dockerfile build: not supported "
      "(build and push the image, then pass --sagemaker-image)", metavar="PATH"),
    Opt("sagemaker-training-image-accounts", JOB, "aws-sagemaker-remote's image build accounts: not supported",
      metavar="ACCOUNTS"),
    # storage
    Opt("sagemaker-bucket", STORAGE, "S3 bucket for code, inputs and outputs (default: "
      "sagemaker-<region>-<account>)"),
    Opt("sagemaker-prefix", STORAGE, "key prefix inside the bucket", default="aws-train-remote"),
    Opt("sagemaker-output-s3", STORAGE, "S3 URI for model.tar.gz and output.tar.gz (default: "
      "s3://<bucket>/<prefix>/output)", kind="s3"),
    Opt("sagemaker-checkpoint-s3", STORAGE, "S3 URI synced with the checkpoint dir; auto (or default) = "
      "s3://<bucket>/<prefix>/checkpoints/<base-job-name>, none = no checkpoint sync",
      default="auto"),
    Opt("sagemaker-checkpoint-container", STORAGE, "checkpoint dir inside the container",
      default="/opt/ml/checkpoints", aliases=("sagemaker-checkpoint-local",)),
    Opt("checkpoint-initial", STORAGE, "seed the checkpoint location from this local folder or S3 URI "
      "before the job starts"),
    Opt("sagemaker-fresh-start", STORAGE, "start without the checkpoints of earlier launches: the "
      "checkpoint location's files are moved aside to <location>-archived-<time>/ first (nothing is "
      "deleted), and later launches resume from this one", kind="bool", default=False),
    Opt("sagemaker-model-from", STORAGE, "start from an earlier model (incremental training): a job name, "
      "an s3:// URI of a model.tar.gz, or a local model.tar.gz or folder; it travels as the 'model' channel "
      "and the script finds it unpacked at args.model_init, in every mode", metavar="JOB_OR_URI"),
    Opt("sagemaker-neuron-cache", STORAGE, "Trainium compile cache in S3; auto = "
      "s3://<bucket>/<prefix>/neuron-cache/<base-job-name>, none = off", default="auto"),
    Opt("sagemaker-download", STORAGE, "when the job completes, fetch model.tar.gz and unpack it "
      "into --model-dir", kind="bool", default=False),
    Opt("sagemaker-output-compression", STORAGE, "how the job's model reaches S3: gzip = one model.tar.gz; "
      "none = its files uncompressed under <output>/<job>/output/model/ (OutputDataConfig's CompressionType), "
      "faster for large models; --sagemaker-download, `aws-train-remote download` and --sagemaker-model-from "
      "take either", kind="choice", default="gzip", choices=("gzip", "none")),
    Opt("sagemaker-tensorboard", STORAGE, "upload what the script writes to args.tensorboard_dir to S3 while it "
      "runs (TensorBoardOutputConfig); a bare flag or yes = <output>/<job>/tensorboard/, or give the S3 URI; "
      "view it with `aws-train-remote tensorboard JOB`", kind="bool_or_s3", default=False,
      metavar="{yes,no,S3_URI}"),
    Opt("tensorboard-dir", STORAGE, "where the script writes TensorBoard logs, args.tensorboard_dir (SageMaker: "
      "/opt/ml/output/tensorboard, which --sagemaker-tensorboard uploads)", default="output/tensorboard",
      metavar="FOLDER"),
    # security
    Opt("sagemaker-kms-key", SECURITY, "KMS key for S3 uploads and job output"),
    Opt("sagemaker-volume-kms-key", SECURITY, "KMS key for the instances' volumes"),
    Opt("sagemaker-subnets", SECURITY, "VPC subnet ids, comma-separated", kind="list"),
    Opt("sagemaker-security-groups", SECURITY, "VPC security group ids, comma-separated", kind="list"),
    Opt("sagemaker-network-isolation", SECURITY, "no network access from the container",
      kind="bool", default=False),
    Opt("sagemaker-encrypt-inter-container", SECURITY, "encrypt traffic between instances",
      kind="bool", default=False),
    Opt("sagemaker-session-chaining", SECURITY, "SageMaker passes the session tags of the credentials that create "
      "the job on when it assumes the job's role (SessionChainingConfig), so tag-based (ABAC) policies hold inside "
      "the job", kind="bool", default=False),
    # source
    Opt("sagemaker-source", SOURCE, "folder packaged as the job's code (default: the script's folder)",
      keyword_aliases=("source",)),
    Opt("sagemaker-script", SOURCE, "script to run, relative to the source folder (default: this "
      "script)", keyword_aliases=("script",)),
    Opt("sagemaker-requirements", SOURCE, "requirements file installed in the container (default: "
      "requirements.txt in the source folder, if present)", keyword_aliases=("requirements",)),
    # data
    Opt("model-dir", DATA, "where the script writes its model (SageMaker: /opt/ml/model)",
      default="output/model"),
    Opt("output-dir", DATA, "where the script writes other outputs (SageMaker: /opt/ml/output/data)",
      default="output/data"),
    Opt("model-init", DATA, "where the script finds the model to start from (set by --sagemaker-model-from; "
      "SageMaker: under /opt/ml/input/data/model)", metavar="FOLDER"),
    Opt("checkpoint-dir", DATA, "where the script writes and finds checkpoints (SageMaker: the "
      "checkpoint dir, synced with S3)", default="output/checkpoints"),
)
del Opt

BY_KEY = {o.key: o for o in OPTIONS}
BY_FLAG = {flag: o for o in OPTIONS for flag in o.flags}
KEYWORDS = {**{o.key: o for o in OPTIONS if o.configurable},
            **{a: o for o in OPTIONS for a in o.keyword_aliases}}
INPUT_MODES = ("File", "FastFile", "Pipe")
INPUT_DISTRIBUTIONS = {"replicated": "FullyReplicated", "sharded": "ShardedByS3Key"}  # flag value -> API value


# Shown by the script's --help; the rest appear with --help-all.
COMMON_KEYS = ("run", "dry_run", "wait", "region", "role", "instance", "instance_count", "spot", "image",
               "base_job_name", "download")
# Environment variables of ours that are not options (a misspelled one is refused, these are not).
OTHER_ENV_VARS = ("AWS_TRAIN_REMOTE_CACHE_DIR", "AWS_TRAIN_REMOTE_IN_CONTAINER")


def builtin_defaults() -> dict:
    return {o.key: o.default for o in OPTIONS}
