"""Access control through redis-py: requirepass, AUTH user pass, ACL users with command
categories and key patterns, NOPERM errors as Redis 7.0 words them, rename-command, and
passwords kept out of replies and logs."""

from __future__ import annotations

import hashlib
import shutil
import socket

import pytest
import redis
from parity import ReferenceRedis
from servers import ServerThread, exchange
from trioredis.acl import User
from trioredis.glob import compile_glob


def error_of(call, *args) -> str:
    with pytest.raises(redis.ResponseError) as info:
        call(*args)
    return str(info.value)


@pytest.fixture
def acl_server(tmp_path):
    with ServerThread([["save", ""], ["dir", str(tmp_path)]]) as running:
        running.wait_ready()
        yield running


def login(server, user: str, password: str) -> redis.Redis:
    """A redis-py client that sends AUTH user pass when it connects (lazily)."""
    return server.client(username=user, password=password)


# --- requirepass and AUTH ----------------------------------------------------------------------


def test_requirepass_refuses_commands_until_auth(tmp_path):
    with ServerThread([["save", ""], ["dir", str(tmp_path)], ["requirepass", "s3cret"]]) as srv:
        srv.wait_ready()
        assert exchange(srv, b"GET k", b"AUTH wrong", b"AUTH s3cret", b"SET k v", b"GET k") == [
            "NOAUTH Authentication required.",
            "WRONGPASS invalid username-password pair or user is disabled.",
            b"OK", b"OK", b"v",
        ]
        assert exchange(srv, b"AUTH default s3cret", b"GET k") == [b"OK", b"v"]
        assert srv.client(password="s3cret").get("k") == b"v"


def test_auth_without_password_configured_says_so(server):
    assert exchange(server, b"AUTH x", b"AUTH default anything") == [
        "ERR AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?", b"OK"]


def test_config_set_requirepass_changes_the_default_users_password(acl_server):
    admin = acl_server.client()
    admin.config_set("requirepass", "newpass")
    assert exchange(acl_server, b"PING", b"AUTH newpass", b"PING") == [
        "NOAUTH Authentication required.", b"OK", b"PONG"]
    admin.config_set("requirepass", "")
    assert acl_server.client().ping() is True


def test_requirepass_never_shown_by_config_get_info_or_acl_list(tmp_path):
    logfile = tmp_path / "server.log"
    options = [["save", ""], ["dir", str(tmp_path)], ["requirepass", "hunter2-secret"],
               ["loglevel", "debug"], ["logfile", str(logfile)]]
    with ServerThread(options) as srv:
        srv.wait_ready()
        client = srv.client(password="hunter2-secret")
        client.config_set("slowlog-log-slower-than", "0")
        client.execute_command("ACL", "SETUSER", "alice", "on", ">alice-secret", "+@all", "~*")
        client.config_set("requirepass", "hunter2-secret")
        assert login(srv, "alice", "alice-secret").ping() is True
        with pytest.raises(redis.AuthenticationError):
            login(srv, "alice", "not-alice-secret").ping()
        shown = exchange(srv, b"AUTH hunter2-secret", b"CONFIG GET *", b"INFO everything",
                         b"ACL LIST", b"ACL GETUSER alice", b"CLIENT LIST", b"SLOWLOG GET 100")
    text = repr(shown)
    log = logfile.read_text(errors="replace")
    for secret in ("hunter2-secret", "alice-secret"):
        assert secret not in text
        assert secret not in log
    assert hashlib.sha256(b"alice-secret").hexdigest() in text  # stored as its digest
    assert "b'SETUSER', b'(redacted)'" in text  # SLOWLOG shows the command, not its rules


# --- users and passwords -----------------------------------------------------------------------


