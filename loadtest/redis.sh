# loadtest/redis.sh: sourced by run.sh, ab.sh and perfwindow.sh; the wait
# for the redis-server each of them starts.

# wait_redis PID PORT LOG returns once the redis-server PID answers PING on
# PORT, polling every 0.05 s, so the usual start costs no more than before.
# It fails at once when the process has exited (a port taken since it was
# picked, a bad flag) and after REDIS_WAIT seconds (default 60) otherwise,
# printing LOG, redis-server's output, either way so that the cause is
# visible. The bound was 10 s, and run.sh once timed out on a loaded machine
# with nothing to say why; perfwindow.sh gave up silently after 5 s.
wait_redis() {
	local pid=$1 port=$2 log=$3 limit=${REDIS_WAIT:-60}
	local deadline=$((SECONDS + limit))
	# An error reply (LOADING …) is not ready: only PONG is.
	until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; do
		# A child that exited stays a zombie until waited for, and kill -0
		# still finds it: ask ps for its state.
		case $(ps -o stat= -p "$pid" 2>/dev/null) in
		'' | Z*)
			echo "redis-server (pid $pid, port $port) exited before answering PING; its log ($log):" >&2
			cat "$log" >&2
			return 1
			;;
		esac
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "redis-server (pid $pid, port $port) did not answer PING within $limit s; its log ($log):" >&2
			cat "$log" >&2
			return 1
		fi
		sleep 0.05
	done
}
