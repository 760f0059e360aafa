"""docs/flags.md, rendered from the option table (python -m aws_train_remote.spec.docs)."""
from __future__ import annotations

from .options import GROUPS, OPTIONS


def _default(option) -> str:
    value = option.default
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "yes" if value else "no"
    return f"default `{value}`"


def _row(option) -> str:
    """Two columns, so the page reads at 800 px: the flag and its aliases (never broken at a hyphen:
    docs/_static/atr.css keeps a table's first column whole), then what it does with its default,
    config key and environment variable on a line of their own."""
    flag = "<br>".join(f"`{name}`" for name in (option.flag, *(f"--{a}" for a in option.aliases)))
    meaning = option.help.replace("|", "\\|")
    if option.choices:
        meaning += " (" + ", ".join(option.choices) + ")"
    where = [_default(option)] if option.default is not None else []
    where += [f"config key `{option.key}`", f"env `{option.env_var}`"] if option.configurable else ["command line only"]
    return f"| {flag} | {meaning}<br>{' · '.join(where)} |"


def render_flags_markdown() -> str:
    lines = [
        "# Flags, config keys and environment variables",
        "",
        "Generated from `aws_train_remote/spec/options.py` by `python -m aws_train_remote.spec.docs`;",
        "a test fails when this file and the table disagree.",
        "",
        "Every option can be set, in rising precedence, by its built-in default, a `training_main(...)`",
        "keyword (the config key), a config file (`aws-train-remote.yaml` next to the script, or",
        "`--sagemaker-config FILE`, over `~/.config/aws-train-remote/config.yaml`), an environment",
        "variable, and the command line. Booleans accept yes/no/true/false/1/0/on/off in any case, and",
        "a bare flag means yes. Remote runs also read the SageMaker SDK's `~/.config/sagemaker/config.yaml`",
        "(role, VPC, KMS keys, environment, tags, default bucket) below everything else.",
        "",
        "Per script, `inputs={name: path}` adds `--<name>` (local path or `s3://` URI), `--<name>-mode`",
        "(File, FastFile, Pipe) and `--<name>-distribution` (replicated, or sharded: ShardedByS3Key, each",
        "instance gets about 1/N of the files; `input_distributions={name: ...}` sets the default);",
        "`dependencies={name: folder}` adds `--<name>`.",
        "",
    ]
    for group in GROUPS:
        rows = [o for o in OPTIONS if o.group == group]
        if not rows:
            continue
        lines += [f"## {group}", "", "| flag | what it does; default, config key, environment variable |", "|---|---|"]
        lines += [_row(o) for o in rows]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_flags_markdown(), end="")
