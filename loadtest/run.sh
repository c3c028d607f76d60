#!/usr/bin/env bash
# loadtest/run.sh: measures push-server's send path on this machine.
#
#   loadtest/run.sh send   (make loadtest)      bare fasthttp (the ceiling), then push-server
#                                               with the noop provider, then APNs (token auth, TLS mock)
#   loadtest/run.sh rss    (make loadtest-rss)  RSS with 1,000,000 clients in Redis
#   loadtest/run.sh curve  (make loadtest-curve) the bare ceiling (for the bound), then for noop
#                                               and APNs open loops from 10 % to 100 % of the
#                                               closed-loop maximum, drawn as CURVE_OUT.svg
#                                               from CURVE_OUT.csv (issue 18 goal 7)
#   loadtest/run.sh forged (make loadtest-forged) noop provider, closed loop: clean
#                                               sends, then with FORGED (0.2) of them signed
#                                               by a wrong key, alternating ROUNDS (3) times
#                                               on one server: what the good sends keep
#
# Layout on a 2-core machine: the server alone on core 0 (taskset -c 0,
# GOMAXPROCS=1); the load generator, Redis and the mock APNs on core 1. The
# baseline, stdlib crypto/ed25519.Verify per second, is measured on core 0
# with GOMAXPROCS=1 right before each load window (loadgen -before-window),
# and the headline is sends/s ÷ verifies/s: the share of one core's
# verification speed that the whole send path keeps. A bare fasthttp server
# (loadtest/cmd/barehttp) under the same loop first gives the HTTP-only
# ceiling of that ratio on this machine, and sends/s ÷ its answers/s.
#
# It starts its own redis-server on a free port (never 6379), and stops
# every process it started on every exit path (trap). Knobs (environment):
# CLIENTS (1000), CLOSED (5s), OPEN (10s), CONNS (64), RSS_CLIENTS (1000000),
# RSS_SAMPLE (100000), SERVER_CPU (0), LOAD_CPU (1); for curve: CURVE_STEPS (10),
# CURVE_STEP (5s, each step's open loop), CURVE_OUT (docs/loadtest-curve),
# CURVE_NOTE (appended to the picture's note line, e.g. "machine shared");
# for forged: FORGED (0.2), ROUNDS (3).
#
# send's open loop runs at a quarter of the run's bound (issue 18 goal 3):
# 0.25 × bound × the verifies/s measured right before that window, and the
# summary prints p99 against the goals (noop ≤ 2 ms, APNs ≤ 4 ms) as PASS or
# MISS. It is a report: the run succeeds either way.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-send}
CLIENTS=${CLIENTS:-1000}
CLOSED=${CLOSED:-5s}
OPEN=${OPEN:-10s}
CONNS=${CONNS:-64}
RSS_CLIENTS=${RSS_CLIENTS:-1000000}
RSS_SAMPLE=${RSS_SAMPLE:-100000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
FORGED=${FORGED:-0.2}
ROUNDS=${ROUNDS:-3}

for tool in go redis-server redis-cli taskset curl; do
	command -v "$tool" >/dev/null || { echo "run.sh: needs $tool on PATH" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/push-loadtest.XXXXXX")
bin=$work/bin
pids=()

# stop_pid asks a process to stop (SIGTERM), waits up to 10 s, then kills it.
stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do stop_pid "$pid"; done
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints a port nothing listens on; never Redis's default 6379.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		[ "$p" = 6379 ] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "run.sh: no free port found" >&2
	return 1
}

# wait_until runs its arguments every 0.1 s until they succeed (10 s at most).
wait_until() {
	for _ in $(seq 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "run.sh: timed out waiting for: $*" >&2
	return 1
}

# shellcheck source=loadtest/redis.sh
. loadtest/redis.sh

# start_redis starts a throwaway redis-server on core LOAD_CPU; sets
# redis_port and redis_pid.
start_redis() {
	redis_port=$(free_port)
	mkdir -p "$work/redis-$redis_port"
	taskset -c "$LOAD_CPU" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
		--appendonly no --dir "$work/redis-$redis_port" >"$work/redis-$redis_port.log" 2>&1 &
	redis_pid=$!
	pids+=("$redis_pid")
	wait_redis "$redis_pid" "$redis_port" "$work/redis-$redis_port.log"
}

# start_server starts push-server alone on core SERVER_CPU with GOMAXPROCS=1
# and the extra environment given as arguments; sets server_port, server_pid.
# The per-IP registration limit is off: every client the generator registers
# comes from one address (the send path has no rate limit to turn off).
start_server() {
	server_port=$(free_port)
	env PORT="$server_port" RELAY_PUBLIC_KEY="$RELAY_PUBLIC_KEY" LOG_LEVEL=warn GOMAXPROCS=1 RATE_LIMIT_PER_IP=0 "$@" \
		taskset -c "$SERVER_CPU" "$bin/${SERVER_BIN:-push-server}" >"$work/server-$server_port.log" 2>&1 &
	server_pid=$!
	pids+=("$server_pid")
	if ! wait_until curl -sf "http://127.0.0.1:$server_port/health"; then
		cat "$work/server-$server_port.log" >&2
		return 1
	fi
}

# loadgen runs the generator against the server; its signing uses every
# core (the server is idle then), the window runs pinned to LOAD_CPU.
loadgen() {
	"$bin/loadgen" -url "http://127.0.0.1:$server_port" -key "$RELAY_PRIVATE_KEY" \
		-conns "$CONNS" -closed "$CLOSED" -open "$OPEN" -pin-cpu "$LOAD_CPU" \
		-before-window "taskset -c $SERVER_CPU env GOMAXPROCS=1 $bin/verifyrate -d 3s -relay-callers $CONNS" "$@"
}

# result KEY FILE prints KEY's value from FILE's RESULT / VERIFY lines.
result() {
	grep -E '^(RESULT|VERIFY) ' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | tail -1
}

# bound prints the most any send path can reach on this machine in this
# run: one bare fasthttp answer (per CPU-second of the bare server, so a
# saturated generator does not lower it) plus one relay verification at full
# batches (verifyrate -relay-callers), both in stdlib verifies, nothing else.
bound() {
	local out=$1 bare_rps bare_cpu verifies relay
	bound_ratio=$(bound_of "$out")
	[ -n "$bound_ratio" ] || return 0
	bare_rps=$(result closed_rps "$out")
	bare_cpu=$(result closed_cpu_server "$out")
	verifies=$(result verifies_per_s "$out")
	relay=$(result relay_verifies_per_s "$out")
	awk -v r="$bare_rps" -v c="$bare_cpu" -v v="$verifies" -v x="$relay" -v b="$bound_ratio" 'BEGIN{
		http = v / (r / c); ver = v / x
		printf "== bound: a bare answer costs %.3f of a stdlib verify (%.0f answers per server CPU-second), relay verification at full batches %.3f (%.0f/s): no send path beats 1 ÷ (%.3f + %.3f) = %s here\n", http, r / c, ver, x, http, ver, b
	}'
}

# bound_of FILE prints the bound (see bound) of the bare run in FILE, or
# nothing when that run gave no figure for it.
bound_of() {
	local out=$1 bare_rps bare_cpu verifies relay
	bare_rps=$(result closed_rps "$out")
	bare_cpu=$(result closed_cpu_server "$out")
	verifies=$(result verifies_per_s "$out")
	relay=$(result relay_verifies_per_s "$out")
	awk -v c="$bare_cpu" -v x="$relay" 'BEGIN{exit !(c > 0 && x > 0)}' || return 0
	awk -v r="$bare_rps" -v c="$bare_cpu" -v v="$verifies" -v x="$relay" 'BEGIN{printf "%.3f", 1 / (v / (r / c) + v / x)}'
}

# quarter_bound_args FILE sets quarter_bound to loadgen's flags for an open
# loop at a quarter of the bound of the bare run in FILE (issue 18 goal 3):
# -rate-verifies 0.25 × bound, which loadgen multiplies by the verifies/s it
# measures right before its own window. With no bound it stays empty, and
# loadgen falls back to half the closed-loop maximum.
quarter_bound_args() {
	local b
	b=$(bound_of "$1")
	quarter_bound=()
	if [ -n "$b" ]; then
		quarter_bound=(-rate-verifies "$(awk -v b="$b" 'BEGIN{printf "%.4f", b / 4}')")
	fi
}

# goal3 NAME FILE LIMIT_MS prints the open loop's p99 in FILE against the
# goal LIMIT_MS, as PASS or MISS; a report line, never a failure.
goal3() {
	local name=$1 out=$2 limit=$3 f
	f=$(result open_rate_verifies "$out")
	if [ -z "$f" ] || [ -z "$(result p99_us "$out")" ]; then
		echo "   $name: not measured at a quarter of the bound (no bound in this run); goal p99 ≤ $limit ms"
		return 0
	fi
	awk -v n="$name" -v l="$limit" -v f="$f" -v r="$(result open_rate "$out")" -v a="$(result p50_us "$out")" \
		-v b="$(result p99_us "$out")" -v c="$(result p999_us "$out")" -v d="$(result due_p99_us "$out")" 'BEGIN{
		printf "   %s at %s/s (%.4f × its verifies/s): p50 %.3f ms, p99 %.3f ms, p999 %.3f ms (p99 from due time %.3f ms); goal p99 ≤ %s ms: %s\n",
			n, r, f, a / 1000, b / 1000, c / 1000, d / 1000, l, (b <= l * 1000 ? "PASS" : "MISS")
	}'
}

