"""Client-side caching (CLIENT TRACKING) as clients use it: redis-py's own client cache,
broadcast mode with prefixes, RESP2 redirection to a ``__redis__:invalidate`` subscriber, the
INFO fields and CLIENT LIST flags, tracking-table-max-keys, and the write paths that must
invalidate (commands, expiry, flushes, scripts, MULTI/EXEC, blocked pops)."""

from __future__ import annotations

import random
import time

import pytest
import redis
from parity import RawClient, encode_command
from servers import wait_for
from trioredis.tracking import _first_overlapping, _overlap

INVALIDATE = b">2\r\n$10\r\ninvalidate\r\n"


def pushes(client: RawClient, timeout: float = 0.3) -> bytes:
    """Everything the server sent ``client`` within ``timeout`` (pushes nobody asked for)."""
    client.sock.settimeout(timeout)
    try:
        while client._fill():
            pass
    except TimeoutError:
        pass
    data, client.buffer = client.buffer, b""
    client.sock.settimeout(10)
    return data


def keys_message(*keys: bytes) -> bytes:
    return INVALIDATE + b"*%d\r\n" % len(keys) + b"".join(
        b"$%d\r\n%b\r\n" % (len(key), key) for key in keys)


@pytest.fixture
def resp3(server):
    client = RawClient(server.port)
    client.call("HELLO", "3")
    yield client
    client.close()


@pytest.fixture
def other(server):
    client = RawClient(server.port)
    yield client
    client.close()


# --- redis-py's client-side cache ----------------------------------------------------------


@pytest.fixture
def cached_client(server, monkeypatch):
    """redis-py 8's client cache (RESP3, CLIENT TRACKING ON under the hood).  redis-py turns
    it on only for servers announcing 7.4 or later, by version string alone; the protocol it
    speaks is Redis 6's, which trioredis (announcing 7.0.15, as Redis 7.0 does) implements,
    so the test lowers that client-side gate for its own connections."""
    cache_module = pytest.importorskip("redis.cache")
    from redis.connection import CacheProxyConnection

    monkeypatch.setattr(CacheProxyConnection, "MIN_ALLOWED_VERSION", "7.0.0")
    client = redis.Redis(port=server.port, protocol=3, cache_config=cache_module.CacheConfig())
    yield client
    client.close()


def test_redis_py_cache_serves_a_read_until_another_client_writes(server, cached_client, r):
    r.set("user:1", "alice")
    assert cached_client.get("user:1") == b"alice"
    cache = cached_client.get_cache()
    assert cache.size == 1
    # Served from the cache: the server sees no second GET.
    before = r.info("commandstats")["cmdstat_get"]["calls"]
    assert cached_client.get("user:1") == b"alice"
    assert r.info("commandstats")["cmdstat_get"]["calls"] == before
    r.set("user:1", "bob")
    # The invalidation push reaches the cached connection; its next read goes to the server.
    wait_for(lambda: cached_client.get("user:1") == b"bob", timeout=5, what="invalidation")
    assert r.info("clients")["tracking_clients"] == 1


def test_redis_py_cache_is_emptied_by_flushall(server, cached_client, r):
    r.set("a", "1")
    assert cached_client.get("a") == b"1"
    r.flushall()
    wait_for(lambda: cached_client.get("a") is None, timeout=5, what="flush invalidation")


# --- default mode --------------------------------------------------------------------------


