# Metadata lives in pyproject.toml; this file only names the cffi extension.
from setuptools import setup

setup(cffi_modules=["native/build.py:ffibuilder"])
