"""Source: the folder shipped as the job's code, the script it runs, its requirements, the
dependency folders that travel with it, and the job's environment variables. Pure, but for
looking at the local files named."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .. import contract
from .checks import need

KEYS = ("source", "script", "requirements", "env")

ENV_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,511}$")
CREDENTIAL_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "AWS_SECURITY_TOKEN")
ENV_LIMIT = 100  # CreateTrainingJob Environment: at most 100 entries, 512 characters each


@dataclass(frozen=True)
class DependencySpec:
    name: str
    folder: str  # absolute
    flag: str

    @property
    def bundle_path(self) -> str:
        """Where the folder lands inside the code bundle; its parent goes on PYTHONPATH."""
        return f"_atr_deps/{self.name}/{os.path.basename(self.folder.rstrip(os.sep))}"


def source_fields(v, definition, namespace, *, cwd: str) -> dict:
    """The JobSpec fields of the source, or UsageError for the first flag that is wrong."""
    environment = _environment(v)
    source_raw = v.get("source") or os.path.dirname(definition.script)
    source_dir = os.path.realpath(os.path.join(cwd, os.path.expanduser(source_raw)))
    need(os.path.isdir(source_dir), "--sagemaker-source", source_raw, "no such folder",
         "give the folder that holds the training code")
    script = _script(v.get("script"), definition.script, source_dir)
    requirements = _requirements(v.get("requirements"), source_dir)
    return dict(environment=environment, source_dir=source_dir, script=script.replace(os.sep, "/"),
                requirements=requirements.replace(os.sep, "/") if requirements else None,
                dependencies=dependencies(definition, namespace, cwd))


def _environment(v) -> tuple:
    environment = tuple(v.get("env") or ())
    need(len(environment) <= ENV_LIMIT, "--sagemaker-env", len(environment), "too many variables",
         f"SageMaker allows {ENV_LIMIT}")
    for key, value in environment:
        need(bool(ENV_NAME.match(key)), "--sagemaker-env", key, "not a valid variable name",
             "use letters, digits and underscores, e.g. --sagemaker-env MY_VAR=1")
        need(key.upper() not in CREDENTIAL_NAMES, "--sagemaker-env", key,
             "AWS credentials must never travel with a job (they are visible in DescribeTrainingJob)",
             "drop it; the job runs with --sagemaker-role")
        need(len(value) <= 512, "--sagemaker-env", key, "value longer than 512 characters",
             "shorten it or ship it in a file with the code")
    return environment


def _script(raw, running_script: str, source_dir: str) -> str:
    """--sagemaker-script relative to the source folder (default: the script that is running)."""
    script_raw = raw or os.path.relpath(os.path.realpath(running_script), source_dir)
    script_abs = os.path.realpath(os.path.join(source_dir, script_raw))
    need(os.path.isfile(script_abs), "--sagemaker-script", script_raw, "no such file in the source folder",
         "give the script's path relative to --sagemaker-source")
    script = os.path.relpath(script_abs, source_dir)
    need(not script.startswith(".."), "--sagemaker-script", script_raw, "lies outside the source folder",
         "move it, or pass a --sagemaker-source that contains it")
    problem = contract.entry_point_problem(script.replace(os.sep, "/"))
    need(problem is None, "--sagemaker-script", script_raw, f"cannot be the job's entry point: its path {problem}",
         "rename the script")
    return script


def _requirements(raw, source_dir: str):
    """--sagemaker-requirements relative to the source folder; requirements.txt there if present."""
    if not raw:
        return "requirements.txt" if os.path.isfile(os.path.join(source_dir, "requirements.txt")) else None
    req_abs = os.path.realpath(os.path.join(source_dir, raw))
    need(os.path.isfile(req_abs), "--sagemaker-requirements", raw, "no such file",
         "give a requirements file inside the source folder")
    requirements = os.path.relpath(req_abs, source_dir)
    need(not requirements.startswith(".."), "--sagemaker-requirements", raw,
         "lies outside the source folder", "move it into the source folder")
    return requirements


def dependencies(definition, namespace, cwd: str) -> tuple:
    """One DependencySpec per dependencies= key, from its --<name> flag."""
    found = []
    for name, _default in definition.dependencies:
        flag = definition.dependency_flag(name)
        raw = getattr(namespace, name)
        folder = os.path.realpath(os.path.join(cwd, os.path.expanduser(str(raw))))
        need(os.path.isdir(folder), flag, raw, "no such folder", "give the folder of the Python package")
        found.append(DependencySpec(name, folder, flag))
    return tuple(found)