def test_a_read_key_is_invalidated_once_when_another_client_writes_it(resp3, other):
    assert resp3.call("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
    assert resp3.call("GET", "k") == b"_\r\n"
    other.call("SET", "k", "1")
    assert pushes(resp3) == keys_message(b"k")
    other.call("SET", "k", "2")  # no longer remembered: nothing more
    assert pushes(resp3, 0.1) == b""


def test_own_write_invalidation_follows_the_reply_and_noloop_suppresses_it(resp3):
    resp3.call("CLIENT", "TRACKING", "ON")
    resp3.call("GET", "k")
    resp3.send(encode_command("SET", "k", "v"))
    assert pushes(resp3) == b"+OK\r\n" + keys_message(b"k")
    resp3.call("CLIENT", "TRACKING", "ON", "NOLOOP")
    resp3.call("GET", "k")
    resp3.send(encode_command("SET", "k", "w"))
    assert pushes(resp3) == b"+OK\r\n"


def test_invalidations_inside_exec_follow_the_exec_reply(resp3):
    resp3.call("CLIENT", "TRACKING", "ON")
    resp3.call("MGET", "a", "b")
    resp3.call("MULTI")
    resp3.call("SET", "a", "1")
    resp3.call("SET", "b", "2")
    resp3.send(encode_command("EXEC"))
    assert pushes(resp3) == b"*2\r\n+OK\r\n+OK\r\n" + keys_message(b"a") + keys_message(b"b")


def test_expiry_and_scripts_and_blocked_pops_invalidate(server, resp3, other):
    resp3.call("CLIENT", "TRACKING", "ON")
    other.call("SET", "e", "1", "PX", "50")
    resp3.call("GET", "e")
    time.sleep(0.2)  # the active expiry cycle deletes it
    assert pushes(resp3, 1.0) == keys_message(b"e")
    resp3.call("GET", "s")
    other.call("EVAL", "return redis.call('SET', 's', 'x')", "0")
    assert pushes(resp3) == keys_message(b"s")
    resp3.call("LRANGE", "queue", "0", "-1")
    waiter = RawClient(server.port)
    waiter.send(encode_command("BLPOP", "queue", "5"))
    time.sleep(0.1)
    other.call("RPUSH", "queue", "job")
    assert waiter.read_reply() == b"*2\r\n$5\r\nqueue\r\n$3\r\njob\r\n"
    assert pushes(resp3) == keys_message(b"queue")
    waiter.close()


def test_a_blocked_move_served_later_invalidates_its_destination(server, resp3, other):
    resp3.call("CLIENT", "TRACKING", "ON")
    resp3.call("LRANGE", "done", "0", "-1")
    mover = RawClient(server.port)
    mover.send(encode_command("BLMOVE", "todo", "done", "LEFT", "RIGHT", "5"))
    time.sleep(0.1)
    other.call("RPUSH", "todo", "job")  # todo is not tracked; the move fills done
    assert mover.read_reply() == b"$3\r\njob\r\n"
    assert pushes(resp3) == keys_message(b"done")
    mover.close()


def test_flush_sends_a_null_to_every_tracking_client(resp3, other):
    resp3.call("CLIENT", "TRACKING", "ON")
    resp3.call("GET", "k")
    other.call("FLUSHDB")
    assert pushes(resp3) == INVALIDATE + b"_\r\n"
    other.call("SET", "k", "1")  # the table was emptied: k is no longer remembered
    assert pushes(resp3, 0.1) == b""


def test_optin_remembers_only_after_caching_yes_and_optout_all_but_after_caching_no(resp3, other):
    resp3.call("CLIENT", "TRACKING", "ON", "OPTIN")
    resp3.call("GET", "a")
    resp3.call("CLIENT", "CACHING", "YES")
    resp3.call("GET", "b")
    resp3.call("GET", "c")  # CACHING YES covered one command only
    other.call("MSET", "a", "1", "b", "2", "c", "3")
    assert pushes(resp3) == keys_message(b"b")
    resp3.call("CLIENT", "TRACKING", "OFF")
    resp3.call("CLIENT", "TRACKING", "ON", "OPTOUT")
    resp3.call("CLIENT", "CACHING", "NO")
    resp3.call("GET", "a")
    resp3.call("GET", "b")
    other.call("MSET", "a", "1", "b", "2")
    assert pushes(resp3) == keys_message(b"b")


# --- broadcast mode ------------------------------------------------------------------------


def test_bcast_sends_changed_keys_under_each_prefix_in_one_message(resp3, other):
    assert resp3.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:",
                      "PREFIX", "order:") == b"+OK\r\n"
    # One pipelined batch is one event-loop turn: one message per prefix, keys sorted.
    other.send(encode_command("MSET", "user:2", "b", "user:1", "a", "cart:1", "x")
               + encode_command("SET", "order:9", "z"))
    other.read_reply()
    other.read_reply()
    received = pushes(resp3)
    assert received == keys_message(b"order:9") + keys_message(b"user:1", b"user:2")
    assert resp3.call("CLIENT", "TRACKINGINFO") == (
        b"%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:0\r\n"
        b"$8\r\nprefixes\r\n*2\r\n$6\r\norder:\r\n$5\r\nuser:\r\n")


def test_bcast_hears_of_keys_expiring_in_the_cron_even_with_noloop(resp3, other):
    resp3.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "tmp:", "NOLOOP")
    resp3.call("SET", "tmp:1", "v", "PX", "50")  # its own write: not echoed (NOLOOP)...
    assert pushes(resp3, 0.02) == b""
    time.sleep(0.3)
    assert pushes(resp3) == keys_message(b"tmp:1")  # ...but its expiry is nobody's write


def test_bcast_without_prefix_covers_every_key_and_noloop_drops_own_changes(resp3, other):
    resp3.call("CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP")
    resp3.call("SET", "mine", "1")
    assert pushes(resp3, 0.2) == b""
    other.call("SET", "theirs", "1")
    assert pushes(resp3) == keys_message(b"theirs")


def test_overlapping_prefixes_are_refused_with_redis_messages(resp3):
    assert resp3.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "b", "PREFIX", "a",
                      "PREFIX", "ab") == (
        b"-ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single "
        b"client must not overlap.\r\n")
    resp3.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a")
    assert resp3.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "abc") == (
        b"-ERR Prefix 'abc' overlaps with an existing prefix 'a'. Prefixes for a single "
        b"client must not overlap.\r\n")


def test_a_hundred_thousand_prefixes_are_checked_quickly(server):
    client = RawClient(server.port)
    args = ["CLIENT", "TRACKING", "ON", "BCAST"]
    for index in range(100_000):
        args += ["PREFIX", f"p{index:06d}:"]
    started = time.monotonic()
    assert client.call(*args) == b"+OK\r\n"
    assert client.call("SET", "p000042:x", "1") == b"+OK\r\n"
    assert time.monotonic() - started < 10
    assert client.call("CLIENT", "TRACKING", "OFF") == b"+OK\r\n"
    client.close()


