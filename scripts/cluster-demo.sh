#!/usr/bin/env bash
# Three trioredis instances (AOF on, each in its own directory) behind twemproxy (`nutcracker`),
# with config/twemproxy/nutcracker.yml.  Runs in the foreground until Ctrl-C, which stops all four.
#
#   scripts/cluster-demo.sh            # instances on 7001-7003, proxy on 22121
#   redis-cli -p 22121 set greeting hello   # one-shot redis-cli: twemproxy does not proxy the
#                                           # COMMAND DOCS an interactive redis-cli sends
#   scripts/cluster-demo.sh --smoke    # start, write 1,000 keys through the proxy, show each
#                                      # instance's share, stop (exit 0 when all went well)
#
# Environment: PYTHON (default python3), DEMO_DIR (default /tmp/trioredis-cluster-demo),
# PORTS (three instance ports, default "7001 7002 7003"), PROXY_PORT (22121), STATS_PORT (22222).
# Other ports than the defaults are written into a copy of the shipped config in DEMO_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
DEMO_DIR="${DEMO_DIR:-${TMPDIR:-/tmp}/trioredis-cluster-demo}"
read -r -a PORTS <<< "${PORTS:-7001 7002 7003}"
PROXY_PORT="${PROXY_PORT:-22121}"
STATS_PORT="${STATS_PORT:-22222}"
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1

if ! command -v nutcracker >/dev/null; then
  echo "nutcracker (twemproxy) is not installed: apt-get install nutcracker (make system-deps)" >&2
  exit 1
fi
if [ "${#PORTS[@]}" -ne 3 ]; then
  echo "PORTS must name three ports" >&2
  exit 1
fi

mkdir -p "$DEMO_DIR"
# The shipped config with this run's ports (unchanged for the defaults).
sed -e "s/127.0.0.1:7001:/127.0.0.1:${PORTS[0]}:/" \
    -e "s/127.0.0.1:7002:/127.0.0.1:${PORTS[1]}:/" \
    -e "s/127.0.0.1:7003:/127.0.0.1:${PORTS[2]}:/" \
    -e "s/listen: 127.0.0.1:22121/listen: 127.0.0.1:${PROXY_PORT}/" \
    "$ROOT/config/twemproxy/nutcracker.yml" > "$DEMO_DIR/nutcracker.yml"

pids=()
stop_all() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# PING answered with +PONG (not -LOADING), within 60 seconds.
wait_pong() {
  "$PYTHON" - "$1" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")  # twemproxy parses no inline commands
            if sock.recv(64).startswith(b"+PONG"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(f"nothing answers PING on port {sys.argv[1]}")
EOF
}

for index in 0 1 2; do
  dir="$DEMO_DIR/instance-$((index + 1))"
  mkdir -p "$dir"
  "$PYTHON" -m trioredis --port "${PORTS[$index]}" --bind 127.0.0.1 --dir "$dir" \
      --appendonly yes --appendfsync everysec --save '' >"$dir/server.log" 2>&1 &
  pids+=("$!")
done
for port in "${PORTS[@]}"; do wait_pong "$port"; done

nutcracker -c "$DEMO_DIR/nutcracker.yml" -a 127.0.0.1 -s "$STATS_PORT" \
    -o "$DEMO_DIR/nutcracker.log" &
pids+=("$!")
wait_pong "$PROXY_PORT"

echo "trioredis instances on ${PORTS[*]} (data and logs in $DEMO_DIR/instance-N)"
echo "twemproxy on $PROXY_PORT (config $DEMO_DIR/nutcracker.yml, log $DEMO_DIR/nutcracker.log)"

if [ "$SMOKE" = 1 ]; then
  "$PYTHON" - "$PROXY_PORT" "${PORTS[@]}" <<'EOF'
import sys
import redis
proxy, *ports = (int(port) for port in sys.argv[1:])
# twemproxy speaks RESP2 and refuses CLIENT SETINFO: no library name/version on connect.
client = redis.Redis(port=proxy, protocol=2, driver_info=None, socket_timeout=10)
pipe = client.pipeline(transaction=False)
for index in range(1000):
    pipe.set(f"demo:{index}", index)
pipe.execute()
shares = [redis.Redis(port=port, socket_timeout=10).dbsize() for port in ports]
for port, share in zip(ports, shares):
    print(f"instance on {port}: {share} keys")
assert client.get("demo:999") == b"999"
sys.exit(0 if all(shares) and sum(shares) >= 1000 else "keys not spread over all three")
EOF
  exit 0
fi

echo "Ctrl-C stops all four."
wait
