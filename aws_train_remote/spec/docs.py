"""docs/flags.md, rendered from the option table (python -m aws_train_remote.spec.docs)."""
from __future__ import annotations

from .options import GROUPS, OPTIONS


def _default(option) -> str:
    value = option.default
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"`{value}`"


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
        lines += [f"## {group}", "", "| flag | config key / env | default | meaning |", "|---|---|---|---|"]
        for o in rows:
            flag = f"`{o.flag}`" + "".join(f"<br>`--{a}`" for a in o.aliases)
            key = f"`{o.key}`<br>`{o.env_var}`" if o.configurable else "(command line only)"
            meaning = o.help.replace("|", "\\|")
            if o.choices:
                meaning += " (" + ", ".join(o.choices) + ")"
            lines.append(f"| {flag} | {key} | {_default(o)} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_flags_markdown(), end="")
