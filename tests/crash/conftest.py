"""The crash suite: the server as a subprocess, killed with SIGKILL at random moments."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def spawned():
    """Servers a test started: killed at teardown whatever happened, so a failing test never
    leaves a server behind."""
    servers = []
    yield servers
    for server in servers:
        server.kill()
