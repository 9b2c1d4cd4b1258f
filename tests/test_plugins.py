"""Third-party plugins, found the three ways a server finds them: an installed distribution's
entry point in the ``trioredis`` group, a ``loadplugin module.path`` config line, and (for
contrast) the built-ins.

The distributions (tests/plugins/trioredis-testplugin and examples/trioredis-hello) are
installed with pip into a temporary directory that this module puts on ``sys.path`` for its
own tests only, so the rest of the suite (and anyone else's Python) never sees them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys

import hiredis
import pytest
import redis
from servers import ServerProcess, ServerThread, wait_rewrite_done
from trioredis.plugin_manager import PluginLoadError

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
TEST_PLUGINS = os.path.join(TESTS, "plugins")
DISTRIBUTIONS = {
    "trioredis-testplugin": os.path.join(TEST_PLUGINS, "trioredis-testplugin"),
    "trioredis-hello": os.path.join(REPO, "examples", "trioredis-hello"),
}
MEMORY_ONLY = [["save", ""], ["appendonly", "no"]]


def _pip_install(sources: list[str], target: str) -> None:
    """``pip install`` into ``target``.  Without build isolation when the setuptools here can
    build a wheel by itself (saves fetching setuptools from PyPI); else the usual isolated
    build, which needs PyPI."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
               "--disable-pip-version-check", "--no-warn-script-location", "--target", target]
    if importlib.util.find_spec("wheel") is not None:
        command.append("--no-build-isolation")
    subprocess.run([*command, *sources], check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The test distributions, pip-installed into a directory on ``sys.path`` for this module."""
    base = tmp_path_factory.mktemp("plugin-site")
    sources = []
    for name, path in DISTRIBUTIONS.items():
        # Build from a copy: setuptools leaves build/ and *.egg-info next to the sources.
        copy = base / "src" / name
        shutil.copytree(path, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        sources.append(str(copy))
    target = str(base / "site")
    try:
        _pip_install(sources, target)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"pip install failed:\n{error.stderr.decode(errors='replace')}")
    sys.path.insert(0, target)
    importlib.invalidate_caches()
    yield target
    sys.path.remove(target)
    for module in ("trioredis_testplugin", "trioredis_hello"):
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


@pytest.fixture
def test_plugins_on_path(monkeypatch):
    """tests/plugins importable, for ``loadplugin`` lines."""
    monkeypatch.syspath_prepend(TEST_PLUGINS)
    yield
    for module in ("trioredis_loadme", "trioredis_mirror", "trioredis_hookspy"):
        sys.modules.pop(module, None)


def running(options, tmp_path):
    server = ServerThread([*MEMORY_ONLY, ["dir", str(tmp_path)], *options]).start()
    server.wait_ready()
    return server


def raw_client(server: ServerThread) -> redis.Redis:
    """A client that leaves COMMAND's replies as the server sent them (redis-py parses every
    COMMAND reply, subcommands included, as the full COMMAND table)."""
    client = server.client()
    client.set_response_callback("COMMAND", lambda response, **options: response)
    return client


def command_names(client: redis.Redis) -> set[bytes]:
    return {entry[0] for entry in client.execute_command("COMMAND")}


# --- entry points --------------------------------------------------------------------------


def test_entry_point_plugin_command_works_and_appears_in_command(site, tmp_path):
    server = running([], tmp_path)
    try:
        client = raw_client(server)
        assert client.execute_command("ENTRYPOINT.ECHO", "hi") == b"hi"
        assert b"entrypoint.echo" in command_names(client)
        assert b"entrypoint.echo" in client.execute_command("COMMAND", "LIST")
        info = client.execute_command("COMMAND", "INFO", "entrypoint.echo")
        assert info[0][:2] == [b"entrypoint.echo", 2]
        assert set(info[0][2]) == {b"readonly", b"fast"}
        with pytest.raises(redis.ResponseError) as error:
            client.execute_command("ENTRYPOINT.ECHO")
        assert str(error.value) == "wrong number of arguments for 'entrypoint.echo' command"
        client.close()
    finally:
        server.stop()


def test_example_plugin_adds_command_and_data_type(site, tmp_path):
    server = running([], tmp_path)
    try:
        client = server.client()
        assert client.execute_command("HELLOWORLD") == b"Hello, world!"
        assert client.execute_command("HELLOWORLD", "trio") == b"Hello, trio!"
        assert client.execute_command("COUNTER.INCRBY", "visits", "5") == 5
        assert client.execute_command("COUNTER.INCRBY", "visits", "-2") == 3
        assert client.execute_command("COUNTER.GET", "visits") == 3
        assert client.execute_command("COUNTER.GET", "nothing") is None
        assert client.type("visits") == b"counter"
        client.set("text", "x")
        for args in (("GET", "visits"), ("COUNTER.INCRBY", "text", "1")):
            with pytest.raises(redis.ResponseError) as error:
                client.execute_command(*args)
            assert str(error.value) == ("WRONGTYPE Operation against a key holding the wrong "
                                        "kind of value")
        with pytest.raises(redis.ResponseError) as error:
            client.execute_command("COUNTER.INCRBY", "visits", "+1")
        assert str(error.value) == "value is not an integer or out of range"
        # The rewrite hook: what an AOF rewrite writes for the counter.
        engine = server.server.engine
        value = engine.keyspace[0].data[b"visits"]
        assert engine.rewrite_value(0, b"visits", value, 1700000000000) == [
            [b"COUNTER.INCRBY", b"visits", b"3"], [b"PEXPIREAT", b"visits", b"1700000000000"]]
        assert engine.rewrite_value(0, b"text", b"x", None) == [[b"SET", b"text", b"x"]]
        client.close()
    finally:
        server.stop()


def test_example_plugin_through_redis_cli(site, tmp_path, redis_cli):
    """The example package, pip-installed, in a server started as a process: what a user
    does after ``pip install examples/trioredis-hello``."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))}
    process = ServerProcess(str(tmp_path), MEMORY_ONLY, env=env).start()
    try:
        def cli(*args: str) -> str:
            result = subprocess.run([redis_cli, "-p", str(process.port), *args],
                                    capture_output=True, text=True, timeout=30, check=True)
            return result.stdout.strip()

        assert cli("HELLOWORLD", "trio") == "Hello, trio!"
        assert cli("COUNTER.INCRBY", "visits", "5") == "5"
        assert cli("COUNTER.GET", "visits") == "5"
        assert cli("TYPE", "visits") == "counter"
        assert "helloworld" in cli("COMMAND", "LIST").split()
    finally:
        process.stop()


