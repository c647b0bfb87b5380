"""Packaging for ddctl, the host tool. The engine (engine/) runs inside the image only;
its files and the Dockerfile travel with the package as the build context of that image."""

import glob
import os
import re

from setuptools import find_packages, setup

with open("ddctl/__init__.py") as f:
    VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

setup(
    name="ddctl",
    version=VERSION,
    description="DeepDream pictures with Docker: doctor, build and run the dream image",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["ddctl", "ddctl.*"]),
    # The image's build context (Dockerfile, engine/, provision helpers) is installed as
    # data so that `pip install .` followed by `ddctl build` works outside a checkout.
    data_files=[
        ("share/ddctl", [f for f in ("Dockerfile", ".dockerignore") if os.path.exists(f)]),
        ("share/ddctl/engine", glob.glob("engine/*.py")),
        ("share/ddctl/provision", glob.glob("provision/*")),
        ("share/ddctl/weights", glob.glob("weights/*")),
    ],
    install_requires=[
        "docker>=7.1",  # the Docker SDK: every talk with the Engine goes through it
        "rich>=13",  # progress bars, tables and one-screen doctor reports
        "requests>=2.28",  # fetching the input picture on the host (timeouts, redirects)
        "pillow>=9",  # verifying that a download is a picture before any container starts
        "cryptography>=41",  # reading TLS certificates in `ddctl doctor` (SANs, expiry, key match)
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "numpy",  # the engine's numpy code is unit-tested on the host
            "scipy",  # the notebook transcription in tests uses scipy.ndimage.zoom for real
            # tests/lint.sh, pinned so that a new release never fails a clean clone by itself
            "ruff==0.17.6",
            "mypy==1.18.2",  # mypy 2 can no longer check for Python 3.9 (the image's, and the floor)
            "types-requests",
        ],
    },
    entry_points={"console_scripts": ["ddctl = ddctl.cli:main"]},
)
