"""Every Redis 7.0 configuration directive, one line each: the facts of an option together.

Core's table holds every directive but those of the persistence plugins: the AOF's
(``appendonly``, ``appendfsync``...) are declared by ``trioredis.plugins.aof`` and the
snapshot's (``save``, ``dbfilename``, ``stop-writes-on-bgsave-error``) by
``trioredis.plugins.snapshot``, through the ``trioredis_add_options`` hook, with these same
helpers.  Redis's persistence options that have no effect here (``aof-use-rdb-preamble``,
``rdb-del-sync-files``...) stay in core's table.

A line says the option's name (and its old alias), its kind, its default, its bounds or
values, whether CONFIG SET may change it (``IMMUTABLE``), whether only a trusted client may
(``PROTECTED``, see ``enable-protected-configs``), whether it names a file or a directory
(confined, see :mod:`trioredis.config`) and, in ``applies``, where it has an effect in
trioredis.  An option with an empty ``applies`` is accepted, stored, shown by CONFIG GET and
written by CONFIG REWRITE exactly as Redis does, and has no effect here (start-up logs one
line naming those a configuration sets).

Kinds, defaults, bounds and enumerations are Redis 7.0.15's (config.c), checked against a
real ``redis-server`` by tests/test_config_table.py.  Plugins add their own lines through the
``trioredis_add_options`` hook (same :class:`Option`, same rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Kinds: how a value is read from words and shown.
BOOL = "bool"  # yes / no
INT = "int"  # a plain integer within [low, high]
MEMORY = "memory"  # an integer with units (1k, 1kb, 64mb, 1gb)
OCTAL = "octal"  # unixsocketperm
ENUM = "enum"  # one of ``values``, case-insensitive, shown lowercase
STRING = "string"  # any bytes (one word)
WORDS = "words"  # several words kept as a list (bind, loadplugin)
SAVE = "save"  # pairs of <seconds> <changes>
OUTPUT_LIMITS = "client-output-buffer-limit"  # <class> <hard> <soft> <seconds> ...
EVENTS = "notify-keyspace-events"  # letters
OOM_VALUES = "oom-score-adj-values"  # three integers
PERCENTILES = "latency-tracking-info-percentiles"  # floats in [0, 100]
MEMORY_OR_PERCENT = "memory-or-percent"  # maxmemory-clients: 0, 1gb or 10%
REPLICAOF = "replicaof"  # "" or <host> <port>

# Flags.
IMMUTABLE = 1  # CONFIG SET refuses it: it shapes start-up only
PROTECTED = 2  # CONFIG SET only when enable-protected-configs allows the client
MULTI_ARG = 4  # several words: split on spaces when given as one (CONFIG SET, --save '1 2')
MULTI_LINE = 8  # several lines add up (save, loadplugin); the first one replaces the default
SECRET = 16  # never shown by CONFIG GET (requirepass): a departure from Redis, on purpose
BINARY = 32  # a string that may hold NUL (Redis's sds options); others end at the first NUL

# Confinement (Redis's pathIsBaseName and more): what a value may name.
FILENAME = "filename"  # a file name inside dir: no '/', no '\\', not '.', '..' or empty
DIRECTORY = "directory"  # dir itself: an existing directory (absolute once applied)

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
UINT_MAX = 2**32 - 1
LLONG_MAX = 2**63 - 1
ULLONG_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Option:
    """One directive.  ``name`` is the redis.conf spelling and the CONFIG GET name; the
    Struct field is the same with ``-`` replaced by ``_``."""

    name: str
    kind: str
    default: Any
    low: int = 0
    high: int = 0
    values: tuple[str, ...] = ()
    alias: str | None = None
    flags: int = 0
    confine: str | None = None
    applies: str = ""

    @property
    def field(self) -> str:
        return self.name.replace("-", "_")


def boolean(name: str, default: bool, *, alias: str | None = None, flags: int = 0,
            applies: str = "") -> Option:
    return Option(name, BOOL, default, alias=alias, flags=flags, applies=applies)


def integer(name: str, default: int, low: int, high: int, *, alias: str | None = None,
            flags: int = 0, applies: str = "") -> Option:
    return Option(name, INT, default, low, high, alias=alias, flags=flags, applies=applies)


def memory(name: str, default: int, low: int, high: int, *, alias: str | None = None,
           flags: int = 0, applies: str = "") -> Option:
    return Option(name, MEMORY, default, low, high, alias=alias, flags=flags, applies=applies)


def enum(name: str, values: tuple[str, ...], default: str, *, alias: str | None = None,
         flags: int = 0, applies: str = "") -> Option:
    """``values`` in Redis's order: its error message lists them so."""
    return Option(name, ENUM, default, values=values, alias=alias, flags=flags, applies=applies)