def test_server_without_entry_points_ignores_installed_plugins(site):
    from trioredis.plugin_manager import make_plugin_manager, plugin_names

    assert "hello" in plugin_names(make_plugin_manager())
    assert "hello" not in plugin_names(make_plugin_manager(entry_points=False))


# --- loadplugin ----------------------------------------------------------------------------


def test_loadplugin_line_loads_module(test_plugins_on_path, tmp_path):
    server = running([["loadplugin", "trioredis_loadme"]], tmp_path)
    try:
        client = raw_client(server)
        assert client.execute_command("LOADPLUGIN.ECHO", "x") == b"x"
        assert b"loadplugin.echo" in command_names(client)
        info = client.execute_command("COMMAND", "INFO", "loadplugin.echo", "nosuch")
        assert info[0][:2] == [b"loadplugin.echo", 2] and info[1] is None
        client.close()
    finally:
        server.stop()


def test_loadplugin_of_missing_module_stops_start_up(tmp_path):
    server = ServerThread([*MEMORY_ONLY, ["dir", str(tmp_path)],
                           ["loadplugin", "trioredis_no_such_plugin"]])
    with pytest.raises(BaseException) as raised:
        server.start()
    errors = list(_leaves(raised.value))
    assert [type(error) for error in errors] == [PluginLoadError]
    assert str(errors[0]) == ("loadplugin trioredis_no_such_plugin: "
                              "No module named 'trioredis_no_such_plugin'")


