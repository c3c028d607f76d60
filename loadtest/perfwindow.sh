#!/usr/bin/env bash
# loadtest/perfwindow.sh: one noop window of push-server built binaries
# (closed loop, or with RATE an open loop), with the server's CPU a send
# and, optionally, a profile or the system calls of the server taken inside
# the window. Unlike ab.sh, which starts perf a fixed 12 s after the server,
# the observer starts from loadgen's -before-window hook (2 s after the
# hook's verify baseline: the 1 s warm-up, then 1 s into the closed loop),
# so it lands in the window however long signing takes on a busy machine.
#
#   go build -o BIN/ . ./loadtest/cmd/loadgen ./loadtest/cmd/verifyrate
#   loadtest/perfwindow.sh BIN OUT_PREFIX [SERVER_ENV=value ...]
#
# PERF=record → OUT_PREFIX.perf.data (perf record -g, 5 s); PERF=stat →
# OUT_PREFIX.stat (system calls by kind); default none. Knobs: CLOSED (8s),
# CONNS (64), MAXRATE (30000: signed requests per second of window).
#
# RATE=N measures an open loop at N sends/s instead (OPEN, 12s, after a
# 200 ms closed loop with no warm-up): what a send costs when the server is
# not saturated and little is shared (issue 18 goal 3). The observer then
# starts 3 s after the verify baseline, 2.8 s into the open loop.
# Layout as run.sh: server on core 0 (GOMAXPROCS=1), Redis and the
# generator on core 1. The last line is the server's CPU µs per send, the
# figure that moves least when other processes share the machine.
set -euo pipefail
bin=$1
out=$2
shift 2
pids=()
rdir=$(mktemp -d "${TMPDIR:-/tmp}/push-perfwindow.XXXXXX")
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$rdir"
}
trap cleanup EXIT
# shellcheck source=loadtest/redis.sh
. "$(dirname "$0")/redis.sh"
eval "$("$bin/push-server" keygen)"
# Ports from 30000–49999, never Redis's 6379.
redis_port=$((30000 + RANDOM % 20000))
server_port=$((30000 + RANDOM % 20000))
taskset -c 1 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$rdir" >"$rdir/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
wait_redis "$redis_pid" "$redis_port" "$rdir/redis.log"
env PORT="$server_port" RELAY_PUBLIC_KEY="$RELAY_PUBLIC_KEY" LOG_LEVEL=warn GOMAXPROCS=1 RATE_LIMIT_PER_IP=0 \
	REDIS_URL="redis://127.0.0.1:$redis_port" "$@" taskset -c 0 "$bin/push-server" >"$out.server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
healthy=
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$server_port/health" >/dev/null && { healthy=1; break; }; sleep 0.1; done
[ -n "$healthy" ] || { echo "perfwindow.sh: push-server did not answer /health within 10 s; its log ($out.server.log):" >&2; cat "$out.server.log" >&2; exit 1; }
before="taskset -c 0 env GOMAXPROCS=1 $bin/verifyrate -d 2s"
if [ -n "${RATE:-}" ]; then
	loop=(-warmup 0 -closed 200ms -open "${OPEN:-12s}" -rate "$RATE")
	delay=3 # the 200 ms closed loop, then 2.8 s into the open loop
else
	loop=(-closed "${CLOSED:-8s}" -open 0)
	delay=2 # the 1 s warm-up, then 1 s into the closed loop
fi
# The observer's subshell writes to /dev/null, not to the hook's output:
# loadgen starts the window only once that output is closed, so a sleeping
# subshell holding it would hold the window back until perf started.
case ${PERF:-none} in
record) before="$before; (sleep $delay; perf record -F 4000 -g -p $server_pid -o $out.perf.data -- sleep 5) >/dev/null 2>&1 &" ;;
stat) before="$before; (sleep $delay; perf stat -e syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,syscalls:sys_enter_epoll_pwait -p $server_pid -o $out.stat -- sleep 5) >/dev/null 2>&1 &" ;;
esac
"$bin/loadgen" -url "http://127.0.0.1:$server_port" -key "$RELAY_PRIVATE_KEY" -type noop \
	-conns "${CONNS:-64}" "${loop[@]}" -pin-cpu 1 -max-rate "${MAXRATE:-30000}" \
	-before-window "$before" -watch "server=$server_pid,redis=$redis_pid" >"$out.loadgen" 2>&1
sleep 1 # the observer ends before the window does
result() { grep -o "$1=[0-9.]*" "$out.loadgen" | cut -d= -f2; }
if [ -n "${RATE:-}" ]; then
	rps=$(result open_rps)
	cpu=$(result open_cpu_server)
	grep -E '^  latency from release' "$out.loadgen" || true
else
	rps=$(result closed_rps)
	cpu=$(result closed_cpu_server)
fi
awk -v r="$rps" -v c="$cpu" -v o="$out" 'BEGIN{printf "%s: %d sends/s, server %.0f%% of its core, %.1f µs of server CPU a send\n", o, r, c*100, c*1e6/r}'