def test_acl_user_logs_in_with_auth_user_pass_and_whoami_says_who(acl_server):
    admin = acl_server.client()
    assert admin.execute_command("ACL", "WHOAMI") == b"default"
    assert admin.execute_command("ACL", "SETUSER", "alice", "on", ">pw1", ">pw2", "allcommands",
                                 "allkeys") == b"OK"
    for password in ("pw1", "pw2"):
        alice = login(acl_server, "alice", password)
        assert alice.execute_command("ACL", "WHOAMI") == b"alice"
    wrongpass = "WRONGPASS invalid username-password pair or user is disabled."
    assert exchange(acl_server, b"AUTH alice pw3", b"AUTH nobody pw1", b"ACL WHOAMI",
                    b"HELLO 2 AUTH alice pw1", b"ACL WHOAMI")[:3] == [wrongpass, wrongpass,
                                                                     b"default"]
    assert exchange(acl_server, b"HELLO 2 AUTH alice pw1", b"ACL WHOAMI")[1] == b"alice"


def test_disabled_user_cannot_log_in_and_nopass_user_takes_any_password(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "bob", "off", ">pw", "+@all", "~*")
    assert exchange(acl_server, b"AUTH bob pw") == [
        "WRONGPASS invalid username-password pair or user is disabled."]
    admin.execute_command("ACL", "SETUSER", "carol", "on", "nopass", "+@all", "~*")
    assert login(acl_server, "carol", "whatever").execute_command("ACL", "WHOAMI") == b"carol"


def test_removing_a_password_with_less_than_and_hash_rules(acl_server):
    admin = acl_server.client()
    digest = hashlib.sha256(b"viahash").hexdigest()
    admin.execute_command("ACL", "SETUSER", "dan", "on", f"#{digest}", ">other", "+@all", "~*")
    assert exchange(acl_server, b"AUTH dan viahash", b"AUTH dan other") == [b"OK", b"OK"]
    admin.execute_command("ACL", "SETUSER", "dan", "<other")
    assert exchange(acl_server, b"AUTH dan other") == [
        "WRONGPASS invalid username-password pair or user is disabled."]
    assert error_of(admin.execute_command, "ACL", "SETUSER", "dan", "<nope") == (
        "Error in ACL SETUSER modifier '<nope': The password you are trying to remove from "
        "the user does not exist")
    assert error_of(admin.execute_command, "ACL", "SETUSER", "dan", "#abc") == (
        "Error in ACL SETUSER modifier '#abc': The password hash must be exactly 64 "
        "characters and contain only lowercase hexadecimal characters")


def test_acl_list_getuser_users_and_deluser(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "alice", "on", ">pw1", "~app:*", "+@read")
    digest = hashlib.sha256(b"pw1").hexdigest()
    assert admin.execute_command("ACL", "LIST") == [
        f"user alice on #{digest} ~app:* resetchannels -@all +@read".encode(),
        b"user default on nopass ~* &* +@all",
    ]
    assert admin.execute_command("ACL", "GETUSER", "alice") == [
        b"flags", [b"on"], b"passwords", [digest.encode()], b"commands", b"-@all +@read",
        b"keys", b"~app:*", b"channels", b"", b"selectors", [],
    ]
    assert admin.execute_command("ACL", "GETUSER", "nobody") is None
    assert admin.execute_command("ACL", "USERS") == [b"alice", b"default"]
    admin.execute_command("ACL", "SETUSER", "erin", "reset")
    assert admin.execute_command("ACL", "LIST")[2] == b"user erin off sanitize-payload resetchannels -@all"
    assert error_of(admin.execute_command, "ACL", "DELUSER", "default") == (
        "The 'default' user cannot be removed")
    assert admin.execute_command("ACL", "DELUSER", "alice", "nobody", "erin") == 2
    assert admin.execute_command("ACL", "USERS") == [b"default"]


def test_deleting_a_user_disconnects_its_clients(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "gone", "on", ">pw", "+@all", "~*")
    with socket.create_connection(("127.0.0.1", acl_server.port), timeout=10) as sock:
        sock.sendall(b"AUTH gone pw\r\n")
        assert sock.recv(100) == b"+OK\r\n"
        admin.execute_command("ACL", "DELUSER", "gone")
        assert sock.recv(100) == b""


