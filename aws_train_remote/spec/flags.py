"""Parser generation: the script's own flags, then every generated --sagemaker-* flag, one
--<input>/--<input>-mode pair per input and one --<name> flag per dependency.

Defaults shown by --help are the effective ones (built-in < keyword < config < environment).
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field

from .._version import DOCS_URL
from ..contract import RESERVED_CHANNELS
from ..errors import DefinitionError
from .options import COMMON_KEYS, GROUPS, INPUT_DISTRIBUTIONS, INPUT_MODES, OPTIONS

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
    enable_sagemaker: bool = True  # False: only the local flags (aws-sagemaker-remote's keyword)

    def input_flag(self, name: str) -> str:
        return "--" + name.replace("_", "-")

    def dependency_flag(self, name: str) -> str:
        return "--" + name.replace("_", "-")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The script's own flags show their defaults too, as the generated ones do (issue 21.5).
    argparse's ArgumentDefaultsHelpFormatter would also print '(default: None)' and
    '(default: False)' for flags that have none or are switches: only a real value is shown, and
    only where the help text does not already say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (getattr(action, "atr_script_flag", False) and text is not argparse.SUPPRESS and action.nargs != 0
                and action.default not in (None, argparse.SUPPRESS, "", [], ())
                and "%(default)" not in text and "(default" not in text):
            return f"{text} (default: %(default)s)" if text else "default: %(default)s"
        return text


class _Parser(argparse.ArgumentParser):
    """Errors in one line (flag, value, what is expected), exit status 2, no usage dump."""

    def error(self, message):
        # argparse names an action by all its spellings ("argument --a/--b: ..."): keep the first.
        message = re.sub(r"^argument (-[\w-]+)(/-[\w-]+)*: ", r"\1: ", message)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(_unrecognized(extras, self._option_string_actions))
        return namespace


def _unrecognized(extras, known) -> str:
    """argparse's message, or for a misspelled flag the closest real one."""
    flag = next((e.split("=", 1)[0] for e in extras if e.startswith("--")), None)
    if flag:
        import difflib  # only on the error path

        close = difflib.get_close_matches(flag, [k for k in known if k.startswith("--")], n=1, cutoff=0.75)
        if close:
            return f"unrecognized argument {flag}: did you mean {close[0]}?"
    return "unrecognized arguments: " + " ".join(extras)


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
        if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
            # aws-sagemaker-remote's own form: (positional args, keyword args) of add_argument
            names, kwargs = spec
            names = [names] if isinstance(names, str) else list(names)
            parser.add_argument(*names, **kwargs)
            continue
        if not isinstance(spec, dict):
            raise DefinitionError(f"additional_arguments entry {spec!r}: give a dict of add_argument keywords "
                                  "with the flag in 'dest', or a (['--flag'], {...}) pair")
        kwargs = dict(spec)
        names = kwargs.pop("flags", None) or kwargs.pop("name", None) or kwargs.pop("dest", None)
        if names is None:
            raise DefinitionError(f"additional_arguments entry {spec!r}: give the flag as 'dest' "
                                  "(e.g. {'dest': '--epochs', 'type': int})")
        names = [names] if isinstance(names, str) else list(names)
        parser.add_argument(*names, **kwargs)
    if definition.argparse_callback is not None:
        definition.argparse_callback(parser)


def _help(option, default, show_all: bool) -> str:
    """The option's help with its effective default; hidden from --help unless common."""
    if not show_all and option.key not in COMMON_KEYS and option.group != "data":
        return argparse.SUPPRESS
    if default is None or default == ():
        return option.help  # its own text says what happens without it
    return f"{option.help} (default: {_shown(default)})"


