"""Configuration as an attack surface (issue #12): CONFIG SET cannot point a file outside dir,
dir and dbfilename are protected configs, CONFIG REWRITE cannot be made to write a directive,
DEBUG is off unless enable-debug-command allows it.  Replies are compared byte for byte with
Debian's redis-server 7.0.15 where Redis has the same rule."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
import redis
from parity import RawClient, ReferenceRedis
from servers import ServerProcess, ServerThread, wait_for
from trioredis.acl import is_local_client
from trioredis.client import Client
from trioredis.config import read_config_lines

MEMORY_ONLY = [["save", ""], ["appendonly", "no"]]

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")


def _ours(tmp_path, *options: list[str]) -> ServerThread:
    server = ServerThread([*MEMORY_ONLY, ["dir", str(tmp_path)], *options]).start()
    server.wait_ready()
    return server


def _same_replies(our_port: int, their_port: int, commands: list[tuple]) -> list[bytes]:
    """Each command on both servers; asserts identical reply bytes; returns ours."""
    replies = []
    with RawClient(our_port) as ours, RawClient(their_port) as theirs:
        for command in commands:
            mine, reference = ours.call(*command), theirs.call(*command)
            assert mine == reference, (command, mine, reference)
            replies.append(mine)
    return replies


# --- A1: protected configs and file names ---------------------------------------------------


@needs_redis
def test_dir_and_dbfilename_are_protected_by_default_as_in_redis(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    server = _ours(tmp_path / "data")
    try:
        with ReferenceRedis() as reference:
            replies = _same_replies(server.port, reference.port, [
                ("CONFIG", "SET", "dir", str(other)),
                ("CONFIG", "SET", "DIR", "/"),
                ("CONFIG", "SET", "dbfilename", "../../x"),
                ("CONFIG", "SET", "dbfilename", "evil.pth"),
                ("CONFIG", "SET", "maxmemory", "1mb", "dir", str(other)),
                ("CONFIG", "SET", "appendfilename", "/abs/path/zz.pth"),
                ("CONFIG", "SET", "appenddirname", "../up"),
                ("CONFIG", "SET", "enable-protected-configs", "yes"),
                ("CONFIG", "SET", "enable-debug-command", "yes"),
                ("CONFIG", "GET", "maxmemory"),
            ])
        assert replies[0] == (b"-ERR CONFIG SET failed (possibly related to argument 'dir') - "
                              b"can't set protected config\r\n")
        assert replies[-1] == b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"  # nothing was set
        client = server.client()
        client.set("k", "v")
        assert client.save() is True
        assert os.listdir(other) == []
        assert os.path.exists(tmp_path / "data" / "dump.rdb")
    finally:
        server.stop()


@needs_redis
def test_file_names_are_never_paths_even_when_protected_configs_are_allowed(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    server = _ours(tmp_path / "data", ["enable-protected-configs", "yes"])
    try:
        with ReferenceRedis("--enable-protected-configs", "yes") as reference:
            replies = _same_replies(server.port, reference.port, [
                ("CONFIG", "SET", "dbfilename", "../../x"),
                ("CONFIG", "SET", "dbfilename", "/abs/path/zz.pth"),
                ("CONFIG", "SET", "dbfilename", "sub\\dir"),
                ("CONFIG", "SET", "dbfilename", "ok.name", "dir", str(tmp_path / "missing")),
                ("CONFIG", "SET", "dir", str(tmp_path / "a-file")),
                ("CONFIG", "SET", "appendfilename", "x.aof"),
            ])
        assert replies[0] == (b"-ERR CONFIG SET failed (possibly related to argument "
                              b"'dbfilename') - dbfilename can't be a path, just a filename\r\n")
        client = server.client()
        assert client.config_get("dbfilename") == {"dbfilename": "dump.rdb"}  # not moved
        # Beyond Redis: '.' and '..' are not file names either.
        for name in ("..", "."):
            with pytest.raises(redis.ResponseError, match="dbfilename can't be empty"):
                client.config_set("dbfilename", name)
        client.set("k", "v")
        assert client.save() is True
        assert sorted(os.listdir(tmp_path / "data")) == ["dump.rdb"]
        assert not os.path.exists(tmp_path / "x")
    finally:
        server.stop()


def test_protected_configs_set_at_runtime_apply_to_the_next_save(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    server = _ours(tmp_path / "data", ["enable-protected-configs", "yes"])
    try:
        client = server.client()
        client.set("k", "v")
        assert client.config_set("dir", str(other)) is True
        assert client.config_set("dbfilename", "moved.trdb") is True
        assert client.config_get("dir") == {"dir": str(other)}
        assert client.save() is True
        assert os.listdir(other) == ["moved.trdb"]
    finally:
        server.stop()


def test_dir_cannot_move_away_from_the_aof_while_it_is_on(tmp_path):
    """The next start would look for the AOF in the new dir and start empty."""
    other = tmp_path / "other"
    other.mkdir()
    server = ServerThread([["save", ""], ["appendonly", "yes"], ["dir", str(tmp_path)],
                           ["enable-protected-configs", "yes"]]).start()
    server.wait_ready()
    try:
        client = server.client()
        with pytest.raises(redis.ResponseError) as raised:
            client.config_set("dir", str(other))
        assert str(raised.value).startswith(
            "CONFIG SET failed (possibly related to argument 'dir') - can't change dir while "
            "appendonly is yes")
        assert client.config_get("dir") == {"dir": str(tmp_path)}
    finally:
        server.stop()


@needs_redis
@pytest.mark.parametrize(("line", "option"), [("dbfilename ../x.rdb", "dbfilename"),
                                              ("appendfilename /tmp/x.aof", "appendfilename"),
                                              ("appenddirname a/b", "appenddirname")])
def test_a_file_name_with_a_path_in_the_config_file_stops_start_up_as_in_redis(
        tmp_path, line, option):
    path = tmp_path / "bad.conf"
    path.write_text(f"port 0\n{line}\n")
    from servers import run_cli

    ours = run_cli("--test-config", str(path))
    assert ours.returncode == 1
    reason = ours.stderr.strip().splitlines()[-1].split(": ", 1)[1]
    theirs = _redis_start_error(tmp_path, path)
    assert reason in theirs, (reason, theirs)
    assert f"{option} can't be a path" in reason


def _redis_start_error(tmp_path, path) -> str:
    done = subprocess.run(["redis-server", str(path)], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)
    assert done.returncode != 0
    return done.stdout + done.stderr


def test_local_means_loopback_or_unix_socket():
    assert is_local_client(Client(None, "127.0.0.1:5000"))
    assert is_local_client(Client(None, "127.1.2.3:5000"))
    assert is_local_client(Client(None, "[::1]:5000"))
    assert is_local_client(Client(None, "/unixsocket:0"))
    assert not is_local_client(Client(None, "192.0.2.2:5000"))
    assert not is_local_client(Client(None, "[fd00::2]:5000"))
    assert not is_local_client(Client(None, ""))


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks a route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_local_allows_loopback_clients_only(tmp_path):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this machine")
    server = _ours(tmp_path, ["enable-protected-configs", "local"],
                   ["enable-debug-command", "local"], ["protected-mode", "no"],
                   ["bind", "127.0.0.1", address])
    try:
        remote = redis.Redis(host=address, port=server.port)
        with pytest.raises(redis.ResponseError, match="can't set protected config"):
            remote.config_set("dbfilename", "remote.trdb")
        with pytest.raises(redis.ResponseError, match="^DEBUG command not allowed"):
            remote.execute_command("DEBUG", "DIGEST")
        local = server.client()
        assert local.config_set("dbfilename", "local.trdb") is True
        assert local.execute_command("DEBUG", "DIGEST") == b"0" * 40
    finally:
        server.stop()


# --- A2: CONFIG REWRITE cannot write a directive ----------------------------------------------

# Values a client may try: every character str.splitlines splits on, quotes, backslashes,
# NUL, bytes that are not UTF-8, and a value that looks like a directive.
HOSTILE = [
    b"x\nappendonly yes\ndir /tmp",
    b"a\rb\x0bc\x0cd\x1ce\x1df\x1eg",
    "h\x85i\u2028j\u2029k".encode(),
    b'say "hi" \\ \\n \\x41 \'single\'',
    b"nul\0byte",
    b"\xff\xfe not utf-8 \xc2",
    b"  leading and trailing  ",
    b"#not a comment",
    b"",
]
# Mutable string options that hold any bytes (each gets one hostile value).
# masterauth holds any bytes, NUL included (an sds in Redis); the others end at a NUL.
STRING_OPTIONS = ["ignore-warnings", "masteruser", "replica-announce-ip", "tls-ciphers",
                  "masterauth", "cluster-announce-ip", "tls-protocols",
                  "bind-source-addr", "tls-ciphersuites"]


def test_hostile_values_survive_rewrite_and_restart_without_new_directives(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("# the operator's comment\nappendonly no\nsave \"\"\n")
    values = dict(zip(STRING_OPTIONS, HOSTILE, strict=True))
    server = ServerProcess(str(tmp_path), config_path=str(conf)).start()
    try:
        with RawClient(server.port) as raw:
            for option, value in values.items():
                assert raw.call("CONFIG", "SET", option, value) == b"+OK\r\n"
            assert raw.call("CONFIG", "REWRITE") == b"+OK\r\n"
    finally:
        server.stop()
    text = conf.read_bytes()
    assert text.isascii() and b"\0" not in text
    assert text.startswith(b"# the operator's comment\nappendonly no\nsave \"\"\n")
    names = [words[0] for words, _ in read_config_lines(str(conf))]
    # One line per option and nothing else: no "appendonly yes", no second dir (an option
    # set to its default, "", is not written), plus the ACL's ``user default`` line, which
    # Redis's CONFIG REWRITE always writes.
    assert sorted(names) == sorted(["appendonly", "save", "dir", "port", "bind", "user",
                                    "enable-debug-command", *(o for o, v in values.items() if v)])
    server = ServerProcess(str(tmp_path), config_path=str(conf)).start()
    try:
        with RawClient(server.port) as raw:
            for option, value in values.items():
                expected = b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
                    len(option), option.encode(), len(value), value)
                assert raw.call("CONFIG", "GET", option) == expected, option
            assert raw.call("CONFIG", "GET", "appendonly") == (
                b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n")
    finally:
        server.stop()


@needs_redis
def test_rewritten_lines_are_the_ones_redis_writes(tmp_path):
    """The same CONFIG SET, then CONFIG REWRITE on both servers: the option's line is byte
    for byte Redis's (sdscatrepr quoting)."""
    ours_conf, ref_conf = tmp_path / "ours.conf", tmp_path / "ref.conf"
    ours_conf.write_text("appendonly no\n")
    ref_conf.write_text("appendonly no\n")
    (tmp_path / "ours").mkdir()
    (tmp_path / "ref").mkdir()
    server = ServerProcess(str(tmp_path / "ours"), config_path=str(ours_conf)).start()
    reference = ReferenceRedis(directory=str(tmp_path / "ref"), config_path=str(ref_conf))
    reference_port = reference.port
    try:
        for value in HOSTILE[:-1]:
            _same_replies(server.port, reference_port, [
                ("CONFIG", "SET", "ignore-warnings", value),
                ("CONFIG", "REWRITE"),
                ("CONFIG", "GET", "ignore-warnings"),
            ])
            ours = [line for line in ours_conf.read_bytes().split(b"\n")
                    if line.startswith(b"ignore-warnings ")]
            theirs = [line for line in ref_conf.read_bytes().split(b"\n")
                      if line.startswith(b"ignore-warnings ")]
            assert ours == theirs and len(ours) == 1, (value, ours, theirs)
        for conf in (ours_conf, ref_conf):  # an untouched line stays where it was
            assert conf.read_bytes().startswith(b"appendonly no\n")
    finally:
        server.stop()
        reference.stop()