def test_first_overlapping_matches_the_pairwise_definition():
    rng = random.Random(5)
    alphabet = [b"", b"a", b"b", b"ab", b"ba", b"aa", b"abc", b"b:", b"a:"]
    for _ in range(3000):
        existing = [p for p in rng.sample(alphabet, rng.randint(0, 3))]
        # The client's own prefixes never overlap each other (except BCAST's "" added later).
        existing = [p for i, p in enumerate(existing)
                    if not any(_overlap(p, q) for q in existing[:i])]
        given = [rng.choice(alphabet) for _ in range(rng.randint(0, 5))]
        expected = next((i for i, p in enumerate(given)
                         if any(_overlap(p, e) for e in existing)
                         or any(_overlap(p, q) for q in given[i + 1:])), None)
        assert _first_overlapping(sorted(existing), given) == expected, (existing, given)


# --- RESP2 redirection ---------------------------------------------------------------------


def test_resp2_redirection_through_the_invalidate_channel(server, other):
    listener = RawClient(server.port)
    listener_id = int(listener.call("CLIENT", "ID")[1:-2])
    assert listener.call("SUBSCRIBE", "__redis__:invalidate") == (
        b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n")
    reader = RawClient(server.port)
    assert reader.call("CLIENT", "TRACKING", "ON", "REDIRECT", str(listener_id)) == b"+OK\r\n"
    assert reader.call("CLIENT", "GETREDIR") == b":%d\r\n" % listener_id
    reader.call("GET", "k")
    other.call("SET", "k", "1")
    assert pushes(listener) == (
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n")
    reader.call("GET", "k")
    other.call("FLUSHALL")
    assert pushes(listener) == b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
    # The redirection's client leaves: the reader is flagged R, and told (in RESP3).
    listener.close()
    wait_for(lambda: b"id=%d " % listener_id not in other.call("CLIENT", "LIST"),
             what="listener gone")
    reader.call("HELLO", "3")
    reader.call("GET", "k")
    other.call("SET", "k", "2")
    assert pushes(reader) == b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n" % listener_id
    assert b" flags=tR " in reader.call("CLIENT", "INFO")
    reader.close()


def test_redirect_to_a_missing_client_and_option_conflicts_are_refused(resp3):
    assert resp3.call("CLIENT", "TRACKING", "ON", "REDIRECT", "987654") == (
        b"-ERR The client ID you want redirect to does not exist\r\n")
    assert resp3.call("CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT") == (
        b"-ERR You can't specify both OPTIN mode and OPTOUT mode\r\n")
    assert resp3.call("CLIENT", "TRACKING", "ON", "BCAST", "OPTIN") == (
        b"-ERR OPTIN and OPTOUT are not compatible with BCAST\r\n")
    assert resp3.call("CLIENT", "TRACKING", "ON", "PREFIX", "a") == (
        b"-ERR PREFIX option requires BCAST mode to be enabled\r\n")
    assert resp3.call("CLIENT", "CACHING", "YES") == (
        b"-ERR CLIENT CACHING can be called only when the client is in tracking mode with "
        b"OPTIN or OPTOUT mode enabled\r\n")


# --- introspection and limits --------------------------------------------------------------


def test_info_fields_and_client_list_flags(server, resp3, other, r):
    resp3.call("CLIENT", "TRACKING", "ON")
    resp3.call("MGET", "a", "b", "c")
    bcast = RawClient(server.port)
    bcast.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x", "PREFIX", "y")
    info = r.info()
    assert info["tracking_clients"] == 2
    assert info["tracking_total_keys"] == 3
    assert info["tracking_total_items"] == 3
    assert info["tracking_total_prefixes"] == 2
    assert b" flags=t " in resp3.call("CLIENT", "INFO")
    assert b" flags=tB " in bcast.call("CLIENT", "INFO")
    assert b" redir=0 " in bcast.call("CLIENT", "INFO")
    assert b" redir=-1 " in other.call("CLIENT", "INFO")
    bcast.close()
    wait_for(lambda: r.info()["tracking_clients"] == 1, what="BCAST client gone")
    assert r.info()["tracking_total_prefixes"] == 0
    resp3.call("RESET")
    assert r.info()["tracking_clients"] == 0


def test_tracking_table_max_keys_drops_keys_and_tells_their_readers(server, resp3, r):
    r.config_set("tracking-table-max-keys", 2)
    resp3.call("CLIENT", "TRACKING", "ON")
    for key in ("k1", "k2", "k3"):
        assert resp3.call("GET", key) == b"_\r\n"
    # Three keys, one too many: before the next command runs, the oldest goes, and its
    # reader hears of it first.
    resp3.send(encode_command("GET", "k4"))
    assert pushes(resp3) == keys_message(b"k1") + b"_\r\n"
    assert r.info()["tracking_total_keys"] == 2  # INFO, a command, trimmed k4's addition
    assert pushes(resp3) == keys_message(b"k2")
