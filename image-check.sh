#!/usr/bin/env bash
# image-check.sh: build and run the Dockerfile's final stage where no
# container registry is reachable (make image-check). The build stage's
# output (static binary, CA bundle, passwd, group, /data) is made on the
# host with the Dockerfile's own go build line and handed to buildah as
# the "build" stage (--build-context); then the image must run as uid
# 10001, print its version, pass `check`, serve /health, and have no shell.
# Skips (exit 0) when buildah is absent. Uses a private buildah store under
# a temporary directory and removes it.
set -euo pipefail
if ! command -v buildah >/dev/null; then
	echo "image-check: buildah not installed (apt-get install buildah); skipped"
	exit 0
fi
tmp=$(mktemp -d)
B=(buildah --root "$tmp/root" --runroot "$tmp/run" --storage-driver vfs)
cleanup() { "${B[@]}" rm --all >/dev/null 2>&1 || true; "${B[@]}" rmi --all --force >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
ctx=$tmp/ctx
mkdir -p "$ctx/etc/ssl/certs" "$ctx/out/data"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/etc/ssl/certs/"
CGO_ENABLED=0 ${GO:-go} build -trimpath -ldflags "-s -w -X main.version=imagecheck" -o "$ctx/out/push-server" .
grep -o "push:x:10001:10001:[^']*" Dockerfile > "$ctx/out/passwd"
grep -o "push:x:10001:'" Dockerfile | tr -d "'" > "$ctx/out/group"
"${B[@]}" build --quiet --isolation chroot --build-context build="$ctx" -t push-server:check . >/dev/null
user=$("${B[@]}" inspect --format '{{.OCIv1.Config.User}}' push-server:check)
[ "$user" = "10001:10001" ] || { echo "image-check: USER is '$user', want 10001:10001"; exit 1; }
c=$("${B[@]}" from push-server:check)
run() { "${B[@]}" run --isolation chroot "$@"; }
[ "$(run "$c" -- /push-server version)" = "push-server vimagecheck" ]
run --env VALIDATE_SIGNATURES=false "$c" -- /push-server check
if run "$c" -- /bin/sh -c true >/dev/null 2>&1; then echo "image-check: the image has a shell"; exit 1; fi
port=$((20000 + RANDOM % 20000))
run --env PORT=$port --env VALIDATE_SIGNATURES=false --env SHUTDOWN_DELAY=0 "$c" -- /push-server >"$tmp/serve.log" 2>&1 &
served=$!
ok=""
for _ in $(seq 50); do
	if body=$(curl -fsS -m 1 "http://127.0.0.1:$port/health" 2>/dev/null); then ok=$body; break; fi
	sleep 0.2
done
kill "$served" 2>/dev/null || true
wait "$served" 2>/dev/null || true
[ "$ok" = "OK, push-server vimagecheck" ] || { echo "image-check: /health answered '$ok'"; cat "$tmp/serve.log"; exit 1; }
echo "image-check: OK (final stage built and run: uid 10001, no shell, check passes, /health answers)"
