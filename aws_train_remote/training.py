"""training_main and @training_job: one implementation behind both forms.

Parses the script's own flags and every generated --sagemaker-* flag, then either calls
main(args) here (the default, with no AWS import), prints the exact job request
(--sagemaker-dry-run), or hands the request to an executor. This is the script's command
line, so it is where errors become one line on stderr and an exit status.
"""
from __future__ import annotations

import functools
import os
import sys

from .contract import IN_CONTAINER_ENV
from .errors import TrainRemoteError, UsageError
from .spec import config as config_mod
from .spec.flags import ScriptDefinition, build_parser, value_taking_flags
from .spec.options import BY_KEY, OPTIONS, builtin_defaults


def training_main(main, inputs=None, dependencies=None, *, additional_arguments=None,
                  argparse_callback=None, description=None, input_modes=None, input_distributions=None, argv=None,
                  environ=None, **defaults):
    """Run `main(args)` locally, or as a SageMaker training job when --sagemaker-run yes.

    inputs: {name: default local path or s3:// URI}; each becomes --<name> and args.<name>.
    dependencies: {name: folder}; shipped with the code and put on PYTHONPATH.
    additional_arguments: list of argparse kwargs, the flag in 'dest' (aws-sagemaker-remote style).
    argparse_callback: called with the parser to add the script's own flags.
    defaults (any other keyword): the default of an option by its config key (instance="ml.g5.xlarge",
    spot=True).
    aws-sagemaker-remote's keywords are accepted too: enable_sagemaker=False leaves out every
    --sagemaker-* flag (a local-only script); workers= is accepted and unused, as it was there.
    """
    enable_sagemaker = defaults.pop("enable_sagemaker", True)
    defaults.pop("workers", None)
    notebook = _in_notebook(main)
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] and not notebook else "aws-train-remote"
    try:
        _check_main(main)
    except TrainRemoteError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    script = os.path.join(os.getcwd(), "notebook.py") if notebook else _script_path(main)
    environ = os.environ if environ is None else environ
    here = environ.get(IN_CONTAINER_ENV) != "1" and not notebook  # in a job the runtime gives every path
    definition = ScriptDefinition(
        script=script,
        inputs=tuple(from_script_folder(inputs or {}, script).items() if here else (inputs or {}).items()),
        dependencies=tuple(from_script_folder(dependencies or {}, script).items() if here
                           else (dependencies or {}).items()),
        additional_arguments=tuple(additional_arguments or ()),
        argparse_callback=argparse_callback,
        description=description if description is not None else (main.__doc__ or None),
        input_modes=tuple((input_modes or {}).items()),
        input_distributions=tuple((input_distributions or {}).items()),
        enable_sagemaker=bool(enable_sagemaker),
    )
    if argv is None:  # a notebook kernel's argv (-f kernel.json) is not the script's
        argv = [] if notebook else sys.argv[1:]
    try:
        return run(definition, main, list(argv), environ, defaults, notebook)
    except TrainRemoteError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def from_script_folder(paths: dict, script: str) -> dict:
    """Relative paths written in the script (inputs=, dependencies=) are the script's own: relative
    to its folder, wherever it is started from (`python myproj/train.py` from the parent folder
    finds myproj/data). They are given back relative to the current folder, as a path typed on
    the command line is, so args.<name> reads as before when started from the script's folder.
    URIs (s3://, efs://, fsx://), absolute paths and ~ paths are left as they are."""
    folder = os.path.dirname(os.path.abspath(script))
    resolved = {}
    for name, value in paths.items():
        text = str(value) if value is not None else value
        if not text or "://" in text or os.path.isabs(text) or text.startswith("~"):
            resolved[name] = value
            continue
        full = os.path.normpath(os.path.join(folder, text))
        relative = os.path.relpath(full, os.getcwd())
        resolved[name] = full if relative.startswith(".." + os.sep + "..") else relative
    return resolved


def training_job(inputs=None, dependencies=None, **options):
    """Decorator form: `@training_job(inputs=...)` on main(args); then `main()` parses sys.argv."""

    def decorate(main):
        @functools.wraps(main)
        def entry(argv=None):
            return training_main(main, inputs, dependencies, argv=argv, **options)

        entry.__wrapped__ = main
        return entry

    return decorate


def sagemaker_training_main(main, inputs=None, dependencies=None, **kwargs):
    """aws-sagemaker-remote's entry point name, so its users switch by changing one import."""
    return training_main(main, inputs, dependencies, **kwargs)


def _check_main(main) -> None:
    """main must be callable with the parsed args: one clear line at definition time, not a
    TypeError after parsing (or after a job was launched)."""
    from .errors import DefinitionError

    if not callable(main):
        raise DefinitionError(f"training_main(main=...): {main!r} is not a function; pass def main(args): ...")
    import inspect

    try:
        inspect.signature(main).bind(None)
    except TypeError:
        name = getattr(main, "__name__", "main")
        raise DefinitionError(f"{name}() must take one argument, the parsed args: def {name}(args): ...") from None
    except ValueError:
        pass  # no signature to inspect (a builtin): let the call decide


def _in_notebook(main) -> bool:
    """main defined in a Jupyter/IPython kernel cell: its module has no file to ship."""
    module = sys.modules.get(getattr(main, "__module__", None))
    return "ipykernel" in sys.modules and module is not None and not getattr(module, "__file__", None)


