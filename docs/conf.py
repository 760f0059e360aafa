"""Sphinx configuration: the user guide (Markdown through MyST) and a reference generated from the
code — the flag table (flags.md, rendered from the option table), the CLI (from its parsers, at
build time) and the Python API (from docstrings). Built with warnings as errors by the tests."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from aws_train_remote._version import DOCS_URL, __version__  # noqa: E402  (after the path above)

project = "aws-train-remote"
author = "aws-train-remote developers"
copyright = f"2026, {author}"
version = release = __version__
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated/README.md"]
# `--sagemaker-run` must stay two hyphens and quotes stay straight: smart quotes turned "--" into an
# en dash in 14 places and a copied flag failed (issue 21.2); tests/test_docs.py checks every page.
smartquotes = False
html_theme = "furo"
html_title = f"aws-train-remote {release}"
html_baseurl = DOCS_URL + "/"
html_static_path = ["_static"]
html_css_files = ["atr.css"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
# argparse wraps --help to the terminal's width; the reference is written at 80 columns whatever
# terminal builds it, so its code blocks fit the page without a sideways scroll.
CLI_COLUMNS = "80"


def write_cli_reference(app):
    """reference/cli-generated.md: every subcommand's --help, straight from the parsers."""
    import argparse

    from aws_train_remote.cli.main import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = CLI_COLUMNS
    try:
        parser = build_parser()
        lines = ["# CLI reference (generated)", "",
                 f"Generated from the parsers of `aws-train-remote` at build time, at {CLI_COLUMNS} columns.", "",
                 "## aws-train-remote", "", "```text", parser.format_help().rstrip(), "```", ""]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, command in sub.choices.items():
            lines += [f"## {name}", "", "```text", command.format_help().rstrip(), "```", ""]
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    path = os.path.join(app.srcdir, "reference", "cli-generated.md")
    text = "\n".join(lines)
    if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


def setup(app):
    app.connect("builder-inited", write_cli_reference)
