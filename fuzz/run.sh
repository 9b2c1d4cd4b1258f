#!/bin/sh
# Fuzz the request parser for N seconds (default 60) from the committed seeds.
# New corpus entries go to a scratch directory, so the committed seeds stay small.
# Needs atheris (`pip install atheris`; wheels exist for CPython 3.11 on x86-64 Linux).
set -e
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-60}
work=$(mktemp -d "${TMPDIR:-/tmp}/trioredis-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$here"/seeds/* "$work"/
exec_status=0
python3 "$here/fuzz_resp.py" "$work" -max_total_time="$seconds" -max_len=4096 \
    -print_final_stats=1 || exec_status=$?
exit $exec_status
