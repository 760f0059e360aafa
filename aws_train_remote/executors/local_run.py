"""--sagemaker-run no: call main(args) here, with the user's own paths.

Imports nothing from AWS unless an input is an s3:// URI, which is fetched once into the
local cache and replaced by the local copy's path.
"""
from __future__ import annotations

import os
import sys

from ..contract import IN_CONTAINER_ENV
from ..errors import UsageError
from ..spec.values import is_fs_uri, is_s3_uri


def check_local_paths(namespace, definition) -> None:
    """A missing input or dependency folder is one line before main runs, as local mode and a
    launch say it, instead of an error deep in the user's data loader. One stat per path."""
    for name, _ in definition.inputs:
        location = getattr(namespace, name)
        if location and not is_s3_uri(location) and not is_fs_uri(location) and not os.path.exists(location):
            raise UsageError(definition.input_flag(name), location, "no such local file or folder",
                             "create it, fix the path, or give an s3:// URI")
    for name, _ in definition.dependencies:
        folder = getattr(namespace, name)
        if folder and not os.path.isdir(str(folder)):
            raise UsageError(definition.dependency_flag(name), folder, "no such folder",
                             "give the folder of the Python package")


def run_locally(main, namespace, definition, environ):
    if environ.get(IN_CONTAINER_ENV) != "1":  # in a job the runtime made every path
        check_local_paths(namespace, definition)
    for attr in ("model_dir", "output_dir", "checkpoint_dir", "tensorboard_dir"):
        folder = getattr(namespace, attr, None)
        if folder:
            os.makedirs(folder, exist_ok=True)
    for name, _ in definition.inputs:
        location = getattr(namespace, name)
        if is_fs_uri(location):  # only a SageMaker job can mount it: the local copy stands for it
            flag = definition.input_flag(name)
            local = getattr(namespace, f"{name}_local", None)
            if not local:
                raise UsageError(flag, location, "a file system input can only be mounted by a SageMaker job",
                                 f"pass {flag}-local FOLDER with a local copy of it")
            setattr(namespace, name, local)
    s3_inputs = [(name, getattr(namespace, name)) for name, _ in definition.inputs
                 if is_s3_uri(getattr(namespace, name))]
    if s3_inputs:
        from ..aws.s3_cache import fetch_inputs
        from ..aws.session import AwsSession, aws_failures_as_errors
        from ..paths import cache_root

        session = AwsSession(profile=namespace.sagemaker_profile, region=namespace.sagemaker_region)
        with aws_failures_as_errors():
            local = fetch_inputs(session.client("s3"), s3_inputs, os.path.join(cache_root(environ), "s3"))
        for name, path in local.items():
            setattr(namespace, name, path)
    model_from = getattr(namespace, "sagemaker_model_from", None)
    if model_from and environ.get(IN_CONTAINER_ENV) != "1":
        from ..aws.models import local_model_init
        from ..aws.session import AwsSession, aws_failures_as_errors
        from ..paths import cache_root

        def session():
            return AwsSession(profile=namespace.sagemaker_profile, region=namespace.sagemaker_region)

        with aws_failures_as_errors():
            namespace.model_init = local_model_init(model_from, session, cache_root(environ))
    for name, _ in definition.dependencies:
        folder = os.path.abspath(str(getattr(namespace, name)))
        parent = os.path.dirname(folder.rstrip(os.sep))
        if parent not in sys.path:
            sys.path.insert(0, parent)
    if environ.get(IN_CONTAINER_ENV) != "1":
        return main(namespace)  # here the exception stays whole, for debuggers and post-mortems
    try:
        return main(namespace)
    except Exception as err:  # noqa: BLE001 - in a job: the user's traceback, from their main down
        import traceback

        tb = err.__traceback__.tb_next if err.__traceback__ is not None else None  # not this frame
        traceback.print_exception(type(err), err, tb, file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(1) from None
