"""The job's first process on every host: read /opt/ml/input/config, unpack the code,
install requirements, export the toolkit's environment, start the script (plain or
torchrun) with the user's exact argv remapped to container paths, report the outcome.

Reference: ../shared/reference/container_contract.md. The root is /opt/ml, or
SAGEMAKER_BASE_DIR when set (local mode, tests, debugging by hand).
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

from .. import contract
from . import debugging as job_debugging
from . import devices, environment, failure, job_env, launch, links, neuron_cache, warm_cache
from .process import run_child
from .requirements import RequirementsError, installs_code_folder, is_project, read_split
from .safe_tar import UnsafeArchive, extract_into, safe_extract


class SetupError(Exception):
    """The job cannot start: bad bundle, bad entry point, failed pip install."""


def log(message: str) -> None:
    print(f"[aws-train-remote] {message}", file=sys.stderr, flush=True)


def read_json(path: str, default):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except ValueError as err:
        raise SetupError(f"{path}: not valid JSON ({err})") from None


def fetch_submit_directory(where: str, code_dir: str) -> None:
    """A job built by another tool names its code in the `sagemaker_submit_directory`
    hyperparameter, as the toolkit reads it: an s3:// tar.gz (fetched with the image's boto3,
    S3_ENDPOINT_URL honoured), a local folder (copied), a local tar.gz (unpacked) or another file."""
    import shutil
    import tempfile

    if where.startswith("s3://"):
        try:
            import boto3
        except ImportError:
            raise SetupError(f"sagemaker_submit_directory {where} needs boto3 in the image") from None
        bucket, key = contract.split_s3(where)
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "sourcedir.tar.gz")
            try:
                boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None).download_file(
                    bucket, key, local)
                count = safe_extract(local, code_dir)
            except (UnsafeArchive, OSError) as err:
                raise SetupError(f"code from {where} refused: {err}") from None
            except Exception as err:  # noqa: BLE001 - botocore's errors: the job cannot start
                raise SetupError(f"cannot fetch {where}: {err}") from None
        log(f"code: {count} files from {where}")
    elif os.path.isdir(where):
        shutil.copytree(where, code_dir, dirs_exist_ok=True)
        log(f"code: copied from {where}")
    elif where.endswith((".tar.gz", ".tgz")) and os.path.isfile(where):
        try:
            log(f"code: {safe_extract(where, code_dir)} files from {where}")
        except (UnsafeArchive, OSError) as err:
            raise SetupError(f"code from {where} refused: {err}") from None
    elif os.path.isfile(where):
        shutil.copy2(where, code_dir)
    else:
        raise SetupError(f"sagemaker_submit_directory {where!r} does not exist")


def prepare_code(layout, submit_directory=None) -> None:
    """Unpack the code channel's bundle into code/, unless code/ already holds files (as the
    toolkit does: code baked into the image wins); without our bundle, fetch the code the job's
    `sagemaker_submit_directory` names."""
    os.makedirs(layout.code_dir, exist_ok=True)
    if [name for name in os.listdir(layout.code_dir) if name != contract.ENTRY_FILE]:  # the toolkit's copy of
        # our tuning entry file is not the user's code
        log(f"{layout.code_dir} is not empty; using the code already there")
        return
    bundles = sorted(glob.glob(os.path.join(layout.channel_dir(contract.CODE_CHANNEL), "**", "*.tar.gz"),
                               recursive=True))
    if not bundles and submit_directory:
        fetch_submit_directory(submit_directory, layout.code_dir)
        return
    if not bundles:
        raise SetupError(f"no code bundle in {layout.channel_dir(contract.CODE_CHANNEL)}")
    try:
        count = safe_extract(bundles[0], layout.code_dir)
    except (UnsafeArchive, OSError) as err:
        raise SetupError(f"code bundle refused: {err}") from None
    log(f"code: {count} file{'' if count == 1 else 's'} from {os.path.basename(bundles[0])}")


def check_entry_point(name: str, code_dir: str) -> str:
    problem = contract.entry_point_problem(name)  # the launcher applied the same rule
    if problem:
        raise SetupError(f"invalid entry point {name!r}: it {problem}")
    if not os.path.isfile(os.path.join(code_dir, name)):
        raise SetupError(f"entry point {name!r} not found in {code_dir}")
    return name


def install_requirements(code_dir: str, requirements, python: str, environ) -> str:
    """Install the code's requirements, and the code folder itself when it is a Python project
    (pyproject.toml with a build system, or setup.py: the toolkit's `pip install . -r
    requirements.txt`); returns the interpreter that runs the script. pip always runs from the code
    folder, as the toolkit's does, so a relative path in a requirements file means the same in every
    mode. On this machine (local mode, the sandbox: ATR_LOCAL_ENVS is set) into a job environment
    of its own, never into the user's Python (job_env.py); in a container into the image's Python."""
    path = None
    if requirements:
        path = os.path.join(code_dir, requirements)
        if not os.path.isfile(path):
            raise SetupError(f"requirements file {requirements!r} not in the code bundle")
    project = is_project(code_dir)
    if environ.get(job_env.ENVS_ENV):
        try:
            job_dir = os.path.join(contract.Layout.from_env(environ).root, ".atr-job-env")  # goes with the job
            return job_env.job_python(environ[job_env.ENVS_ENV], job_dir, code_dir, path, python, log, project=project)
        except (OSError, job_env.EnvError, subprocess.CalledProcessError) as err:
            raise SetupError(str(err)) from None
    if not path and not project:
        return python
    if path and project:  # `-e .` or `.` in the file already installs it; a second `.` is a conflict to pip
        try:
            project = not installs_code_folder(read_split(path, code_dir, environ), code_dir)
        except RequirementsError:
            pass  # a file pip cannot read either: pip's own error says so below
    args = (["-r", requirements] if path else []) + (["."] if project else [])  # relative: pip runs in code/
    log("pip install " + " ".join(args) + (" (the code folder is a Python project)" if project else ""))
    result = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", *args],
                            cwd=code_dir, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        raise SetupError(job_env.pip_failure("pip install " + " ".join(args), result))
    return python


def lay_out_inputs(layout, trees: dict) -> None:
    """File channels of the input store: the user's folder, laid out from the objects, every byte
    checked against its sha256 (about 0.65 s per GB of large files, 1.1 s of small ones: docs/remote.md)."""
    from .input_tree import LayoutError, lay_out

    for name, tree in sorted(trees.items()):
        folder = layout.channel_dir(name)
        if not os.path.isdir(folder):
            continue  # an instance group this channel is not for
        started = time.monotonic()
        try:
            count = lay_out(folder, tree)
        except (LayoutError, OSError, ValueError, KeyError) as err:
            raise SetupError(f"input channel {name!r}: cannot lay out its files: {err}") from None
        log(f"input {name!r}: {count} file{'' if count == 1 else 's'} laid out in {folder}, checked against their "
            f"sha256 ({time.monotonic() - started:.1f} s)")


def unpack_models(layout, paths: dict) -> None:
    """--sagemaker-model-from: unpack the earlier model (safely) before the script starts, so
    args.model_init is a folder in every mode."""
    for name, spec in sorted((paths.get("inputs") or {}).items()):
        if not spec.get("unpack"):
            continue
        target = launch.model_init_dir(layout, name, spec)
        archive = os.path.join(layout.channel_dir(name), spec.get("file") or "")
        if target == layout.channel_dir(name) + "-unpacked":
            if not os.path.isfile(archive):
                raise SetupError(f"--sagemaker-model-from: {spec.get('file')} is missing from the {name!r} channel")
            import tarfile

            try:
                count = extract_into(archive, target)
            except (UnsafeArchive, tarfile.TarError, OSError, EOFError, ValueError) as err:
                raise SetupError(f"--sagemaker-model-from: cannot unpack {spec.get('file')}: {err}") from None
            log(f"model to start from: {count} file{'' if count == 1 else 's'} unpacked into {target}")
        else:
            log(f"model to start from: {target}")


def _decode(raw_hps, key, default=None):
    return contract.decode_hyperparameter(raw_hps[key]) if key in raw_hps else default


def choose_distribution(raw_hps: dict, resource: dict) -> str:
    """Ours ("auto", "none", "torchrun"), or for a job built by another tool the launcher its
    hyperparameters ask SageMaker's PyTorch toolkit for (issue 18.10): torch_distributed is
    torchrun across the hosts, as the toolkit runs it; one this runtime cannot honour fails the
    job here, before pip and the script, in one line naming it -- never silently one process."""
    decoded = environment.decode_all(raw_hps)
    distribution = decoded.get(contract.HP_DISTRIBUTION, "auto")
    flag = launch.toolkit_launcher(decoded) if distribution == "auto" else None
    if flag is None or not environment.Cluster(resource, raw_hps).in_distribution_group:
        return distribution  # the toolkit, too, runs a plain process outside the distribution groups
    if launch.TOOLKIT_LAUNCHERS[flag] is not None:
        raise SetupError(f"hyperparameter {flag}={raw_hps[flag]}: the job {launch.TOOLKIT_LAUNCHERS[flag]}")
    log(f"{flag}: torchrun across the hosts, as SageMaker's PyTorch toolkit runs it")
    return "torchrun"


def main(environ=None) -> int:
    environ = dict(os.environ) if environ is None else dict(environ)
    started = time.time()  # --sagemaker-keep-on-failure counts the job's max run from here at the latest
    layout = contract.Layout.from_env(environ)
    python = sys.executable or "python3"
    try:
        raw_hps = read_json(layout.config_file("hyperparameters.json"), {})
        resource = read_json(layout.config_file("resourceconfig.json"), {})
        input_config = read_json(layout.config_file("inputdataconfig.json"), {})
        distribution = choose_distribution(raw_hps, resource)
        for folder in (layout.model_dir, layout.output_data_dir):
            os.makedirs(folder, exist_ok=True)
        prepare_code(layout, _decode(raw_hps, "sagemaker_submit_directory"))
        program = _decode(raw_hps, contract.HP_SCRIPT) or environ.get("SAGEMAKER_PROGRAM") or \
            _decode(raw_hps, contract.HP_PROGRAM, "")  # a tuning trial's sagemaker_program is our entry file
        entry = check_entry_point(str(program), layout.code_dir)
        requirements = _decode(raw_hps, contract.HP_REQUIREMENTS)
        if requirements is None and os.path.isfile(os.path.join(layout.code_dir, "requirements.txt")):
            requirements = "requirements.txt"  # the toolkit installs the code's requirements.txt
        warm = warm_cache.cache_env(environ, layout.root)  # a warm pool's cache: pip's and others (issue 19.6)
        if warm:
            log(warm_cache.note(environ, layout.root, warm))
            environ.update(warm)  # the script's own pip and hub downloads too
        began = time.monotonic()
        with warm_cache.applied(warm):
            python = install_requirements(layout.code_dir, requirements, python, environ)
        if requirements or is_project(layout.code_dir):
            log(f"requirements ready in {time.monotonic() - began:.1f} s")
    except SetupError as err:
        log(str(err))
        failure.write_failure_once(layout, f"ClientError: {err}\n")
        return 1

    paths = _decode(raw_hps, contract.HP_PATHS, {}) or {}
    if any(key.startswith(contract.HP_ARGV) for key in raw_hps):
        argv = launch.remap_argv(contract.decode_argv(raw_hps), paths, layout)
        tuned = _decode(raw_hps, contract.HP_TUNED, {}) or {}
        if tuned:
            argv = launch.apply_tuned(argv, tuned, raw_hps)
            log("tuned: " + " ".join(f"{flag} {raw_hps[name]}" for name, flag in sorted(tuned.items())
                                     if name in raw_hps))
    else:  # a job not launched by aws-train-remote: arguments exactly as the toolkit builds them
        argv = launch.toolkit_args(environment.user_hyperparameters(raw_hps))
    try:
        lay_out_inputs(layout, _decode(raw_hps, contract.HP_TREES, {}) or {})
        unpack_models(layout, paths)
    except SetupError as err:
        log(str(err))
        failure.write_failure_once(layout, f"ClientError: {err}\n")
        return 1
    checkpoint_path = contract.rebase(paths.get("checkpoint_path") or layout.checkpoint_dir, layout.root)
    os.makedirs(checkpoint_path, exist_ok=True)
    if paths.get("tensorboard"):  # args.tensorboard_dir is a folder, as args.model_dir is
        os.makedirs(contract.rebase(paths.get("tensorboard_path") or contract.DEFAULT_TENSORBOARD_PATH,
                                    layout.root), exist_ok=True)
    restored = sum(len(files) for _, _, files in os.walk(checkpoint_path))
    if restored:  # SageMaker (and local mode, the sandbox) put the checkpoint location's files here
        log(f"restored {restored} checkpoint file{'' if restored == 1 else 's'} into {checkpoint_path} from the "
            "job's checkpoint location")
    instance_type = resource.get("current_instance_type", "local")
    gpus, neurons = devices.num_gpus(), devices.num_neurons(instance_type)
    decoded = environment.decode_all(raw_hps)
    nproc = launch.nproc_per_node(decoded, gpus, neurons)
    # whether torchrun runs decides the distribution groups the toolkit would report
    torchrun = launch.wants_torchrun(distribution, environment.Cluster(resource, raw_hps), nproc)
    cluster = environment.Cluster(resource, raw_hps, launching_torchrun=torchrun)
    plan = launch.plan_launch(python=python, script=entry, argv=argv, hps=decoded, cluster=cluster,
                              num_gpus=gpus, num_neurons=neurons, distribution=distribution, environ=environ)

    job_name = environ.get("TRAINING_JOB_NAME") or str(decoded.get(contract.HP_JOB_NAME) or "")
    env = dict(environ)
    env.update(environment.toolkit_env(
        layout, raw_hps, resource, input_config, num_cpus=devices.num_cpus(), num_gpus=gpus,
        num_neurons=neurons, job_name=job_name, user_args=argv, entry_point=entry, environ=environ,
        launching_torchrun=plan.torchrun))
    env.update(plan.env)
    settings = _decode(raw_hps, contract.HP_SETTINGS, {}) or {}
    chosen = launch.selected_instance(settings, resource)  # an instance list: the type SageMaker selected
    if chosen:
        settings = {**settings, **chosen[0]}
        log(chosen[1])
    for key, value in settings.items():
        env[contract.SETTINGS_ENV_PREFIX + key.upper()] = str(value)  # args.sagemaker_* are the job's own
    if job_name:  # a tuning trial's own name, not the one planned before the tuning job named it
        env[contract.SETTINGS_ENV_PREFIX + "JOB_NAME"] = job_name
    deps = [os.path.join(layout.code_dir, d) for d in (_decode(raw_hps, contract.HP_DEPENDENCIES, []) or [])]
    # the driver channel's copy of this package, so the script's `import aws_train_remote` works
    # in any image and matches the client that launched it
    driver = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([layout.code_dir, *deps, driver]
                                        + ([environ["PYTHONPATH"]] if environ.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env[contract.IN_CONTAINER_ENV] = "1"

    cache_dir, before = None, None
    if contract.is_trainium(instance_type) or os.path.isdir(layout.channel_dir(contract.NEURON_CACHE_CHANNEL)):
        cache_dir = neuron_cache.cache_dir(environ, layout)
        restored = neuron_cache.restore(layout, checkpoint_path, cache_dir)
        before = neuron_cache.snapshot(cache_dir)
        env.setdefault("NEURON_COMPILE_CACHE_URL", cache_dir)
        log(f"neuron compile cache: {restored} entries restored into {cache_dir}")

    several = [f"{gpus} GPUs" if gpus > 1 else "", f"{len(cluster.hosts)} hosts" if len(cluster.hosts) > 1 else ""]
    if distribution == "auto" and not plan.torchrun and any(several):
        log(f"one process on this host with {' and '.join(s for s in several if s)} (SageMaker's default); "
            "--sagemaker-distribution torchrun starts one per GPU across hosts")
    try:  # issue 18.6: SM_* give way to what exec allows; an argv over it fails here, in one line
        env = environment.fit_exec_limits(env, plan.command, layout.config_dir, log)
    except environment.ExecLimit as err:
        log(str(err))
        failure.write_failure_once(layout, f"ClientError: {err}\n")
        return 1
    job_debugging.write_shell_record(environ, env, python, cwd=layout.code_dir, root=layout.root,
                                     host=cluster.current_host, job=job_name)  # local mode: `shell`
    env.pop(job_debugging.SHELL_RECORD_ENV, None)
    log("running: " + " ".join(plan.command))
    try:
        code, child = run_child(plan.command, layout.code_dir, env, torchrun=plan.torchrun)
    except OSError as err:  # e.g. torchrun or neuron_parallel_compile missing from the image
        failure.write_failure_once(layout, f"ClientError: cannot start {plan.command[0]!r}: {err}\n"
                                           f"Command {' '.join(plan.command)!r}\n")
        log(f"cannot start {plan.command[0]}: {err}")
        return 1
    finally:
        links.seal_outputs(layout, log)  # issue 18.2: links out of model/ and output/data/ become copies
        if cache_dir is not None and cluster.current_host == cluster.master:
            try:
                saved, how = neuron_cache.save(cache_dir, before, environ.get(contract.NEURON_CACHE_S3_ENV),
                                               checkpoint_path)
                if saved:
                    log(f"neuron compile cache: {saved} new entries saved ({how})")
            except Exception as err:  # noqa: BLE001 - a cache that fails to save must not fail the job
                log(f"neuron compile cache not saved: {err}")

    if child.signalled is not None:  # StopTrainingJob or a spot reclaim: not the script's failure, nor
        # its success -- a script that saves and exits 0 on SIGTERM (Lightning does) was interrupted
        import signal as signals

        name = signals.Signals(child.signalled).name
        log(f"training stopped: {name} from the platform (a stop request or a spot interruption); "
            f"the script exited with status {code}" + (" after it: interrupted, not finished" if code == 0 else ""))
        return 1
    if code == 0:
        with open(layout.success_file, "w"):
            pass
        log("training succeeded")
        return 0
    failure.write_failure_once(layout, failure.failure_text(code, plan.command, list(child.stderr_tail)))
    log(f"training failed with exit status {code}")
    job_debugging.hold_after_failure(_decode(raw_hps, contract.HP_SETTINGS, {}) or {}, environ, layout, job=job_name,
                                     host=cluster.current_host, started=started, log=log)
    return 1