def _leaves(error: BaseException):
    """The exceptions inside (nested) exception groups: trio reports start-up errors in one."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


# --- a persistence backend as a plugin -----------------------------------------------------


def _mirror(server: ServerThread):
    (backend,) = [b for b in server.server.engine.backends if b.name == "mirror"]
    return backend


def _read_commands(path) -> list[list[bytes]]:
    reader = hiredis.Reader()
    reader.feed(path.read_bytes())
    commands = []
    while (argv := reader.gets()) is not False:
        commands.append(argv)
    return commands


def test_mirror_backend_receives_writes_and_loads_them_back(test_plugins_on_path, tmp_path):
    options = [["loadplugin", "trioredis_mirror"]]
    server = running(options, tmp_path)
    try:
        client = server.client()
        client.set("a", "1")
        client.incrbyfloat("f", 1.5)
        client.execute_command("SELECT", "1")
        client.set("b", "2")
        client.get("a")  # a read propagates nothing
        mirror = _mirror(server)
        assert mirror.running
        assert mirror.commands_fed == 3
        assert client.info("persistence")["mirror_commands_fed"] == 3
        client.close()
    finally:
        server.stop()
    assert _mirror(server).closed
    commands = _read_commands(tmp_path / "mirror.resp")
    # INCRBYFLOAT arrives as its deterministic effect, a SET of the result (as Redis 7).
    assert commands == [
        [b"SELECT", b"0"], [b"SET", b"a", b"1"], [b"SET", b"f", b"1.5", b"KEEPTTL"],
        [b"SELECT", b"1"], [b"SET", b"b", b"2"],
    ]

    server = running(options, tmp_path)
    try:
        client = server.client()
        assert client.get("a") == b"1" and client.get("f") == b"1.5"
        client.execute_command("SELECT", "1")
        assert client.get("b") == b"2"
        assert _mirror(server).commands_loaded == 5
        client.execute_command("SELECT", "0")
        client.set("c", "3")
        client.close()
    finally:
        server.stop()
    # After loading, the first new write names its database again.
    assert _read_commands(tmp_path / "mirror.resp")[-2:] == [[b"SELECT", b"0"],
                                                              [b"SET", b"c", b"3"]]


# --- the example data type through the real persistence backends ---------------------------


@pytest.mark.parametrize("mode", ["aof-rewrite", "snapshot"])
def test_example_data_type_survives_restart(site, tmp_path, mode):
    """The type hooks end to end: an AOF rewrite writes COUNTER.INCRBY (trioredis_rewrite_value)
    and a snapshot stores the counter (trioredis_snapshot_encode/decode); after a restart the
    dataset digest is the same."""
    options = [["appendonly", "yes" if mode == "aof-rewrite" else "no"], ["dir", str(tmp_path)],
               ["save", ""], ["dbfilename", "dump.trdb"]]  # RDB has no record for a plugin type
    server = ServerThread(options).start()
    server.wait_ready()
    try:
        client = server.client()
        client.execute_command("COUNTER.INCRBY", "visits", "41")
        client.execute_command("COUNTER.INCRBY", "visits", "1")
        client.execute_command("COUNTER.INCRBY", "ttl", "7")
        client.pexpire("ttl", 600_000)
        client.set("plain", "x")
        if mode == "aof-rewrite":
            client.bgrewriteaof()
            wait_rewrite_done(client)
            rewritten = (tmp_path / "appendonly.aof").read_bytes()
            assert b"$14\r\nCOUNTER.INCRBY\r\n$6\r\nvisits\r\n$2\r\n42\r\n" in rewritten
            # One command per counter, not its history (the PEXPIREAT time may hold "41").
            assert rewritten.count(b"$6\r\nvisits\r\n") == 1
        else:
            client.save()
        digest = client.execute_command("DEBUG", "DIGEST")
        assert digest != b"0" * 40
        client.close()
    finally:
        server.stop()
    server = ServerThread(options).start()
    server.wait_ready()
    try:
        client = server.client()
        assert client.execute_command("COUNTER.GET", "visits") == 42
        assert client.type("ttl") == b"counter" and 0 < client.pttl("ttl") <= 600_000
        assert client.execute_command("DEBUG", "DIGEST") == digest
        client.close()
    finally:
        server.stop()


# --- the observer hooks, called when the guide says --------------------------------------


def test_observer_hooks_are_called_as_documented(test_plugins_on_path, tmp_path):
    server = running([["loadplugin", "trioredis_hookspy"], ["appendonly", "yes"]], tmp_path)
    import trioredis_hookspy

    calls = trioredis_hookspy.CALLS
    calls.clear()
    try:
        client = server.client()
        client.set("k", "v", ex=100)
        client.get("k")
        client.config_set("maxclients", 500)
        client.bgrewriteaof()
        wait_rewrite_done(client)
        client.close()
    finally:
        server.stop()
    propagated = [call[1:] for call in calls if call[0] == "propagated"]
    # The deterministic effect: SET with a relative expiry arrives as SET .. PXAT <ms>.
    assert propagated[0][0] == 0 and propagated[0][1][:4] == [b"SET", b"k", b"v", b"PXAT"]
    assert len(propagated) == 1  # GET, CONFIG SET and BGREWRITEAOF change no data
    executed = [call[1] for call in calls if call[0] == "executed"]
    assert [b"SET", b"k", b"v", b"EX", b"100"] in executed and [b"GET", b"k"] in executed
    assert all(call[2] for call in calls if call[0] == "executed")
    assert ("config_changed", 10000, 500) in calls
    assert calls.index(("rewrite_started",)) < calls.index(("rewrite_finished", True, "aof", True))