# --- A3: DEBUG is off by default ----------------------------------------------------------------


@needs_redis
def test_debug_is_refused_by_default_with_redis_error_also_inside_multi(tmp_path):
    server = _ours(tmp_path, ["enable-debug-command", "no"])
    try:
        with ReferenceRedis("--enable-debug-command", "no") as reference:
            replies = _same_replies(server.port, reference.port, [
                ("DEBUG", "DIGEST"),
                ("debug", "sleep", "0"),
                ("DEBUG",),
                ("MULTI",),
                ("DEBUG", "DIGEST"),
                ("EXEC",),
                ("CONFIG", "GET", "enable-debug-command"),
            ])
        assert replies[0] == (
            b"-ERR DEBUG command not allowed. If the enable-debug-command option is set to "
            b"\"local\", you can run it from a local connection, otherwise you need to set this "
            b"option in the configuration file, and then restart the server.\r\n")
        assert replies[5].startswith(b"-EXECABORT")
    finally:
        server.stop()


@needs_redis
def test_debug_sleep_with_absurd_durations_answers_as_redis_at_once(tmp_path):
    server = _ours(tmp_path)
    try:
        with ReferenceRedis() as reference:
            started = time.monotonic()
            _same_replies(server.port, reference.port, [
                ("DEBUG", "SLEEP", value)
                for value in ("inf", "-inf", "1e308", "nan", "-1", "abc", "1e18", "0",
                              "0.001", "9.3e12", "1e400")
            ])
            assert time.monotonic() - started < 5
    finally:
        server.stop()


