#!/usr/bin/env bash
# loadtest/ab.sh: one measured window of push-server built from a source
# tree, for A/B comparisons (run it alternately on two trees or two settings
# in one sitting; the machine drifts by the hour). Same layout as run.sh: the
# server alone on core 0 with GOMAXPROCS=1, Redis, the mock APNs and the
# generator on core 1, a stdlib-verify baseline before the window.
#
#   loadtest/ab.sh SRC_DIR OUT_PREFIX [SERVER_ENV=value ...]
#
# It writes OUT_PREFIX.loadgen (the generator's report) and, 12 s after the
# server starts (inside the window with the default knobs), a 5 s
# observation of the server: PERF=record (default) → OUT_PREFIX.perf.data
# (perf record -g), PERF=stat → OUT_PREFIX.stat (system calls by kind),
# PERF=none → nothing. Knobs: APNS=1 (token auth against the mock APNs
# instead of the noop provider; MOCKBIN, MOCKARGS), CLOSED (12s), OPEN (0),
# RATE (open-loop rate; 0 = half the closed-loop maximum), CONNS (64).
#
# Examples used for BENCHMARKS.md:
#   PERF=stat APNS=1 loadtest/ab.sh . /tmp/ab/apns
#   CLOSED=1s OPEN=12s RATE=15000 loadtest/ab.sh . /tmp/ab/d200 REDIS_MAX_FLUSH_DELAY=200us
set -euo pipefail

src=$1
out=$2
shift 2
for tool in go redis-server taskset curl; do
	command -v "$tool" >/dev/null || { echo "ab.sh: needs $tool on PATH" >&2; exit 1; }
done
if [ "${PERF:-record}" != none ] && ! command -v perf >/dev/null; then
	echo "ab.sh: needs perf (or PERF=none)" >&2
	exit 1
fi
mkdir -p "$(dirname "$out")"
bin=$(mktemp -d "${TMPDIR:-/tmp}/push-ab.XXXXXX")
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$bin"
}
trap cleanup EXIT
# shellcheck source=loadtest/redis.sh
. "$(dirname "$0")/redis.sh"

(cd "$src" && go build -o "$bin/" . ./loadtest/cmd/loadgen ./loadtest/cmd/verifyrate ./loadtest/cmd/mockapns)
eval "$("$bin/push-server" keygen)"

# Ports from 30000–49999, never Redis's 6379.
redis_port=$((30000 + RANDOM % 20000))
server_port=$((30000 + RANDOM % 20000))
taskset -c 1 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$bin" >"$bin/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
wait_redis "$redis_pid" "$redis_port" "$bin/redis.log"

provider=noop
provider_env=()
watch="server=PID,redis=$redis_pid"
if [ "${APNS:-}" = 1 ]; then
	# shellcheck disable=SC2086 # MOCKARGS is a list of flags
	taskset -c 1 "${MOCKBIN:-$bin/mockapns}" ${MOCKARGS:-} -env "$bin/mock.env" -cert "$bin/mock.pem" >"$out.mock.log" 2>&1 &
	mock_pid=$!
	pids+=("$mock_pid")
	for _ in $(seq 50); do [ -s "$bin/mock.env" ] && break; sleep 0.1; done
	mapfile -t provider_env <"$bin/mock.env"
	provider=apns
	watch="$watch,mock=$mock_pid"
fi

env PORT="$server_port" RELAY_PUBLIC_KEY="$RELAY_PUBLIC_KEY" LOG_LEVEL=warn GOMAXPROCS=1 RATE_LIMIT_PER_IP=0 \
	REDIS_URL="redis://127.0.0.1:$redis_port" "${provider_env[@]}" "$@" \
	taskset -c 0 "$bin/push-server" >"$out.server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$server_port/health" >/dev/null && break; sleep 0.1; done

observer=""
case ${PERF:-record} in
record)
	(sleep 12; perf record -F 2000 -g -p "$server_pid" -o "$out.perf.data" -- sleep 5 >/dev/null 2>&1) &
	observer=$!
	;;
stat)
	(sleep 12; perf stat -e syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep \
		-p "$server_pid" -o "$out.stat" -- sleep 5 >/dev/null 2>&1) &
	observer=$!
	;;
esac

"$bin/loadgen" -url "http://127.0.0.1:$server_port" -key "$RELAY_PRIVATE_KEY" -type "$provider" \
	-conns "${CONNS:-64}" -closed "${CLOSED:-12s}" -open "${OPEN:-0}" -rate "${RATE:-0}" -pin-cpu 1 -max-rate 40000 \
	-before-window "taskset -c 0 env GOMAXPROCS=1 $bin/verifyrate -d 2s" -watch "${watch/PID/$server_pid}" >"$out.loadgen" 2>&1
[ -n "$observer" ] && wait "$observer"
grep -E 'closed loop|open loop|latency from|VERIFY|CPU' "$out.loadgen"