# start_mockapns starts the TLS mock APNs on core LOAD_CPU; sets mock_pid and
# apns_env (the server's environment to reach it).
start_mockapns() {
	taskset -c "$LOAD_CPU" "$bin/mockapns" -env "$work/mockapns.env" -cert "$work/mockapns.pem" >"$work/mockapns.log" 2>&1 &
	mock_pid=$!
	pids+=("$mock_pid")
	wait_until test -s "$work/mockapns.env"
	mapfile -t apns_env <"$work/mockapns.env"
}

summary() {
	local name=$1 out=$2 rps verifies
	rps=$(result closed_rps "$out")
	verifies=$(result verifies_per_s "$out")
	echo
	echo "== $name: $rps sends/s ÷ $verifies ed25519 verifies/s (same core, same run) = $(awk -v a="$rps" -v b="$verifies" 'BEGIN{printf "%.3f", a/b}')"
	if [ -n "${bound_ratio:-}" ]; then
		echo "   = $(awk -v a="$rps" -v b="$verifies" -v c="$bound_ratio" 'BEGIN{printf "%.3f", a/b/c}') of this run's bound ($bound_ratio)"
	fi
	if [ -s "$work/bare.out" ]; then
		echo "   ÷ $(result closed_rps "$work/bare.out") bare fasthttp answers/s (the HTTP-only ceiling, same run) = $(awk -v a="$rps" -v b="$(result closed_rps "$work/bare.out")" 'BEGIN{printf "%.3f", a/b}')"
	fi
	echo "   open loop at $(result open_rate "$out")/s: p50 $(result p50_us "$out") µs, p90 $(result p90_us "$out") µs, p99 $(result p99_us "$out") µs, p999 $(result p999_us "$out") µs from release (p99 $(result due_p99_us "$out") µs from due time; the pacer's p99 lateness $(result pacer_late_p99_us "$out") µs)"
	echo "   statuses: closed $(result closed_statuses "$out"); open $(result open_statuses "$out")"
}