def test_debug_local_from_a_unix_socket(tmp_path):
    path = str(tmp_path / "s.sock")
    server = _ours(tmp_path, ["enable-debug-command", "local"], ["unixsocket", path])
    try:
        client = redis.Redis(unix_socket_path=path)
        assert client.execute_command("DEBUG", "DIGEST") == b"0" * 40
        client.close()
    finally:
        server.stop()


def test_moving_the_snapshot_file_saves_the_dataset_there(tmp_path):
    """After CONFIG SET dbfilename the next start loads the new file: the dataset is saved
    there at once, not left only in the old file."""
    server = _ours(tmp_path, ["enable-protected-configs", "yes"])
    try:
        client = server.client()
        client.set("k", "v")
        assert client.save() is True
        client.set("k2", "v2")
        assert client.config_set("dbfilename", "moved.trdb") is True
        wait_for(lambda: os.path.exists(tmp_path / "moved.trdb"), what="the moved snapshot")
    finally:
        server.stop()
    restarted = _ours(tmp_path, ["dbfilename", "moved.trdb"])
    try:
        assert restarted.client().mget("k", "k2") == [b"v", b"v2"]
    finally:
        restarted.stop()


def test_a_renamed_debug_is_still_gated(tmp_path):
    conf = tmp_path / "renamed.conf"
    conf.write_text("rename-command DEBUG MYDEBUG\n")
    with ServerThread([*MEMORY_ONLY, ["dir", str(tmp_path)], ["enable-debug-command", "no"]],
                      config_path=str(conf)) as server:
        server.wait_ready()
        with pytest.raises(redis.ResponseError, match="^DEBUG command not allowed"):
            server.client().execute_command("MYDEBUG", "DIGEST")
