"""A plugin's own options (``trioredis_add_options``): known to the config file (even before
the ``loadplugin`` line), the command line, CONFIG GET/SET/REWRITE, with core's checks (a
``FILENAME`` option is never a path, ``PROTECTED`` and ``IMMUTABLE`` as core's own); the AOF's
and the snapshot's options are declared this way."""

from __future__ import annotations

import os
import sys

import pytest
import redis
from servers import ServerProcess, ServerThread
from trioredis.config import CORE_TABLE, ConfigError, load_config, read_config_lines, table_of

TEST_PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins")
MEMORY_ONLY = [["save", ""], ["appendonly", "no"]]


@pytest.fixture
def plugins_on_path(monkeypatch):
    monkeypatch.syspath_prepend(TEST_PLUGINS)
    yield
    for module in ("trioredis_options", "trioredis_options_clash"):
        sys.modules.pop(module, None)


def test_the_persistence_plugins_declare_their_options():
    table = table_of(load_config().config)
    assert {"appendonly", "appendfsync", "save", "dbfilename"} <= set(table.options)
    assert not {"appendonly", "appendfsync", "save", "dbfilename"} & set(CORE_TABLE.options)


def test_options_before_their_loadplugin_line_are_known(tmp_path, plugins_on_path):
    path = tmp_path / "a.conf"
    path.write_text("options-demo-level 7\noptions-demo-old FAST\nloadplugin trioredis_options\n")
    config = load_config(str(path)).config
    assert (config.options_demo_level, config.options_demo_mode) == (7, "fast")
    assert config.options_demo_filename == "demo.log"
    for line, reason in [("options-demo-level 11", "argument must be between 0 and 10 inclusive"),
                         ("options-demo-filename ../x", "options-demo-filename can't be a path, "
                                                        "just a filename")]:
        path.write_text(f"loadplugin trioredis_options\n{line}\n")
        with pytest.raises(ConfigError, match=f"{path}:2: {reason}"):
            load_config(str(path))


def test_a_plugin_cannot_declare_an_existing_option(plugins_on_path):
    with pytest.raises(ConfigError, match="'maxclients' is already declared"):
        load_config(None, [["loadplugin", "trioredis_options_clash"]])


def test_config_get_and_set_of_plugin_options(tmp_path, plugins_on_path):
    import trioredis_options

    trioredis_options.SEEN.clear()
    with ServerThread([*MEMORY_ONLY, ["dir", str(tmp_path)],
                       ["loadplugin", "trioredis_options"]]) as server:
        server.wait_ready()
        client = server.client(decode_responses=True)
        assert client.config_get("options-demo-*") == {
            "options-demo-level": "3", "options-demo-mode": "safe", "options-demo-old": "safe",
            "options-demo-filename": "demo.log", "options-demo-archive": "archive.log",
            "options-demo-shards": "4"}
        assert client.config_set("options-demo-level", "9") is True
        assert client.execute_command("CONFIG", "SET", "OPTIONS-DEMO-OLD", "Fast") == "OK"
        assert trioredis_options.SEEN[-2:] == [(9, "safe"), (9, "fast")]
        refusals = {
            ("options-demo-level", "11"): "argument must be between 0 and 10 inclusive",
            ("options-demo-mode", "x"): "argument(s) must be one of the following: fast, safe",
            ("options-demo-filename", "/etc/x.pth"):
                "options-demo-filename can't be a path, just a filename",
            ("options-demo-archive", "a.log"): "can't set protected config",
            ("options-demo-shards", "5"): "can't set immutable config",
        }
        for (name, value), reason in refusals.items():
            with pytest.raises(redis.ResponseError) as raised:
                client.config_set(name, value)
            assert str(raised.value) == (
                f"CONFIG SET failed (possibly related to argument '{name}') - {reason}")
        assert client.config_get("options-demo-level")["options-demo-level"] == "9"


def test_plugin_options_survive_rewrite_and_restart(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("loadplugin trioredis_options\nappendonly no\nsave \"\"\n")
    env = {"PYTHONPATH": os.pathsep.join([TEST_PLUGINS, os.environ.get("PYTHONPATH", "")])}
    server = ServerProcess(str(tmp_path), config_path=str(conf), env=env).start()
    try:
        client = server.client(decode_responses=True)
        client.config_set("options-demo-level", "0")
        client.config_set("options-demo-filename", 'odd "name"\n.log')
        assert client.config_rewrite() in (True, "OK")
    finally:
        server.stop()
    lines = {words[0]: words[1:] for words, _ in read_config_lines(str(conf))}
    assert lines["options-demo-level"] == ["0"]
    server = ServerProcess(str(tmp_path), config_path=str(conf), env=env).start()
    try:
        client = server.client(decode_responses=True)
        assert client.config_get("options-demo-level", "options-demo-filename") == {
            "options-demo-level": "0", "options-demo-filename": 'odd "name"\n.log'}
    finally:
        server.stop()
