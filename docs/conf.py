"""Sphinx configuration: the user guide (Markdown through MyST) and a reference generated from the
code — the flag table (flags.md, rendered from the option table), the CLI (from its parsers, at
build time) and the Python API (from docstrings). Built with warnings as errors by the tests."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "aws-train-remote"
author = "aws-train-remote developers"
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated/README.md"]
html_theme = "furo"
html_title = "aws-train-remote"
myst_heading_anchors = 3
autodoc_member_order = "bysource"


def write_cli_reference(app):
    """reference/cli-generated.md: every subcommand's --help, straight from the parsers."""
    import argparse

    from aws_train_remote.cli.main import build_parser

    parser = build_parser()
    lines = ["# CLI reference (generated)", "", "Generated from the parsers of `aws-train-remote` at build time.", "",
             "## aws-train-remote", "", "```text", parser.format_help().rstrip(), "```", ""]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        lines += [f"## {name}", "", "```text", command.format_help().rstrip(), "```", ""]
    path = os.path.join(app.srcdir, "reference", "cli-generated.md")
    text = "\n".join(lines)
    if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


def setup(app):
    app.connect("builder-inited", write_cli_reference)
