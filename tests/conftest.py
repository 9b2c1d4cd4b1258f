import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from servers import ServerThread  # noqa: E402


@pytest.fixture
def server(tmp_path):
    """A fresh in-memory server (no persistence) on its own port and directory."""
    with ServerThread([["save", ""], ["appendonly", "no"], ["dir", str(tmp_path)]]) as running:
        running.wait_ready()
        yield running


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One in-memory server for a whole module (its tests use their own keys and channels)."""
    directory = tmp_path_factory.mktemp("shared")
    with ServerThread([["save", ""], ["appendonly", "no"], ["dir", str(directory)]]) as running:
        running.wait_ready()
        yield running


@pytest.fixture
def spawned():
    """Server processes a test started: killed at teardown whatever happened, so a failing
    test never leaves a server behind."""
    servers = []
    yield servers
    for server in servers:
        server.kill()


@pytest.fixture
def r(server):
    client = server.client(decode_responses=False)
    yield client
    client.close()


@pytest.fixture
def redis_cli():
    path = shutil.which("redis-cli")
    if path is None:
        pytest.skip("redis-cli is not installed (Debian package redis-tools); `make test` installs it")
    return path


@pytest.fixture
def recorded(tmp_path):
    """An in-memory server with the ``listhash_recorder`` plugin loaded: tests read what it
    propagated through ``listhash_recorder.propagated()``."""
    import listhash_recorder

    options = [["save", ""], ["appendonly", "no"], ["dir", str(tmp_path)],
               ["loadplugin", "listhash_recorder"]]
    listhash_recorder.PROPAGATED.clear()
    with ServerThread(options) as running:
        running.wait_ready()
        yield running