def test_setuser_is_all_or_nothing_and_names_the_bad_rule(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "frank", "on", ">pw", "+get", "~*")
    assert error_of(admin.execute_command, "ACL", "SETUSER", "frank", "+set", "badrule") == (
        "Error in ACL SETUSER modifier 'badrule': Syntax error")
    assert error_of(admin.execute_command, "ACL", "SETUSER", "frank", "+@nosuch") == (
        "Error in ACL SETUSER modifier '+@nosuch': Unknown command or category name in ACL")
    assert error_of(admin.execute_command, "ACL", "SETUSER", "frank", "+nosuchcmd") == (
        "Error in ACL SETUSER modifier '+nosuchcmd': Unknown command or category name in ACL")
    frank = login(acl_server, "frank", "pw")
    assert error_of(frank.set, "k", "v") == "this user has no permissions to run the 'set' command"


# --- permissions -------------------------------------------------------------------------------


def test_read_only_user_with_key_pattern_gets_redis_noperm_errors(acl_server):
    admin = acl_server.client()
    admin.set("app:x", "1")
    admin.set("other", "2")
    admin.execute_command("ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+@read")
    alice = login(acl_server, "alice", "pw")
    assert alice.get("app:x") == b"1"
    assert error_of(alice.set, "app:x", "2") == (
        "this user has no permissions to run the 'set' command")
    assert error_of(alice.get, "other") == (
        "this user has no permissions to access one of the keys used as arguments")
    assert error_of(alice.mget, "app:x", "other") == (
        "this user has no permissions to access one of the keys used as arguments")
    assert alice.mget("app:x", "app:y") == [b"1", None]


