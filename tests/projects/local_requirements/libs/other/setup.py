import re

from setuptools import setup

with open("other/__init__.py") as fh:
    version = re.search(r'__version__ = "(.+)"', fh.read()).group(1)

setup(name="other", version=version, packages=["other"])