echo "building into $work/bin"
go build -o "$bin/" . ./loadtest/cmd/...
eval "$("$bin/push-server" keygen)"
export RELAY_PUBLIC_KEY RELAY_PRIVATE_KEY
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
echo "machine: $machine"

case $mode in
send)
	start_redis
	echo
	echo "### ceiling: bare fasthttp answering every request, nothing else (server on core $SERVER_CPU)"
	SERVER_BIN=barehttp start_server
	# It answers ~3x faster than the gateway: sign enough for that rate.
	loadgen -clients "$CLIENTS" -type noop -open 0 -max-rate 150000 -watch "server=$server_pid" | tee "$work/bare.out"
	stop_pid "$server_pid"
	bare_rps=$(result closed_rps "$work/bare.out")
	bare_verifies=$(result verifies_per_s "$work/bare.out")
	quarter_bound_args "$work/bare.out"
	echo
	echo "### noop provider, Redis store (server on core $SERVER_CPU; loadgen + redis on core $LOAD_CPU)"
	start_server REDIS_URL="redis://127.0.0.1:$redis_port"
	loadgen -clients "$CLIENTS" -type noop "${quarter_bound[@]}" -watch "server=$server_pid,redis=$redis_pid" | tee "$work/noop.out"
	stop_pid "$server_pid"

	echo
	echo "### APNs provider (token auth) against the TLS mock APNs on core $LOAD_CPU, Redis store"
	start_mockapns
	start_server REDIS_URL="redis://127.0.0.1:$redis_port" "${apns_env[@]}"
	loadgen -clients "$CLIENTS" -type apns "${quarter_bound[@]}" -watch "server=$server_pid,mockapns=$mock_pid,redis=$redis_pid" | tee "$work/apns.out"
	stop_pid "$server_pid"
	stop_pid "$mock_pid"
	cat "$work/mockapns.log"

	echo
	echo "== ceiling: $bare_rps bare fasthttp answers/s ÷ $bare_verifies ed25519 verifies/s = $(awk -v a="$bare_rps" -v b="$bare_verifies" 'BEGIN{printf "%.3f", a/b}') (no send can beat this ratio here)"
	bound "$work/bare.out"
	summary "noop, redis" "$work/noop.out"
	summary "apns (token, TLS mock), redis" "$work/apns.out"
	echo
	echo "== goal 3 (issue 18): open loop at a quarter of the bound, latency from release (a report, not a test)"
	goal3 noop "$work/noop.out" 2
	goal3 apns "$work/apns.out" 4
	;;