def test_raw_noperm_reply_bytes_match_redis(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+@read")
    with socket.create_connection(("127.0.0.1", acl_server.port), timeout=10) as sock:
        sock.sendall(b"AUTH alice pw\r\nSET app:x 1\r\nGET other\r\n")
        data = b""
        while data.count(b"\r\n") < 3:
            data += sock.recv(1000)
    assert data == (
        b"+OK\r\n"
        b"-NOPERM this user has no permissions to run the 'set' command\r\n"
        b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
    )


def test_minus_dangerous_refuses_flushall_keys_and_config(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "ops", "on", ">pw", "allkeys", "+@all", "-@dangerous")
    ops = login(acl_server, "ops", "pw")
    assert ops.set("k", "v") is True
    for command, name in (("FLUSHALL", "flushall"), ("KEYS *", "keys")):
        assert error_of(ops.execute_command, *command.split()) == (
            f"this user has no permissions to run the '{name}' command")
    assert error_of(ops.execute_command, "CONFIG", "GET", "port") == (
        "this user has no permissions to run the 'config|get' command")


def test_single_commands_and_subcommands_can_be_added_and_removed(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "carol", "on", ">x", "+config|get", "+get", "-get",
                          "+set", "~*")
    carol = login(acl_server, "carol", "x")
    assert carol.config_get("maxclients") == {"maxclients": "10000"}
    assert error_of(carol.config_set, "maxclients", "10") == (
        "this user has no permissions to run the 'config|set' command")
    assert error_of(carol.get, "k") == "this user has no permissions to run the 'get' command"
    assert carol.set("k", "v") is True
    # Described as Redis 7.0 describes it, from what carol may run: -get changed nothing.
    assert admin.execute_command("ACL", "GETUSER", "carol")[5].split() == [
        b"-@all", b"+set", b"+config|get"]
    admin.execute_command("ACL", "SETUSER", "carol", "+config", "-config|set")
    assert carol.config_get("maxclients") == {"maxclients": "10000"}
    assert error_of(carol.config_set, "maxclients", "10") == (
        "this user has no permissions to run the 'config|set' command")


def test_permission_changes_apply_to_logged_in_clients(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "dyn", "on", ">pw", "allcommands", "allkeys")
    dyn = login(acl_server, "dyn", "pw")
    assert dyn.set("k", "v") is True
    admin.execute_command("ACL", "SETUSER", "dyn", "-set")
    assert error_of(dyn.set, "k", "v") == "this user has no permissions to run the 'set' command"


def test_read_and_write_key_permissions(acl_server):
    admin = acl_server.client()
    admin.set("r:1", "x")
    admin.execute_command("ACL", "SETUSER", "rw", "on", ">pw", "+@all", "%R~r:*", "%W~w:*")
    rw = login(acl_server, "rw", "pw")
    assert rw.get("r:1") == b"x"
    assert rw.set("w:1", "y") is True
    noperm = "this user has no permissions to access one of the keys used as arguments"
    assert error_of(rw.set, "r:1", "y") == noperm
    assert error_of(rw.get, "w:1") == noperm


def test_channel_permissions_for_publish(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "pub", "on", ">pw", "+@all", "~*", "&news.*")
    pub = login(acl_server, "pub", "pw")
    assert pub.publish("news.today", "hi") == 0
    assert error_of(pub.publish, "sports", "hi") == (
        "this user has no permissions to access one of the channels used as arguments")


def test_noperm_inside_multi_aborts_exec(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "tx", "on", ">pw", "+@all", "-set", "~*")
    assert exchange(acl_server, b"AUTH tx pw", b"MULTI", b"GET a", b"SET a 1", b"EXEC") == [
        b"OK", b"OK", b"QUEUED",
        "NOPERM this user has no permissions to run the 'set' command",
        "EXECABORT Transaction discarded because of previous errors.",
    ]


def test_acl_cat_and_dryrun(acl_server):
    admin = acl_server.client()
    categories = admin.execute_command("ACL", "CAT")
    assert categories[:4] == [b"keyspace", b"read", b"write", b"set"]
    assert len(categories) == 21
    read = admin.execute_command("ACL", "CAT", "read")
    assert b"get" in read and b"set" not in read
    assert b"flushall" in admin.execute_command("ACL", "CAT", "dangerous")
    assert error_of(admin.execute_command, "ACL", "CAT", "foo") == "Unknown category 'foo'"
    admin.execute_command("ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+@read")
    dry = ["ACL", "DRYRUN", "alice"]
    assert admin.execute_command(*dry, "get", "app:x") == b"OK"
    assert admin.execute_command(*dry, "set", "app:x", "1") == (
        b"This user has no permissions to run the 'set' command")
    assert admin.execute_command(*dry, "get", "zz") == (
        b"This user has no permissions to access the 'zz' key")
    assert error_of(admin.execute_command, "ACL", "DRYRUN", "nobody", "get", "x") == (
        "User 'nobody' not found")
    assert error_of(admin.execute_command, "ACL", "FOO") == (
        "unknown subcommand 'FOO'. Try ACL HELP.")
    assert len(admin.execute_command("ACL", "GENPASS")) == 64


def test_reset_returns_the_client_to_the_default_user(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "alice", "on", ">pw", "+@all", "~*")
    with socket.create_connection(("127.0.0.1", acl_server.port), timeout=10) as sock:
        sock.sendall(b"AUTH alice pw\r\nRESET\r\nACL WHOAMI\r\n")
        data = b""
        while not data.endswith(b"default\r\n"):
            chunk = sock.recv(1000)
            assert chunk
            data += chunk
    assert data == b"+OK\r\n+RESET\r\n$7\r\ndefault\r\n"


# --- rename-command ----------------------------------------------------------------------------


def test_rename_command_moves_and_removes_commands(tmp_path):
    options = [["save", ""], ["dir", str(tmp_path)], ["rename-command", "config", "myconfig"],
               ["rename-command", "flushall", '""']]
    with ServerThread(options) as srv:
        srv.wait_ready()
        client = srv.client()
        assert error_of(client.execute_command, "CONFIG", "GET", "port").startswith(
            "unknown command 'CONFIG'")
        assert client.execute_command("MYCONFIG", "GET", "maxclients") == [b"maxclients", b"10000"]
        assert error_of(client.execute_command, "FLUSHALL").startswith("unknown command 'FLUSHALL'")


# --- the matcher -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        (b"app:*", b"app:1", True), (b"app:*", b"ap", False), (b"h?llo", b"hello", True),
        (b"h[ae]llo", b"hallo", True), (b"h[^e]llo", b"hello", False),
        (b"h[a-b]llo", b"hbllo", True), (b"h\\*", b"h*", True), (b"h\\*", b"hx", False),
        (b"*", b"\n\x00", True),
    ],
)
def test_key_patterns_match_like_redis_stringmatch(pattern, subject, matches):
    assert bool(compile_glob(pattern).matches(subject)) is matches