def _generated(definition: ScriptDefinition, defaults: dict, show_all: bool = True):
    """(group, flags, kwargs, owner) for every generated argument."""
    for option in OPTIONS:
        kwargs = {"dest": option.dest, "help": _help(option, defaults.get(option.key), show_all)}
        if option.kind in ("bool", "run", "bool_or_s3"):  # a bare flag means yes
            kwargs.update(nargs="?", const="yes" if option.kind == "run" else True,
                          metavar=option.metavar or _bool_metavar(option), type=_type(option))
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
                                "help": f"input {name!r}: local folder/file, s3:// URI, or efs://fs-id/path or "
                                        f"fsx://fs-id/mount/path (default: {location})",
                                "default": location}, f"input {name!r}"
        mode = dict(definition.input_modes).get(name, "File")
        yield "data", (f"{flag}-mode",), {
            "dest": f"{name}_mode", "default": mode, "metavar": "{" + ",".join(INPUT_MODES) + "}",
            "type": _mode_type(f"{flag}-mode"), "help": f"SageMaker input mode of {name!r} (default: {mode})",
        }, f"input {name!r}"
        for suffix, extra in (("suffix", {"metavar": "PATH", "default": ""}),
                              ("repeat", {"metavar": "N", "type": int, "default": None}),
                              ("shuffle", {"metavar": "{yes,no}", "type": _yes_no(f"{flag}-shuffle"), "nargs": "?",
                                           "const": True, "default": False})):
            yield "data", (f"{flag}-{suffix}",), {
                "dest": f"{name}_{suffix}", **extra, "atr_compat": True,
                "help": f"aws-sagemaker-remote's --<input>-{suffix}, kept so its scripts run: "
                        + COMPAT_INPUT_FLAGS[suffix] if show_all else argparse.SUPPRESS}, f"input {name!r}"
        yield "data", (f"{flag}-instance-groups",), {
            "dest": f"{name}_instance_groups", "metavar": "NAMES", "default": None,
            "help": f"a heterogeneous cluster: only these instance groups (comma-separated) get {name!r}"
            if show_all else argparse.SUPPRESS}, f"input {name!r}"
        yield "data", (f"{flag}-local",), {
            "dest": f"{name}_local", "metavar": "FOLDER", "default": None,
            "help": f"a local copy of {name!r} when it is an efs:// or fsx:// file system, which can only be "
                    "mounted by a SageMaker job (a local run and local mode read this folder instead)"
            if show_all else argparse.SUPPRESS}, f"input {name!r}"
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


COMPAT_INPUT_FLAGS = {
    "suffix": "a path inside the input; on SageMaker and in local mode args.<input> points at it",
    "repeat": "not supported beyond 1 (loop over the data in the script)",
    "shuffle": "not supported (shuffle in the script's data loader)",
}


def _yes_no(flag):
    def convert(raw):
        from .values import parse_bool

        try:
            return parse_bool(raw)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{raw!r}: {err}") from None

    return convert


def _mode_type(flag):
    def convert(raw):
        for mode in INPUT_MODES:
            if str(raw).lower() == mode.lower():
                return mode
        raise argparse.ArgumentTypeError(f"{raw!r}: expected one of {', '.join(INPUT_MODES)}")

    return convert


class _HelpAll(argparse.Action):
    """--help-all: the help with every generated flag, by group."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None, full=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)
        self.full = full

    def __call__(self, parser, namespace, values, option_string=None):
        self.full().print_help()
        parser.exit()


# A pip install has no README or docs/ folder: --help names the site (an argparse_callback may
# set the parser's epilog to the script's own).
EPILOG = f"every flag, its config key and environment variable:\n  {DOCS_URL}/flags.html"
USAGE = ("%(prog)s [your script's flags] [--sagemaker-run {no,yes,local}] [--sagemaker-FLAG VALUE ...]\n"
         "  --help shows the common flags; --help-all shows every flag")


def build_parser(definition: ScriptDefinition, defaults: dict, prog: str = None,
                 show_all: bool = False) -> argparse.ArgumentParser:
    validate_definition(definition)
    parser = _Parser(prog=prog, description=definition.description, allow_abbrev=False, usage=USAGE,
                     epilog=EPILOG, formatter_class=_HelpFormatter)
    _user_arguments(parser, definition)
    for action in parser._actions:
        action.atr_script_flag = True  # the script's own: _HelpFormatter shows its default
    user_flags = {s: a for s, a in parser._option_string_actions.items() if s not in ("-h", "--help")}
    user_dests = {a.dest: a for a in parser._actions if a.dest != "help"}
    parser.atr_user_dests = tuple(user_dests)
    if show_all:
        groups = {g: parser.add_argument_group(f"aws-train-remote: {g}") for g in GROUPS}
    else:
        common = parser.add_argument_group(
            "aws-train-remote (the common flags; --help-all lists all "
            f"{sum(len(o.flags) for o in OPTIONS)} flags and their groups)")
        groups = {g: common for g in GROUPS}
        groups["data"] = parser.add_argument_group("aws-train-remote: data and outputs")
    taken_help_all = "--help-all" in parser._option_string_actions
    taken_flags = {flag: "the script's flag " + flag for flag in user_flags}
    taken_dests = {dest: "the script's argument " + ("/".join(a.option_strings) or dest) + f" (args.{dest})"
                   for dest, a in user_dests.items()}
    if not taken_help_all:
        parser.add_argument("--help-all", action=_HelpAll, help="show every flag and exit",
                            full=lambda: build_parser(definition, defaults, prog, show_all=True))
    for group, flags, kwargs, owner in _generated(definition, defaults, show_all):
        if kwargs.pop("atr_compat", False) and (set(flags) & set(taken_flags) or kwargs["dest"] in taken_dests):
            continue  # an old flag the script defines itself: the script's own meaning wins
        if not definition.enable_sagemaker and group != "data":
            continue
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