curve)
	CURVE_STEPS=${CURVE_STEPS:-10}
	CURVE_STEP=${CURVE_STEP:-5s}
	CURVE_OUT=${CURVE_OUT:-docs/loadtest-curve}
	# The code measured, taken now: the tree may change during the run.
	rev=$(git describe --always --dirty 2>/dev/null || echo 'no git')
	start_redis
	echo
	echo "### ceiling: bare fasthttp, for this run's bound (server on core $SERVER_CPU)"
	SERVER_BIN=barehttp start_server
	loadgen -clients "$CLIENTS" -type noop -open 0 -max-rate 150000 -watch "server=$server_pid" | tee "$work/bare.out"
	stop_pid "$server_pid"
	bound "$work/bare.out"
	quarter_bound_args "$work/bare.out"
	sweep=(-open "$CURVE_STEP" -sweep "$CURVE_STEPS" -sweep-from 0.1 -sweep-to 1 -curve-csv "$work/curve.csv" "${quarter_bound[@]}")
	echo
	echo "### noop provider, Redis store: $CURVE_STEPS open loops of $CURVE_STEP, 10 % to 100 % of the closed-loop maximum"
	start_server REDIS_URL="redis://127.0.0.1:$redis_port"
	loadgen -clients "$CLIENTS" -type noop "${sweep[@]}" -watch "server=$server_pid,redis=$redis_pid"
	stop_pid "$server_pid"
	echo
	echo "### APNs provider (token auth) against the TLS mock APNs: the same sweep"
	start_mockapns
	start_server REDIS_URL="redis://127.0.0.1:$redis_port" "${apns_env[@]}"
	loadgen -clients "$CLIENTS" -type apns "${sweep[@]}" -watch "server=$server_pid,mockapns=$mock_pid,redis=$redis_pid"
	stop_pid "$server_pid"
	stop_pid "$mock_pid"
	mkdir -p "$(dirname "$CURVE_OUT")"
	cp "$work/curve.csv" "$CURVE_OUT.csv"
	"$bin/curveplot" -in "$CURVE_OUT.csv" -out "$CURVE_OUT.svg" -goals noop=2ms,apns=4ms \
		-note "$machine; $(date -u '+%Y-%m-%d %H:%M') UTC; $rev; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)${CURVE_NOTE:+; $CURVE_NOTE}"
	echo
	echo "== curve: $CURVE_OUT.csv ($(($(wc -l <"$CURVE_OUT.csv") - 1)) points), $CURVE_OUT.svg"
	;;