def test_user_keeps_only_digests_and_checks_every_one():
    user = User("u")
    user.apply(">first", None)
    user.apply(">second", None)
    assert user.passwords == [hashlib.sha256(b"first").hexdigest(),
                              hashlib.sha256(b"second").hexdigest()]
    assert user.check_password(b"second") and user.check_password(b"first")
    assert not user.check_password(b"third")


def test_without_dangerous_safe_subcommands_stay_allowed(acl_server):
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", "ops", "on", ">pw", "allkeys", "+@all", "-@dangerous")
    assert exchange(acl_server, b"AUTH ops pw", b"ACL WHOAMI", b"CLIENT SETNAME me",
                    b"CLIENT KILL ID 99999", b"ACL SETUSER x") == [
        b"OK", b"ops", b"OK",
        "NOPERM this user has no permissions to run the 'client|kill' command",
        "NOPERM this user has no permissions to run the 'acl|setuser' command",
    ]
    dangerous = admin.execute_command("ACL", "CAT", "dangerous")
    assert b"client|kill" in dangerous and b"client|id" not in dangerous


# --- parity with redis-server --------------------------------------------------------------------

PARITY_SETUP = [
    b"ACL SETUSER alice on >pw ~app:* +@read -@dangerous",
    b"ACL SETUSER ops on >pw allkeys +@all -@dangerous",
    b"ACL SETUSER carol on >x +config|get ~*",
    b"SET app:x 1",
    b"SET other 2",
]
PARITY_SESSIONS = [
    [b"AUTH alice pw", b"GET app:x", b"SET app:x 1", b"GET other", b"MGET app:x other",
     b"MGET app:x app:y", b"PING", b"ACL WHOAMI", b"AUTH alice wrong", b"AUTH nobody pw"],
    [b"AUTH ops pw", b"ACL WHOAMI", b"CLIENT SETNAME me", b"CLIENT KILL ID 99999", b"FLUSHALL",
     b"KEYS *", b"CONFIG GET maxclients", b"ACL SETUSER x", b"SET k v", b"MULTI", b"KEYS *",
     b"EXEC"],
    [b"AUTH carol x", b"CONFIG SET maxclients 10", b"CONFIG GET maxclients", b"GET k"],
    [b"ACL DRYRUN alice get app:x", b"ACL DRYRUN alice set app:x 1", b"ACL DRYRUN alice get zz",
     b"ACL DRYRUN nobody get x", b"ACL GETUSER nobody", b"ACL DELUSER default",
     b"ACL SETUSER dave badrule", b"ACL SETUSER dave +@nosuch", b"ACL SETUSER dave <nope",
     b"ACL CAT nosuch", b"ACL DELUSER dave nobody", b"AUTH x", b"ACL WHOAMI"],
]


class _Address:
    """Enough of a ServerThread for :func:`exchange`: a port on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port


def test_acl_replies_match_redis_server(acl_server):
    """The same sessions against redis-server 7.0 and trioredis give the same replies."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with ReferenceRedis() as redis_server:
        results = {}
        for name, target in (("redis", _Address(redis_server.port)), ("trioredis", acl_server)):
            exchange(target, *PARITY_SETUP)
            results[name] = [exchange(target, *session) for session in PARITY_SESSIONS]
    for ours, theirs, session in zip(results["trioredis"], results["redis"], PARITY_SESSIONS,
                                     strict=True):
        for command, mine, reference in zip(session, ours, theirs, strict=True):
            assert (command, mine) == (command, reference)
