"""The release's identity: its version (read by setup.cfg, docs/conf.py and `--version`) and the
one address of its documentation, which every `--help` names: a pip user has no README or docs/
folder to look in. setup.cfg's project_urls repeat DOCS_URL (setup.cfg cannot read it from here);
tests/test_packaging.py checks that they agree."""

__version__ = "0.1.0"
DOCS_URL = "https://aws-train-remote.readthedocs.io/en/latest"
