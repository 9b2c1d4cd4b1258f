"""ACL users outside the dataset, beside a real redis-server: the ``aclfile`` (ACL LOAD, ACL
SAVE, start-up) and the config file's ``user`` lines (start-up, CONFIG REWRITE).  Each server
gets the same files in a directory of its own; replies are compared byte for byte, with the
directory's path replaced by a placeholder where Redis names the file."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys

import pytest
from parity import RawClient, ReferenceRedis
from servers import ServerProcess, ServerThread, free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

USERS = (
    "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~app:* "
    "&news +@read -keys\n"
    "user default on nopass ~* &* +@all\n"
    "user worker off resetchannels -@all +get +set (+hget ~h*)\n"
)
BAD_FILES = {
    "comment": "# users\nuser bob on\n",
    "bad-rule": "user bob on +nosuchcommand\nuser carol bogus\n",
    "duplicate": "user bob on\n\nuser bob off\n",
    "no-name": "user\n",
    "tab-in-name": "user bo\tb on\n",
    "doubled-spaces": "user  dave   on  nopass  +@all\n",  # "" is the name, "dave" a rule
    "empty-rules": "user dave on  nopass\n",
}


class Pair:
    """A trioredis thread and a redis-server, each with ``aclfile`` in its own directory."""

    def __init__(self, tmp_path, text: str = USERS) -> None:
        self.ours_dir, self.ref_dir = tmp_path / "ours", tmp_path / "ref"
        self.ours_dir.mkdir()
        self.ref_dir.mkdir()
        for directory in (self.ours_dir, self.ref_dir):
            (directory / "users.acl").write_text(text)
        self.ref = ReferenceRedis("--aclfile", str(self.ref_dir / "users.acl"),
                                  directory=str(self.ref_dir))
        self.ours = ServerThread([["dir", str(self.ours_dir)],
                                  ["aclfile", str(self.ours_dir / "users.acl")]]).start()
        self.ours.wait_ready()

    def replies(self, *argv: str) -> tuple[bytes, bytes]:
        with RawClient(self.ours.port) as ours, RawClient(self.ref.port) as ref:
            return (ours.call(*argv).replace(str(self.ours_dir).encode(), b"<dir>"),
                    ref.call(*argv).replace(str(self.ref_dir).encode(), b"<dir>"))

    def write(self, text: str) -> None:
        for directory in (self.ours_dir, self.ref_dir):
            (directory / "users.acl").write_text(text)

    def files(self) -> tuple[str, str]:
        return ((self.ours_dir / "users.acl").read_text(),
                (self.ref_dir / "users.acl").read_text())

    def close(self) -> None:
        self.ours.stop()
        self.ref.stop()


def commands_in_any_order(reply: bytes) -> bytes:
    """``reply`` with each run of single-command rules (``+set +get``) sorted.  Redis 7.0
    describes the commands of a user it read from a file in its command table's hash order,
    which is random per process (seeded at start): only that order is left out of the
    comparison, every rule and byte count is still compared."""
    single = re.compile(rb"[+-][a-z_|-]+")

    def sorted_runs(line: bytes) -> bytes:
        words: list[bytes] = []
        run: list[bytes] = []
        for word in line.split(b" "):
            if single.fullmatch(word):
                run.append(word)
            else:
                words += sorted(run) + [word]
                run = []
        return b" ".join(words + sorted(run))

    return b"\r\n".join(sorted_runs(line) for line in reply.split(b"\r\n"))


@pytest.fixture
def pair(tmp_path):
    made = Pair(tmp_path)
    yield made
    made.close()


def test_without_an_aclfile_load_and_save_answer_as_redis():
    ours = ServerThread().start()
    ours.wait_ready()
    try:
        with ReferenceRedis() as reference:
            for argv in (("ACL", "LOAD"), ("ACL", "SAVE"), ("ACL", "LOAD", "x"),
                         ("ACL", "SAVE", "x"), ("ACL", "HELP")):
                with RawClient(ours.port) as mine, RawClient(reference.port) as theirs:
                    assert mine.call(*argv) == theirs.call(*argv), argv
    finally:
        ours.stop()


def test_users_of_the_aclfile_are_loaded_at_start_up(pair):
    ours, theirs = pair.replies("ACL", "LIST")
    assert commands_in_any_order(ours) == commands_in_any_order(theirs)
    assert b"user alice" in ours and b"user worker" in ours
    assert pair.replies("AUTH", "alice", "pw") == (b"+OK\r\n", b"+OK\r\n")


def test_save_writes_what_redis_writes(pair):
    for argv in (("ACL", "SETUSER", "zed", "on", ">secret", "~z*", "+@string"),
                 ("ACL", "DELUSER", "worker"), ("ACL", "SAVE")):
        ours, theirs = pair.replies(*argv)
        assert ours == theirs, argv
    ours_file, ref_file = pair.files()
    assert ours_file == ref_file
    assert "user zed" in ours_file and "worker" not in ours_file


def test_load_replaces_the_users_and_closes_their_connections(pair):
    with RawClient(pair.ours.port) as ours_alice, RawClient(pair.ref.port) as ref_alice:
        assert ours_alice.call("AUTH", "alice", "pw") == ref_alice.call("AUTH", "alice", "pw")
        pair.write("user bob on nopass +@all ~*\n")
        assert pair.replies("ACL", "LOAD") == (b"+OK\r\n", b"+OK\r\n")
        ours, theirs = pair.replies("ACL", "LIST")
        assert ours == theirs
        assert b"alice" not in ours and b"user default on nopass" in ours  # a fresh default
        for client in (ours_alice, ref_alice):  # alice's connection was closed by LOAD
            with pytest.raises((ConnectionError, OSError, socket.timeout)):
                client.call("PING")
                client.call("PING")


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_changes_nothing_with_redis_error(pair, name):
    before = pair.replies("ACL", "LIST")
    pair.write(BAD_FILES[name])
    ours, theirs = pair.replies("ACL", "LOAD")
    assert ours == theirs
    if name != "empty-rules":
        assert ours.startswith(b"-ERR ") and pair.replies("ACL", "LIST") == before


def test_an_unclosed_selector_is_an_error_where_redis_crashes(pair):
    """Redis 7.0.15 dies on this file (it walks the selector list it failed to make)."""
    before = pair.replies("ACL", "LIST")[0]
    (pair.ours_dir / "users.acl").write_text("user bob on (+get ~x\n")
    with RawClient(pair.ours.port) as client:
        assert client.call("ACL", "LOAD") == (
            f"-ERR {pair.ours_dir}/users.acl:1: Unmatched parenthesis in selector definition."
            "WARNING: ACL errors detected, no change to the previously active ACL rules was "
            "performed\r\n").encode()
        assert client.call("ACL", "LIST") == before


def test_a_missing_file_is_reported_as_redis_does(pair):
    (pair.ours_dir / "users.acl").unlink()
    (pair.ref_dir / "users.acl").unlink()
    ours, theirs = pair.replies("ACL", "LOAD")
    assert ours == theirs
    assert b"No such file or directory" in ours


def test_user_lines_in_the_config_file_and_config_rewrite(tmp_path):
    lines = ("user alice on >pw ~a* +get\n"
             "port 0\n"
             "user default on nopass ~* &* +@all\n")
    texts = []
    for side in ("ours", "ref"):
        directory = tmp_path / side
        directory.mkdir()
        (directory / "server.conf").write_text(lines.replace("port 0\n", ""))
    ours = ServerThread(config_path=str(tmp_path / "ours" / "server.conf")).start()
    ours.wait_ready()
    try:
        with ReferenceRedis(config_path=str(tmp_path / "ref" / "server.conf"),
                            directory=str(tmp_path / "ref")) as ref:
            with RawClient(ours.port) as mine, RawClient(ref.port) as theirs:
                for argv in (("ACL", "LIST"),
                             ("ACL", "SETUSER", "bob", "on", "nopass", "+@all"),
                             ("CONFIG", "REWRITE"), ("AUTH", "alice", "pw"), ("GET", "apple"),
                             ("SET", "apple", "1")):
                    assert mine.call(*argv) == theirs.call(*argv), argv
            for side in ("ours", "ref"):
                text = (tmp_path / side / "server.conf").read_text()
                texts.append([line for line in text.splitlines() if line.startswith("user ")])
    finally:
        ours.stop()
    assert texts[0] == texts[1]
    assert [line.split()[1] for line in texts[0]] == ["alice", "bob", "default"]


def test_start_up_refuses_users_in_both_places_and_a_bad_aclfile(tmp_path):
    (tmp_path / "users.acl").write_text("user bob on +nosuchcommand\n")
    both = subprocess.run(
        [sys.executable, "-m", "trioredis", "--port", str(free_port()), "--dir", str(tmp_path),
         "--aclfile", str(tmp_path / "users.acl"), "--user", "bob", "on"],
        capture_output=True, text=True, timeout=60)
    assert both.returncode == 1
    assert "please define either an ACL file or declare users" in both.stdout + both.stderr
    server = ServerProcess(str(tmp_path), [["aclfile", str(tmp_path / "users.acl")]])
    server.start(wait=False)
    assert server.process.wait(60) == 1
    log = (tmp_path / "server.log").read_text()
    assert "Aborting Redis startup because of ACL errors" in log
    assert "Unknown command or category name in ACL" in log or "nosuchcommand" in log
