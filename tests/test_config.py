"""Configuration: redis.conf syntax (quotes, units, include, yes/no), sources in order
(defaults, file, command line), ``file:line: reason`` for bad values, CONFIG SET checks."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trioredis.cli import parse_arguments
from trioredis.config import (
    ENCODING_ERRORS,
    ConfigError,
    config_lines,
    config_repr,
    format_value,
    load_config,
    parse_memory,
    replace_options,
    table_of,
)
from trioredis.resp import split_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


# The defaults with the built-in plugins (the AOF's and snapshot's options are theirs).
DEFAULTS = load_config().config


def test_defaults_follow_redis():
    config = DEFAULTS
    assert config.port == 6379 and config.databases == 16 and config.hz == 10
    assert config.maxclients == 10000 and config.proto_max_bulk_len == 512 * 1024 * 1024
    assert config.client_query_buffer_limit == 1024**3 and config.appendfsync == "everysec"


def test_file_with_comments_quotes_units_and_yes_no(tmp_path):
    path = write(tmp_path / "a.conf", """
# a comment
   # an indented comment

port 7001
maxmemory 64mb
auto-aof-rewrite-min-size 1gb
proto-max-bulk-len 2MB
client-query-buffer-limit 1500k
appendonly YES
protected-mode no
logfile "/tmp/with space.log"
requirepass 'it\\'s'
dbfilename "dump \\x41.trdb"
""")
    config = load_config(path).config
    assert config.port == 7001
    assert config.maxmemory == 64 * 1024 * 1024
    assert config.auto_aof_rewrite_min_size == 1024**3
    assert config.proto_max_bulk_len == 2 * 1024 * 1024
    assert config.client_query_buffer_limit == 1_500_000  # k is 1000, kb is 1024
    assert config.appendonly is True and config.protected_mode is False
    assert config.logfile == "/tmp/with space.log"
    assert config.dbfilename == "dump A.trdb" and config.requirepass == "it's"


def test_units_as_redis_reads_them():
    assert parse_memory("1k") == 1000 and parse_memory("1kb") == 1024
    assert parse_memory("1m") == 1000**2 and parse_memory("1mb") == 1024**2
    assert parse_memory("1g") == 1000**3 and parse_memory("1GB") == 1024**3
    assert parse_memory("42") == 42


def test_save_lines_accumulate_and_empty_save_disables(tmp_path):
    config = load_config(write(tmp_path / "a.conf", "save 900 1\nsave 300 10\n")).config
    assert config.save == [(900, 1), (300, 10)]
    config = load_config(write(tmp_path / "b.conf", 'save ""\n')).config
    assert config.save == []
    config = load_config(write(tmp_path / "c.conf", "save 3600 1 300 100\n")).config
    assert config.save == [(3600, 1), (300, 100)]


def test_include_then_later_lines_win(tmp_path):
    included = write(tmp_path / "base.conf", "port 7100\nhz 20\n")
    path = write(tmp_path / "main.conf", f"include {included}\nport 7200\n")
    config = load_config(path).config
    assert (config.port, config.hz) == (7200, 20)


def test_command_line_overrides_the_file(tmp_path):
    path = write(tmp_path / "a.conf", "port 7001\nappendonly no\n")
    conf, lines = parse_arguments([path, "--port", "7002", "--appendonly", "yes", "--save", ""])
    config = load_config(conf, lines).config
    assert config.port == 7002 and config.appendonly is True and config.save == []


def test_command_line_without_a_file():
    conf, lines = parse_arguments(["--port", "7777", "--bind", "127.0.0.1", "::1"])
    assert conf is None
    config = load_config(conf, lines).config
    assert config.port == 7777 and config.bind == ["127.0.0.1", "::1"]


def test_rename_command_is_recorded(tmp_path):
    loaded = load_config(write(tmp_path / "a.conf", "rename-command FLUSHALL \"\"\n"))
    assert loaded.renamed_commands == {"flushall": ""}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("port abc", "argument couldn't be parsed into an integer"),
        ("port 70000", "argument must be between 0 and 65535 inclusive"),
        ("maxmemory lots", "argument must be a memory value"),
        ("appendonly maybe", "argument must be 'yes' or 'no'"),
        ("appendfsync sometimes", "argument(s) must be one of the following: everysec, always, no"),
        ("nosuchoption 1", "Bad directive or wrong number of arguments"),
        ("save 100", "Invalid save parameters"),
        ("timeout -1", "argument must be between 0 and 2147483647 inclusive"),
        ("proto-max-bulk-len 1000", "argument must be between 1048576 and"),
        ('dir "unbalanced', "unbalanced quotes in configuration line"),
    ],
)
def test_bad_value_names_file_and_line(tmp_path, line, reason):
    path = write(tmp_path / "bad.conf", f"# first\nport 7000\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: "), message
    assert reason in message


def test_bad_value_in_an_included_file_names_that_file(tmp_path):
    included = write(tmp_path / "inc.conf", "hz 10\nport nope\n")
    path = write(tmp_path / "main.conf", f"include {included}\n")
    with pytest.raises(ConfigError, match=rf"^{included}:2: "):
        load_config(path)


def test_bad_command_line_value_says_command_line():
    with pytest.raises(ConfigError, match="^command line: argument couldn't be parsed"):
        load_config(None, [["port", "x"]])


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="can't open config file"):
        load_config(str(tmp_path / "absent.conf"))


def test_hz_is_clamped_like_redis():
    assert load_config(None, [["hz", "0"]]).config.hz == 1
    assert load_config(None, [["hz", "100000"]]).config.hz == 500


def test_documented_default_file_loads():
    config = load_config(os.path.join(REPO, "config", "trioredis.conf")).config
    assert config.port == 6379
    assert (config.enable_protected_configs, config.enable_debug_command) == ("no", "no")


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(os.path.join(REPO, "config"))
                                        if n.endswith(".conf")))
def test_every_sample_config_loads_and_sets_only_options_with_effect(name):
    loaded = load_config(os.path.join(REPO, "config", name))
    assert loaded.without_effect == ()


def test_every_option_survives_rewrite_then_parse(tmp_path):
    """What CONFIG REWRITE writes for each option reads back as the same value."""
    config = DEFAULTS
    for option in table_of(config).options.values():
        path = tmp_path / "one.conf"
        path.write_text("\n".join(config_lines(config, option)) + "\n")
        reread = load_config(str(path)).config
        assert format_value(reread, option.name) == format_value(config, option.name), option


# --- CONFIG SET ----------------------------------------------------------------------------


def test_config_set_builds_a_new_validated_config():
    old = DEFAULTS
    new = replace_options(old, {"maxmemory": "10mb", "hz": "50", "appendfsync": "always"})
    assert new.maxmemory == 10 * 1024 * 1024 and new.hz == 50 and new.appendfsync == "always"
    assert old.maxmemory == 0  # frozen: the old one is untouched


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nosuch": "1"}, "Unknown option or number of arguments for CONFIG SET - 'nosuch'"),
        ({"databases": "4"},
         "CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config"),
        ({"port": "x"},
         "CONFIG SET failed (possibly related to argument 'port') - argument couldn't be parsed "
         "into an integer"),
        ({"maxmemory-policy": "random"},
         "CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must "
         "be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, "
         "allkeys-lru, allkeys-lfu, allkeys-random, noeviction"),
        ({"maxclients": "0"},
         "CONFIG SET failed (possibly related to argument 'maxclients') - argument must be "
         "between 1 and 4294967295 inclusive"),
    ],
)
def test_config_set_refusals_have_redis_messages(changes, message):
    with pytest.raises(ConfigError) as info:
        replace_options(DEFAULTS, changes)
    assert str(info.value) == message


def test_config_set_save_takes_pairs_or_empty():
    assert replace_options(DEFAULTS, {"save": "60 5 10 1000"}).save == [(60, 5), (10, 1000)]
    assert replace_options(DEFAULTS, {"save": ""}).save == []
    with pytest.raises(ConfigError, match="Invalid save parameters"):
        replace_options(DEFAULTS, {"save": "60"})


# --- quoting: what CONFIG REWRITE writes reads back as the same bytes ---------------------------


@settings(max_examples=500, deadline=None)
@given(value=st.binary(max_size=64) | st.text(max_size=32).map(str.encode))
def test_any_value_quoted_as_sdscatrepr_reads_back_as_itself(value):
    text = value.decode("utf-8", ENCODING_ERRORS)
    quoted = config_repr(text)
    assert quoted.isascii() and quoted.isprintable()  # one line, whatever the value holds
    assert split_args(b"name " + quoted.encode()) == [b"name", value]


def test_sdscatrepr_escapes_as_redis():
    assert config_repr('a"b\\c\n\r\t\a\b\x00\x7f\u00e9') == (
        '"a\\"b\\\\c\\n\\r\\t\\a\\b\\x00\\x7f\\xc3\\xa9"')