def string(name: str, default: str, *, alias: str | None = None, flags: int = 0,
           confine: str | None = None, applies: str = "") -> Option:
    return Option(name, STRING, default, alias=alias, flags=flags, confine=confine,
                  applies=applies)


def special(name: str, kind: str, default: Any, *, alias: str | None = None, flags: int = 0,
            applies: str = "") -> Option:
    return Option(name, kind, default, alias=alias, flags=flags | MULTI_ARG, applies=applies)


# no, yes, local: who may use a protected feature (DEBUG, CONFIG SET dir).
PROTECTED_ACTION = ("no", "yes", "local")

REDIS_OPTIONS: tuple[Option, ...] = (
    # --- options with an effect here --------------------------------------------------------
    special("bind", WORDS, ["127.0.0.1", "-::1"], flags=IMMUTABLE,
            applies="listening addresses (server)"),
    integer("tcp-backlog", 511, 0, INT_MAX, flags=IMMUTABLE, applies="listen backlog (server)"),
    string("unixsocket", "", flags=IMMUTABLE, applies="unix socket path (server)"),
    Option("unixsocketperm", OCTAL, 0, 0, 0o777, flags=IMMUTABLE,
           applies="unix socket permissions (server)"),
    integer("databases", 16, 1, INT_MAX, flags=IMMUTABLE, applies="number of databases (keyspace)"),
    string("logfile", "", flags=IMMUTABLE, applies="log destination (log)"),
    string("pidfile", "", flags=IMMUTABLE, applies="pid file (cli)"),
    Option("dir", STRING, ".", flags=PROTECTED, confine=DIRECTORY,
           applies="working directory of every data file"),
    special("client-output-buffer-limit", OUTPUT_LIMITS,
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
            applies="output buffer limits (server)"),
    Option("notify-keyspace-events", EVENTS, "", applies="keyspace notifications (pubsub)"),
    enum("enable-protected-configs", PROTECTED_ACTION, "no", flags=IMMUTABLE,
         applies="who may CONFIG SET dir and dbfilename (config)"),
    enum("enable-debug-command", PROTECTED_ACTION, "no", flags=IMMUTABLE,
         applies="who may run DEBUG (engine)"),
    # --- Redis's other options (those with ``applies`` are used here) -----------------------
    string("aclfile", "", flags=IMMUTABLE, applies="users file: start-up, ACL LOAD/SAVE (acl)"),
    boolean("always-show-logo", False, flags=IMMUTABLE),
    string("aof_rewrite_cpulist", "", flags=IMMUTABLE),
    string("bgsave_cpulist", "", flags=IMMUTABLE),
    string("bio_cpulist", "", flags=IMMUTABLE),
    string("server_cpulist", "", flags=IMMUTABLE),
    string("cluster-announce-hostname", ""),
    string("cluster-config-file", "nodes.conf", flags=IMMUTABLE),
    boolean("cluster-enabled", False, flags=IMMUTABLE),
    integer("cluster-port", 0, 0, 65535, flags=IMMUTABLE),
    boolean("daemonize", False, flags=IMMUTABLE, applies="detach at start-up (cli)"),
    boolean("disable-thp", True, flags=IMMUTABLE),
    enum("enable-module-command", PROTECTED_ACTION, "no", flags=IMMUTABLE, applies="MODULE command allowed (operator)"),
    integer("io-threads", 1, 1, 128, flags=IMMUTABLE),
    boolean("io-threads-do-reads", False, flags=IMMUTABLE),
    Option("latency-tracking-info-percentiles", PERCENTILES, "50 99 99.9", flags=MULTI_ARG, applies="INFO latencystats percentiles (latency)"),
    Option("maxmemory-clients", MEMORY_OR_PERCENT, "0", applies="client eviction (client_memory)"),
    Option("oom-score-adj-values", OOM_VALUES, "0 200 800", flags=MULTI_ARG),
    boolean("rdbchecksum", True, flags=IMMUTABLE, applies="RDB checksum written (rdb)"),
    Option("replicaof", REPLICAOF, "", alias="slaveof", flags=IMMUTABLE | MULTI_ARG,
           applies="the master followed at start-up (replication)"),
    boolean("set-proc-title", True, flags=IMMUTABLE),
    integer("socket-mark-id", 0, 0, UINT_MAX, flags=IMMUTABLE),
    enum("supervised", ("upstart", "systemd", "auto", "no"), "no", flags=IMMUTABLE, applies="systemd/upstart readiness (supervision)"),
    boolean("syslog-enabled", False, flags=IMMUTABLE),
    enum("syslog-facility", ("user", "local0", "local1", "local2", "local3", "local4",
                             "local5", "local6", "local7"), "local0", flags=IMMUTABLE),
    string("syslog-ident", "redis", flags=IMMUTABLE),
    enum("acl-pubsub-default", ("allchannels", "resetchannels"), "resetchannels"),
    integer("acllog-max-len", 128, 0, LLONG_MAX, applies="ACL LOG length (acl)"),
    integer("active-defrag-cycle-max", 25, 1, 99),
    integer("active-defrag-cycle-min", 1, 1, 99),
    memory("active-defrag-ignore-bytes", 104857600, 1, LLONG_MAX),
    integer("active-defrag-max-scan-fields", 1000, 1, LLONG_MAX),
    integer("active-defrag-threshold-lower", 10, 0, 1000),
    integer("active-defrag-threshold-upper", 100, 0, 1000),
    integer("active-expire-effort", 1, 1, 10),
    boolean("activedefrag", False),
    boolean("activerehashing", True),
    boolean("aof-disable-auto-gc", False),
    boolean("aof-rewrite-incremental-fsync", True),
    boolean("aof-timestamp-enabled", False),
    boolean("aof-use-rdb-preamble", True),
    string("bind-source-addr", ""),
    integer("busy-reply-threshold", 5000, 0, LLONG_MAX, alias="lua-time-limit", applies="BUSY replies during a long script (scripting)"),
    memory("client-query-buffer-limit", 1073741824, 1048576, LLONG_MAX, applies="query buffer limit per client (server)"),
    boolean("cluster-allow-pubsubshard-when-down", True),
    boolean("cluster-allow-reads-when-down", False),
    boolean("cluster-allow-replica-migration", True),
    integer("cluster-announce-bus-port", 0, 0, 65535),
    string("cluster-announce-ip", ""),
    integer("cluster-announce-port", 0, 0, 65535),
    integer("cluster-announce-tls-port", 0, 0, 65535),
    memory("cluster-link-sendbuf-limit", 0, 0, ULLONG_MAX),
    integer("cluster-migration-barrier", 1, 0, INT_MAX),
    integer("cluster-node-timeout", 15000, 0, LLONG_MAX),
    enum("cluster-preferred-endpoint-type", ("ip", "hostname", "unknown-endpoint"), "ip"),
    boolean("cluster-replica-no-failover", False, alias="cluster-slave-no-failover"),
    integer("cluster-replica-validity-factor", 10, 0, INT_MAX, alias="cluster-slave-validity-factor"),
    boolean("cluster-require-full-coverage", True),
    boolean("crash-log-enabled", True),
    boolean("crash-memcheck-enabled", True),
    boolean("dynamic-hz", True),
    integer("hash-max-listpack-entries", 512, 0, LLONG_MAX, alias="hash-max-ziplist-entries", applies="OBJECT ENCODING and RDB encoding of hashes (encodings)"),
    memory("hash-max-listpack-value", 64, 0, LLONG_MAX, alias="hash-max-ziplist-value", applies="OBJECT ENCODING and RDB encoding of hashes (encodings)"),
    memory("hll-sparse-max-bytes", 3000, 0, LLONG_MAX,
           applies="when PFADD turns a sparse HLL dense (hyperloglog)"),
    integer("hz", 10, 0, INT_MAX, applies="server cron frequency (server)"),
    string("ignore-warnings", ""),
    boolean("jemalloc-bg-thread", True),
    integer("latency-monitor-threshold", 0, 0, LLONG_MAX, applies="LATENCY samples (observability)"),
    boolean("latency-tracking", True, applies="per-command latency histograms (latency)"),
    boolean("lazyfree-lazy-eviction", False, applies="evictions freed lazily (eviction)"),
    boolean("lazyfree-lazy-expire", False, applies="expired values freed lazily (memory)"),
    boolean("lazyfree-lazy-server-del", False, applies="overwritten values freed lazily (memory)"),
    boolean("lazyfree-lazy-user-del", False, applies="DEL frees as UNLINK (memory)"),
    boolean("lazyfree-lazy-user-flush", False, applies="FLUSH* default to ASYNC (memory)"),
    integer("lfu-decay-time", 1, 0, INT_MAX, applies="LFU counter decay (eviction)"),
    integer("lfu-log-factor", 10, 0, INT_MAX, applies="LFU counter growth (eviction)"),
    integer("list-compress-depth", 0, 0, INT_MAX),
    integer("list-max-listpack-size", -2, INT_MIN, INT_MAX, alias="list-max-ziplist-size", applies="RDB quicklist node size (rdb)"),
    enum("loglevel", ("debug", "verbose", "notice", "warning"), "notice", applies="log verbosity (log)"),
    string("masterauth", "", flags=BINARY, applies="AUTH to the master (replication)"),
    string("masteruser", "", applies="AUTH to the master (replication)"),
    integer("maxclients", 10000, 1, UINT_MAX, applies="connection limit (server)"),
    memory("maxmemory", 0, 0, ULLONG_MAX, applies="memory limit (engine)"),
    integer("maxmemory-eviction-tenacity", 10, 0, 100, applies="eviction time per command (eviction)"),
    enum("maxmemory-policy", ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction"), "noeviction", applies="eviction policy (engine)"),
    integer("maxmemory-samples", 5, 1, INT_MAX, applies="eviction sample size (eviction)"),
    integer("min-replicas-max-lag", 10, 0, INT_MAX, alias="min-slaves-max-lag",
            applies="NOREPLICAS refusal (replication)"),
    integer("min-replicas-to-write", 0, 0, INT_MAX, alias="min-slaves-to-write",
            applies="NOREPLICAS refusal (replication)"),
    enum("oom-score-adj", ("no", "yes", "relative", "absolute"), "no"),
    integer("port", 6379, 0, 65535, applies="TCP port (server)"),
    string("proc-title-template", "{title} {listen-addr} {server-mode}"),
    enum("propagation-error-behavior", ("ignore", "panic", "panic-on-replicas"), "ignore"),
    boolean("protected-mode", True, applies="non-loopback clients refused without a password (server)"),
    memory("proto-max-bulk-len", 536870912, 1048576, LLONG_MAX, applies="request parser limit (server)"),
    boolean("rdb-del-sync-files", False),
    boolean("rdb-save-incremental-fsync", True),
    boolean("rdbcompression", True, applies="LZF in RDB files and DUMP (rdb)"),
    memory("repl-backlog-size", 1048576, 1, LLONG_MAX, applies="backlog size (replication)"),
    integer("repl-backlog-ttl", 3600, 0, LLONG_MAX),
    boolean("repl-disable-tcp-nodelay", False),
    enum("repl-diskless-load", ("disabled", "on-empty-db", "swapdb"), "disabled"),
    boolean("repl-diskless-sync", True, applies="EOF-marked streamed full sync (replication)"),
    integer("repl-diskless-sync-delay", 5, 0, INT_MAX),
    integer("repl-diskless-sync-max-replicas", 0, 0, INT_MAX),
    integer("repl-ping-replica-period", 10, 1, INT_MAX, alias="repl-ping-slave-period",
            applies="PING to replicas (replication)"),
    integer("repl-timeout", 60, 1, INT_MAX, applies="dead link detection (replication)"),
    string("replica-announce-ip", "", alias="slave-announce-ip",
           applies="REPLCONF ip-address (replication)"),
    integer("replica-announce-port", 0, 0, 65535, alias="slave-announce-port",
            applies="REPLCONF listening-port (replication)"),
    boolean("replica-announced", True, applies="INFO replication field (replication)"),
    boolean("replica-ignore-disk-write-errors", False),
    boolean("replica-ignore-maxmemory", True, alias="slave-ignore-maxmemory", applies="a replica does not evict (eviction)"),
    boolean("replica-lazy-flush", False, alias="slave-lazy-flush"),
    integer("replica-priority", 100, 0, INT_MAX, alias="slave-priority", applies="INFO replication field, read by Sentinel (replication)"),
    boolean("replica-read-only", True, alias="slave-read-only",
            applies="READONLY refusal (replication)"),
    boolean("replica-serve-stale-data", True, alias="slave-serve-stale-data",
            applies="MASTERDOWN refusal (replication)"),
    string("requirepass", "", flags=SECRET | BINARY, applies="the default user's password (acl)"),
    enum("sanitize-dump-payload", ("no", "yes", "clients"), "no"),
    integer("set-max-intset-entries", 512, 0, LLONG_MAX, applies="OBJECT ENCODING and RDB encoding of sets (encodings)"),
    enum("shutdown-on-sigint", ("default", "save", "nosave", "now", "force"), "default"),
    enum("shutdown-on-sigterm", ("default", "save", "nosave", "now", "force"), "default"),
    integer("shutdown-timeout", 10, 0, INT_MAX),
    integer("slowlog-log-slower-than", 10000, -1, LLONG_MAX, applies="SLOWLOG (observability)"),
    integer("slowlog-max-len", 128, 0, LLONG_MAX, applies="SLOWLOG (observability)"),
    memory("stream-node-max-bytes", 4096, 0, LLONG_MAX, applies="stream node size (streams)"),
    integer("stream-node-max-entries", 100, 0, LLONG_MAX, applies="stream node size, XADD/XTRIM ~ (streams)"),
    integer("tcp-keepalive", 300, 0, INT_MAX, applies="TCP keepalive (server)"),
    integer("timeout", 0, 0, INT_MAX, applies="idle client timeout (server)"),
    enum("tls-auth-clients", ("no", "yes", "optional"), "yes"),
    string("tls-ca-cert-dir", ""),
    string("tls-ca-cert-file", ""),
    string("tls-cert-file", ""),
    string("tls-ciphers", ""),
    string("tls-ciphersuites", ""),
    string("tls-client-cert-file", ""),
    string("tls-client-key-file", ""),
    string("tls-client-key-file-pass", ""),
    boolean("tls-cluster", False),
    string("tls-dh-params-file", ""),
    string("tls-key-file", ""),
    string("tls-key-file-pass", ""),
    integer("tls-port", 0, 0, 65535),
    boolean("tls-prefer-server-ciphers", False),
    string("tls-protocols", ""),
    boolean("tls-replication", False),
    integer("tls-session-cache-size", 20480, 0, INT_MAX),
    integer("tls-session-cache-timeout", 300, 0, INT_MAX),
    boolean("tls-session-caching", True),
    integer("tracking-table-max-keys", 1000000, 0, LLONG_MAX, applies="client tracking table bound (tracking)"),
    integer("zset-max-listpack-entries", 128, 0, LLONG_MAX, alias="zset-max-ziplist-entries", applies="OBJECT ENCODING and RDB encoding of sorted sets (encodings)"),
    memory("zset-max-listpack-value", 64, 0, LLONG_MAX, alias="zset-max-ziplist-value", applies="OBJECT ENCODING and RDB encoding of sorted sets (encodings)"),
)

# trioredis's own options (not Redis's).
OWN_OPTIONS: tuple[Option, ...] = (
    Option("loadplugin", WORDS, [], flags=IMMUTABLE | MULTI_LINE,
           applies="plugin modules to load (plugin_manager)"),
)
