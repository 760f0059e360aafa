"""Issue 12.1: the documentation site builds with warnings as errors, so a broken reference, a
drifted include or a docstring that does not render fails the suite. Its flag reference is the
generated docs/flags.md (checked elsewhere) and its CLI reference is generated from the parsers.

Issue 21.2: what a reader sees on the built pages, checked on the one build: no flag whose `--`
became a dash, a flag table whose flags are never broken and which fits the page, a front page
with the picture of the flow, the version and a copyright, and a CLI reference that fits the
page whatever terminal built it."""
import html
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from conftest import REPO

from aws_train_remote._version import __version__

# A dash (or its entity) right where a flag begins: `--sagemaker-run` rendered as `–sagemaker-run`.
# Not after a letter, so prose such as "word—word" is not taken for a flag.
DASHED_FLAG = re.compile(r"(?<![\w])(?:[\u2013\u2014]|&#821[12];|&[nm]dash;)[a-z]")
# A code block of furo's 46em column shows 90 characters before it scrolls (measured in Chromium
# at 800, 1280 and 1920 px); argparse's own text is written at 80 (docs/conf.py), and a raw epilog
# line (an example command, say) may run a little past that but not off the page.
PAGE_COLUMNS = 88


def text_of(page: str) -> str:
    """What a reader sees (and copies): Sphinx splits inline code into one span per word."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_docs_site(tmp_path):
    """One build for every check (a build takes seconds, and tests of one module may run on
    different xdist workers), from a terminal 200 columns wide: the CLI reference must not follow it."""
    site = tmp_path / "html"
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                             f"{REPO}/docs", str(site)], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    cli = (site / "reference" / "cli-generated.html").read_text()
    assert "aws-train-remote logs" in cli and "--tail N" in cli  # generated from the parser, not written
    assert "--sagemaker-model-from" in (site / "flags.html").read_text()
    api = (site / "reference" / "api.html").read_text()
    assert "training_main" in api and "as a SageMaker training job when" in api  # from the docstring
    check_no_page_shows_a_flag_with_a_dash(site)
    check_flag_table_keeps_flags_whole_and_fits(site)
    check_front_page_has_what_a_first_visit_needs(site)
    check_cli_reference_fits_the_page(site)


def check_no_page_shows_a_flag_with_a_dash(site):
    """Smart dashes turned `--sagemaker-run` into `–sagemaker-run` in 14 places; a copied flag then
    fails. conf.py turns them off site-wide; every rendered page is read."""
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 15
    found = [f"{page.relative_to(site)}: {match.group(0)!r} in ...{page.read_text()[max(0, match.start() - 40):match.end() + 20]}..."
             for page in pages for match in DASHED_FLAG.finditer(page.read_text())]
    assert not found, "\n".join(found)
    index = text_of((site / "index.html").read_text())
    assert "--sagemaker-run yes" in index and "--sagemaker-dry-run" in index


class _Tables(HTMLParser):
    """Each table of a page: its header cells, and for each row the markup of its first cell."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell, self._depth = [], None, 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"headers": 0, "first_cells": []})
        elif tag == "th" and self.tables:
            self.tables[-1]["headers"] += 1
        elif tag == "tr":
            self._cell = "row"
        elif tag == "td" and self._cell == "row":
            self._cell, self._depth = [], 0
            return
        if isinstance(self._cell, list):
            self._cell.append((tag, dict(attrs).get("class", "")))

    def handle_endtag(self, tag):
        if tag == "td" and isinstance(self._cell, list):
            self.tables[-1]["first_cells"].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if isinstance(self._cell, list) and data.strip():
            self._cell.append(("text", data.strip()))


def check_flag_table_keeps_flags_whole_and_fits(site):
    """At 1280 px the four-column table was clipped and every flag broke at its hyphens. Now two
    columns (the flag; what it does with its default, config key and environment variable) and a
    stylesheet that keeps a first column's code whole: each first cell holds only flags as code."""
    css = (site / "_static" / "atr.css").read_text()
    rule = re.search(r"article table\.docutils td:first-child code\.literal\s*\{([^}]*)\}", css)
    assert rule and "white-space: nowrap" in rule.group(1)
    assert re.search(r"\.table-wrapper\s*\{[^}]*overflow-x: auto", css)
    page = (site / "flags.html").read_text()
    assert 'href="_static/atr.css' in page
    tables = _Tables()
    tables.feed(page)
    assert len(tables.tables) >= 5
    flags = 0
    for table in tables.tables:
        assert table["headers"] == 2, table
        for cell in table["first_cells"]:
            texts = [value for kind, value in cell if kind == "text"]
            assert texts and all(re.fullmatch(r"--[a-z0-9-]+", text) for text in texts), cell
            assert all(tag in ("p", "code", "span", "br") for tag, _ in cell if tag != "text"), cell
            assert all("literal" in cls for tag, cls in cell if tag == "code"), cell
            flags += len(texts)
    assert flags > 60


def check_front_page_has_what_a_first_visit_needs(site):
    index = (site / "index.html").read_text()
    text = text_of(index)
    assert "training_main(main, inputs=" in text and "Where to go next" in text
    for command in ("python train.py", "python train.py --sagemaker-run local", "python train.py --sagemaker-run yes"):
        assert command in text
    image = re.search(r'<img[^>]*src="(_images/flow\.svg)"[^>]*>', index)
    assert image and 'alt="Your machine uploads' in image.group(0)
    svg = (site / image.group(1)).read_text()
    assert svg.startswith("<svg") and "<title" in svg
    for box in ("your machine", "Amazon S3", "SageMaker training job", "CloudWatch"):
        assert box in svg
    assert f"aws-train-remote {__version__}" in index  # the title shows the version
    assert re.search(r"Copyright &#169; 20\d\d, aws-train-remote developers", index)
    changelog = text_of((site / "changelog.html").read_text())
    assert f"[{__version__}]" in changelog and "Unreleased" in changelog


def check_cli_reference_fits_the_page(site):
    """argparse wraps to the terminal that builds the docs, and raw epilogs not at all: lines
    of up to 132 characters scrolled sideways. The reference is written at 80 columns; hand-wrapped
    epilogs in aws_train_remote/cli/main.py must stay within PAGE_COLUMNS."""
    page = (site / "reference" / "cli-generated.html").read_text()
    blocks = re.findall(r"<pre>(.*?)</pre>", page, re.S)
    assert len(blocks) >= 10
    long = [line for block in blocks for line in text_of(block).splitlines() if len(line) > PAGE_COLUMNS]
    assert not long, f"wrap these lines of --help to {PAGE_COLUMNS} columns:\n" + "\n".join(long)
    listed = re.search(r"usage: aws-train-remote list.*?</pre>", page, re.S).group(0)  # argparse's text only
    assert max(len(line) for line in text_of(listed).splitlines()) <= 80
    assert not (Path(REPO) / "docs" / "reference" / "cli-generated.md").read_text().count("README")