def _script_path(main) -> str:
    module = sys.modules.get(getattr(main, "__module__", None))
    path = getattr(module, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    if not path:
        path = os.path.join(os.getcwd(), "main.py")
    return os.path.abspath(path)


def _peek_flag(argv, flag: str):
    """The value of one flag before the full parser exists (the config file decides its defaults)."""
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token == flag and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(flag + "="):
            return token.split("=", 1)[1]
    return None


def layered_defaults(definition, environ, keywords, argv, sdk_config=False) -> dict:
    """built-in < SageMaker SDK config (remote runs only) < training_main keyword < config
    file(s) < environment. The SDK's file is read only for remote runs: a local run needs
    none of its keys and should not pay for importing yaml."""
    layers = [builtin_defaults()]
    sdk_path = config_mod.sdk_config_path(environ)
    if sdk_config and sdk_path.is_file():
        layers.append(config_mod.parse_sdk_config(config_mod.read_yaml(sdk_path, written=True), str(sdk_path)))
    layers.append(config_mod.parse_keywords(keywords))
    explicit = _peek_flag(argv, "--sagemaker-config")
    in_container = environ.get(IN_CONTAINER_ENV) == "1"
    files = [] if in_container else config_mod.discover_config_files(explicit, os.path.dirname(definition.script),
                                                                      environ)
    for path in files:
        layers.append(config_mod.parse_config(config_mod.read_yaml(path, written=True), str(path)))
    layers.append(config_mod.parse_environment(environ))
    return config_mod.merge_layers(*layers)


def final_values(namespace, layered: dict) -> dict:
    """Option values after the command line; repeatable KEY=VALUE flags merge by key. An option
    the parser lacks (enable_sagemaker=False) keeps its layered default."""
    out = {}
    for option in OPTIONS:
        if option.repeat:
            given = getattr(namespace, option.dest, None)
            out[option.key] = layered.get(option.key) or ()
            if given:
                try:
                    parsed = option.parse(given)
                except ValueError as err:
                    raise UsageError(option.flag, given, str(err), f"write {option.flag} {option.metavar}") from None
                out[option.key] = config_mod.merge_layers({option.key: out[option.key]},
                                                          {option.key: parsed})[option.key]
        else:
            out[option.key] = getattr(namespace, option.dest, layered.get(option.key))
    return out


def parse(definition, argv, environ, keywords, sdk_config=False):
    """(namespace, final option values, parser) for this argv."""
    layered = layered_defaults(definition, environ, keywords, argv, sdk_config)
    parser = build_parser(definition, layered, prog=os.path.basename(definition.script))
    namespace = parser.parse_args(argv)
    return namespace, final_values(namespace, layered), parser


def run(definition, main, argv, environ, keywords, notebook=False):
    namespace, values, parser = parse(definition, argv, environ, keywords)
    if values.get("tune") and values["run"] == "no" and not values["dry_run"] and \
            environ.get(IN_CONTAINER_ENV) != "1":
        raise UsageError(BY_KEY["tune"].flag, None, "a tuning job runs trials as jobs",
                         "add --sagemaker-run local (trials on this machine) or --sagemaker-run yes")
    if notebook and (values["run"] != "no" or values["dry_run"]):
        from .errors import DefinitionError

        raise DefinitionError("a job cannot be launched from a notebook cell (there is no script file to ship); "
                              "write main to a file (%%writefile train.py) and run !python train.py "
                              "--sagemaker-run yes, or call training_main(main) here to run it locally")
    if values["run"] == "no" and not values["dry_run"]:
        from .executors.local_run import run_locally

        return run_locally(main, namespace, definition, environ)
    if config_mod.sdk_config_path(environ).is_file():
        namespace, values, parser = parse(definition, argv, environ, keywords, sdk_config=True)
    spec = job_spec(definition, namespace, values, parser, argv, environ)
    if spec.dry_run:
        from .executors.dry_run import print_dry_run

        return print_dry_run(spec, sys.stdout, environ)
    if spec.run == "local":
        from .executors.local_mode import run_local

        return run_local(spec, environ)
    from .executors.sagemaker import launch_and_follow

    return launch_and_follow(spec, environ)


def job_spec(definition, namespace, values, parser, argv, environ):
    """Build the JobSpec for a remote or local job from the parsed command line."""
    import datetime
    import secrets

    from .spec.argv import strip_flags
    from .spec.job import build_job_spec

    ours = value_taking_flags(parser)
    user_flags = set()
    for action in parser._actions:
        if action.dest in parser.atr_user_dests or action.dest == "help":
            user_flags.update(action.option_strings)
    container_argv = strip_flags(argv, {f: n for f, n in ours.items() if f not in user_flags})
    path_flags = {"model": "--model-dir", "output": "--output-dir", "checkpoint": "--checkpoint-dir",
                  "tensorboard": "--tensorboard-dir", "run": BY_KEY["run"].flag}
    from .paths import read_aws_config
    from .plan.request import hyperparameters

    aws_config_text = read_aws_config(environ)
    tunable = {}  # the script's flags that take one value: what --sagemaker-tune may search over
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if action.dest in parser.atr_user_dests and longs and action.nargs is None and \
                type(action).__name__ == "_StoreAction":
            tunable[action.dest] = longs[0]
    spec = build_job_spec(
        values, definition, namespace,
        container_argv=container_argv, user_dests=parser.atr_user_dests, path_flags=path_flags,
        cwd=os.getcwd(), environ=environ, now=datetime.datetime.now(datetime.timezone.utc),
        token=secrets.token_hex(3), launch_token=secrets.token_hex(16), aws_config_text=aws_config_text,
        tunable=tunable,
    )
    hyperparameters(spec)  # SageMaker's count and size limits, before any file is read or written
    return spec
