"""Parser generation: the script's own flags, then every generated --sagemaker-* flag, one
--<input>/--<input>-mode pair per input and one --<name> flag per dependency.

Defaults shown by --help are the effective ones (built-in < keyword < config < environment).
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field

from ..contract import RESERVED_CHANNELS
from ..errors import DefinitionError
from .options import GROUPS, INPUT_DISTRIBUTIONS, INPUT_MODES, OPTIONS

_CHANNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")


@dataclass(frozen=True)
class ScriptDefinition:
    """What the script declared through training_main / training_job."""

    script: str  # absolute path of the training script
    inputs: tuple = ()  # ((name, default location), ...)
    dependencies: tuple = ()  # ((name, default folder), ...)
    additional_arguments: tuple = ()
    argparse_callback: object = None
    description: str = None
    input_modes: tuple = field(default=())  # ((name, default mode), ...)
    input_distributions: tuple = field(default=())  # ((name, "replicated" or "sharded"), ...)

    def input_flag(self, name: str) -> str:
        return "--" + name.replace("_", "-")

    def dependency_flag(self, name: str) -> str:
        return "--" + name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    """Errors in one line (flag, value, what is expected), exit status 2, no usage dump."""

    def error(self, message):
        # argparse names an action by all its spellings ("argument --a/--b: ..."): keep the first.
        message = re.sub(r"^argument (-[\w-]+)(/-[\w-]+)*: ", r"\1: ", message)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _bool_metavar(option) -> str:
    return "{" + ",".join(option.choices) + "}" if option.choices else "{yes,no}"


def _type(option):
    def convert(raw):
        try:
            return option.parse(raw)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{raw!r}: {err}") from None

    convert.__name__ = option.key  # argparse names the type in some messages
    return convert


def _shown(value) -> str:
    if value is None or value == ():
        return "none"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, tuple):
        return ",".join("=".join(v) if isinstance(v, tuple) else str(v) for v in value)
    return str(value)


def validate_definition(definition: ScriptDefinition) -> None:
    seen = {}
    for kind, pairs in (("input", definition.inputs), ("dependency", definition.dependencies)):
        for name, _ in pairs:
            if not isinstance(name, str) or not name.isidentifier():
                raise DefinitionError(f"{kind} name {name!r}: must be a Python identifier "
                                      "(it becomes args.<name> and a --<name> flag)")
            if kind == "input" and (not _CHANNEL.match(name) or name in RESERVED_CHANNELS):
                raise DefinitionError(f"input name {name!r}: reserved or not a valid SageMaker "
                                      f"channel name; avoid {', '.join(RESERVED_CHANNELS)}")
            if name in seen:
                raise DefinitionError(f"{kind} {name!r} is also declared as {seen[name]} {name!r}; "
                                      "use different names")
            seen[name] = kind


def _user_arguments(parser, definition: ScriptDefinition) -> None:
    for spec in definition.additional_arguments:
        kwargs = dict(spec)
        names = kwargs.pop("flags", None) or kwargs.pop("name", None) or kwargs.pop("dest", None)
        if names is None:
            raise DefinitionError(f"additional_arguments entry {spec!r}: give the flag as 'dest' "
                                  "(e.g. {'dest': '--epochs', 'type': int})")
        names = [names] if isinstance(names, str) else list(names)
        parser.add_argument(*names, **kwargs)
    if definition.argparse_callback is not None:
        definition.argparse_callback(parser)


def _generated(definition: ScriptDefinition, defaults: dict):
    """(group, flags, kwargs, owner) for every generated argument."""
    for option in OPTIONS:
        kwargs = {"dest": option.dest, "help": f"{option.help} (default: {_shown(defaults.get(option.key))})"}
        if option.kind in ("bool", "run"):
            kwargs.update(nargs="?", const=True if option.kind == "bool" else "yes",
                          metavar=_bool_metavar(option), type=_type(option))
            kwargs["default"] = defaults.get(option.key)
        elif option.repeat:
            kwargs.update(action="append", metavar=option.metavar, default=None)
        else:
            kwargs.update(type=_type(option), metavar=option.metavar or option.key.upper(),
                          default=defaults.get(option.key))
            if option.kind == "choice":
                kwargs["metavar"] = "{" + ",".join(option.choices) + "}"
        yield option.group, option.flags, kwargs, f"generated option {option.flag}"
    for name, location in definition.inputs:
        flag = definition.input_flag(name)
        yield "data", (flag,), {"dest": name, "metavar": "PATH_OR_S3",
                                "help": f"input {name!r}: local folder/file or s3:// URI (default: {location})",
                                "default": location}, f"input {name!r}"
        mode = dict(definition.input_modes).get(name, "File")
        yield "data", (f"{flag}-mode",), {
            "dest": f"{name}_mode", "default": mode, "metavar": "{" + ",".join(INPUT_MODES) + "}",
            "type": _mode_type(f"{flag}-mode"), "help": f"SageMaker input mode of {name!r} (default: {mode})",
        }, f"input {name!r}"
        spread = dict(definition.input_distributions).get(name, "replicated")
        yield "data", (f"{flag}-distribution",), {
            "dest": f"{name}_distribution", "default": spread, "choices": tuple(INPUT_DISTRIBUTIONS),
            "metavar": "{" + ",".join(INPUT_DISTRIBUTIONS) + "}",
            "help": f"{name!r} on several instances: replicated = every instance gets all of it; sharded = "
                    f"each gets about 1/N of its files (ShardedByS3Key) (default: {spread})",
        }, f"input {name!r}"
    for name, folder in definition.dependencies:
        yield "source", (definition.dependency_flag(name),), {
            "dest": name, "metavar": "FOLDER", "default": folder,
            "help": f"dependency {name!r}: folder shipped with the code and put on PYTHONPATH "
                    f"(default: {folder})"}, f"dependency {name!r}"


def _mode_type(flag):
    def convert(raw):
        for mode in INPUT_MODES:
            if str(raw).lower() == mode.lower():
                return mode
        raise argparse.ArgumentTypeError(f"{raw!r}: expected one of {', '.join(INPUT_MODES)}")

    return convert


def build_parser(definition: ScriptDefinition, defaults: dict, prog: str = None) -> argparse.ArgumentParser:
    validate_definition(definition)
    parser = _Parser(prog=prog, description=definition.description, allow_abbrev=False,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _user_arguments(parser, definition)
    user_flags = {s: a for s, a in parser._option_string_actions.items() if s not in ("-h", "--help")}
    user_dests = {a.dest: a for a in parser._actions if a.dest != "help"}
    parser.atr_user_dests = tuple(user_dests)
    groups = {g: parser.add_argument_group(f"aws-train-remote: {g}") for g in GROUPS}
    taken_flags = {flag: "the script's flag " + flag for flag in user_flags}
    taken_dests = {dest: "the script's argument " + ("/".join(a.option_strings) or dest) + f" (args.{dest})"
                   for dest, a in user_dests.items()}
    for group, flags, kwargs, owner in _generated(definition, defaults):
        for flag in flags:
            if flag in taken_flags:
                raise DefinitionError(f"{taken_flags[flag]} clashes with the {owner} ({flag}); rename one of them")
            taken_flags[flag] = f"the {owner}"
        dest = kwargs["dest"]
        if dest in taken_dests:
            raise DefinitionError(f"{taken_dests[dest]} clashes with the {owner} (args.{dest}); "
                                  "rename one of them")
        taken_dests[dest] = f"the {owner} (args.{dest})"
        groups[group].add_argument(*flags, **kwargs)
    return parser


def value_taking_flags(parser) -> dict:
    """flag -> '?' (optional value) or 1 (one value) for every generated/path option: what
    argv.strip_flags needs to cut them out of the argv that travels to the container."""
    out = {}
    for action in parser._actions:
        for flag in action.option_strings:
            out[flag] = "?" if action.nargs == "?" else (0 if action.nargs == 0 else 1)
    return out


def script_prog(script: str) -> str:
    return sys.argv[0] if sys.argv and sys.argv[0] else script
