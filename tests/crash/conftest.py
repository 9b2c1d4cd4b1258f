"""The crash suite: the server as a subprocess, killed with SIGKILL at random moments."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from power import SHIM  # noqa: E402


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    gcc = "gcc"
    directory = tmp_path_factory.mktemp("shim")
    source = directory / "fsync_shim.c"
    source.write_text(SHIM)
    library = directory / "fsync_shim.so"
    try:
        subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot build the fsync shim: {error}")
    return library