rss)
	start_redis
	echo
	echo "### $RSS_CLIENTS clients in Redis, written by the server's own store code"
	"$bin/fillredis" -redis "redis://127.0.0.1:$redis_port" -n "$RSS_CLIENTS" -client-prefix rss-
	echo "redis: $(redis-cli -p "$redis_port" dbsize) keys, $(redis-cli -p "$redis_port" info memory | sed -n 's/^used_memory_human://p' | tr -d '\r')"
	start_server REDIS_URL="redis://127.0.0.1:$redis_port"
	echo "server RSS at start: $(grep VmRSS "/proc/$server_pid/status" | awk '{print $2/1024 " MB"}')"
	echo "### sends to a random sample of $RSS_SAMPLE of them"
	loadgen -register=false -clients "$RSS_CLIENTS" -client-prefix rss- -sample "$RSS_SAMPLE" \
		-watch "server=$server_pid" | tee "$work/rss.out"
	echo
	echo "== server with $RSS_CLIENTS clients in Redis, $RSS_SAMPLE of them sent to: RSS $(awk -v k="$(result server_rss_kb "$work/rss.out")" 'BEGIN{printf "%.1f", k/1024}') MB, peak $(awk -v k="$(result server_hwm_kb "$work/rss.out")" 'BEGIN{printf "%.1f", k/1024}') MB (target < 150 MB)"
	summary "rss run, noop, redis" "$work/rss.out"
	;;
forged)
	# One server for every window, so that the two kinds differ in nothing
	# but the forged share; they alternate so that the machine's drift hits
	# both alike. No verify baseline: the headline is a ratio of two rates
	# of the same server.
	start_redis
	echo
	echo "### noop provider, Redis store (server on core $SERVER_CPU; loadgen + redis on core $LOAD_CPU): clean sends, then $FORGED of them forged, $ROUNDS times"
	start_server REDIS_URL="redis://127.0.0.1:$redis_port"
	for round in $(seq "$ROUNDS"); do
		for kind in clean forged; do
			share=0
			[ "$kind" = forged ] && share=$FORGED
			echo
			echo "## round $round, $kind (forged share $share)"
			"$bin/loadgen" -url "http://127.0.0.1:$server_port" -key "$RELAY_PRIVATE_KEY" \
				-conns "$CONNS" -closed "$CLOSED" -open 0 -pin-cpu "$LOAD_CPU" -clients "$CLIENTS" -type noop \
				-forged "$share" -watch "server=$server_pid,redis=$redis_pid" | tee "$work/$kind-$round.out"
		done
	done
	stop_pid "$server_pid"
	echo
	echo "== good sends (answered 202) per second, clean and with $FORGED forged, same server, same run"
	# Also per server CPU-second: on a busy machine the server may not get
	# its whole core, and then that is the figure that compares.
	clean_sum=0 forged_sum=0 clean_cpu=0 forged_cpu=0
	for round in $(seq "$ROUNDS"); do
		c=$(result closed_ok_rps "$work/clean-$round.out")
		f=$(result closed_ok_rps "$work/forged-$round.out")
		cc=$(result closed_cpu_server "$work/clean-$round.out")
		fc=$(result closed_cpu_server "$work/forged-$round.out")
		clean_sum=$((clean_sum + c)) forged_sum=$((forged_sum + f))
		clean_cpu=$(awk -v a="$clean_cpu" -v b="$cc" 'BEGIN{print a + b}')
		forged_cpu=$(awk -v a="$forged_cpu" -v b="$fc" 'BEGIN{print a + b}')
		echo "   round $round: clean $c/s (server CPU $cc), forged $f/s (server CPU $fc; statuses $(result closed_statuses "$work/forged-$round.out")): $(awk -v f="$f" -v c="$c" 'BEGIN{printf "%.3f", f/c}') of clean, $(awk -v f="$f" -v c="$c" -v fc="$fc" -v cc="$cc" 'BEGIN{printf "%.3f", (f/fc)/(c/cc)}') per server CPU-second"
	done
	echo "== all rounds: the good sends keep $(awk -v f="$forged_sum" -v c="$clean_sum" 'BEGIN{printf "%.3f", f/c}') of their clean rate with $FORGED of the sends forged (goal ≥ 0.8); per server CPU-second $(awk -v f="$forged_sum" -v c="$clean_sum" -v fc="$forged_cpu" -v cc="$clean_cpu" 'BEGIN{printf "%.3f", (f/fc)/(c/cc)}')"
	;;
*)
	echo "usage: loadtest/run.sh send|rss|curve|forged" >&2
	exit 2
	;;
esac
