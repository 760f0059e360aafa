"""A small package in a src/ layout: importable only once installed (or with src/ on the path)."""
__version__ = "0.3.0"
