"""The optional compiled accelerator (src/pywasi/_accel.c); everything else is
in pyproject.toml. ``optional=True``: without a working C compiler the build
goes on without it and pywasi uses its pure-Python host-call route."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pywasi._accel", ["src/pywasi/_accel.c"], optional=True)])
