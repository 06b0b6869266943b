"""Shim so ``pip install .`` works with older pip/setuptools; metadata lives in pyproject.toml."""
from setuptools import setup

setup()
