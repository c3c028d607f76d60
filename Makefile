# push-server — two commands: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
PORT ?= 3000
DEV_ENV := .dev/relay.env

.PHONY: run test vet lint bench bench-compare bench-baseline loadtest loadtest-rss loadtest-forged fuzz build redis-server clean sdk http-ece hostile faults k6-check image image-check

build:
	$(GO) build -o bin/push-server .

# run serves on :$(PORT) on the embedded store (./data). It makes a relay key
# pair once, in $(DEV_ENV), so that the README's curl walk-through can sign.
run: $(DEV_ENV)
	@set -a; source $(DEV_ENV); set +a; \
	echo "relay public key: $$RELAY_PUBLIC_KEY (private key in $(DEV_ENV))"; \
	PORT=$(PORT) LOG_FORMAT=text SHUTDOWN_DELAY=0 $(GO) run .

$(DEV_ENV):
	@mkdir -p .dev
	@$(GO) run . keygen > $@.tmp && mv $@.tmp $@

# test needs a redis-server binary: the tests start their own throwaway
# servers on free ports and never touch one they did not start.
# PUSH_SERVER_FULL_TESTS=1 turns a missing redis-server or SDK into a
# failure: a plain `go test ./...` skips those tests, saying how to run them;
# `go test -short ./...` skips every Redis, cluster, binary and SDK test.
test: redis-server sdk http-ece lint k6-check
	PUSH_SERVER_FULL_TESTS=1 $(GO) test -race -count=1 -timeout 10m ./...
	# The allocation tests (…DoesNotAllocate, …AllocatesOnce, …AllocatesOnly…) build only without -race (the race detector allocates).
	PUSH_SERVER_FULL_TESTS=1 $(GO) test -count=1 -run 'DoesNotAllocate|AllocatesOnce|AllocatesOnly' ./...

# sdk installs the pinned WalletConnect SDK that the acceptance test drives.
SDK_DIR := router/testdata/walletconnect-sdk
sdk: $(SDK_DIR)/node_modules/.package-lock.json
$(SDK_DIR)/node_modules/.package-lock.json: $(SDK_DIR)/package-lock.json
	npm ci --prefix $(SDK_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error

# k6-check type-checks loadtest/k6/*.js against k6's API types (@types/k6)
# with TypeScript (tsc --checkJs --noEmit, loadtest/k6/jsconfig.json): k6
# cannot be installed here, but a script calling a k6 API wrongly fails
# here. Both packages are pinned in loadtest/k6/package-lock.json.
K6_DIR := loadtest/k6
k6-check: $(K6_DIR)/node_modules/.package-lock.json
	cd $(K6_DIR) && ./node_modules/.bin/tsc -p jsconfig.json
$(K6_DIR)/node_modules/.package-lock.json: $(K6_DIR)/package-lock.json
	npm ci --prefix $(K6_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error

# image builds the container image (Dockerfile; docs/deploy.md, "Container
# image") with docker, else podman, else buildah; IMAGE_TOOL picks one.
# image-check builds and runs its final stage with buildah where no registry
# is reachable (the build stage's output made on the host); it skips when
# buildah is absent.
IMAGE ?= push-server
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_TOOL ?= $(shell if docker info >/dev/null 2>&1; then echo docker; elif command -v podman >/dev/null; then echo podman; elif command -v buildah >/dev/null; then echo buildah; else echo docker; fi)
image:
	$(IMAGE_TOOL) build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

image-check:
	./image-check.sh

# http-ece installs the pinned npm package http_ece, the second implementation
# that decrypts what the Web Push sender encrypts (TestWebPushHTTPECEDecrypts).
ECE_DIR := dispatch/testdata/http-ece
http-ece: $(ECE_DIR)/node_modules/.package-lock.json
$(ECE_DIR)/node_modules/.package-lock.json: $(ECE_DIR)/package-lock.json
	npm ci --prefix $(ECE_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

STATICCHECK_VERSION ?= v0.8.2
lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

redis-server:
	@if ! command -v redis-server >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing redis-server (Debian package) for the tests"; \
			(apt-get install -y -q redis-server >/dev/null 2>&1 || \
			 (apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null)) || exit 1; \
		else \
			echo "make test needs redis-server on PATH (e.g. apt-get install redis-server)"; exit 1; \
		fi; \
	fi

# bench runs every benchmark and compares with the committed baseline
# (bench/baseline.txt) through benchstat, so a regression shows.
bench: bench-compare

# fuzz runs every fuzz target for FUZZTIME each (make test runs only their
# seed corpora). Crashers land in testdata/fuzz/ and become regression seeds.
# FuzzSendParse and FuzzRegisterAgrees are differential: the parsers against
# encoding/json.
FUZZTIME ?= 60s
FUZZ_TARGETS := ./router:FuzzSendParse ./router:FuzzRegisterAgrees ./router:FuzzRegisterParse ./router:FuzzDecodeBlob \
	./verify:FuzzVerify ./verify:FuzzClientAuth ./internal/jsonstr:FuzzAppend
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# hostile: a legitimate sender's p50/p99 alone and with 2,000 idle and 200
# slowloris connections open (docs/reliability.md, "Hostile callers"); make
# test runs a smaller variant under -race.
hostile:
	set -o pipefail; HOSTILE_IDLE=2000 HOSTILE_SLOW=200 HOSTILE_SENDS=2000 $(GO) test -count=1 -v \
		-run '^TestLegitimateSenderHoldsUnderHostileConnections$$' ./router/ | grep -E 'legitimate sender|^(ok|FAIL|---)'

clean:
	rm -rf bin .dev data

# faults runs the fault tests at full size (minutes); make test runs a
# small variant of each. Dedup across a Redis crash: 4 runs of ~400
# sends/s through two instances, the primary SIGKILLed and restarted after
# 5 s, every 202'd message re-sent after the lease (docs/redis.md).
faults: redis-server
	PUSH_SERVER_FULL_TESTS=1 PUSH_FAULTS=full $(GO) test -count=1 -timeout 30m -v -run '^TestDedupSurvivesRedisCrash$$' ./router/

# --- measurement harness (bench/, loadtest/; see BENCHMARKS.md) ---
# bench-compare runs every benchmark BENCH_COUNT times and compares them with
# the committed bench/baseline.txt, so a regression shows as a significant
# delta; bench-baseline rewrites the baseline from a fresh run. The cpu: line
# is dropped: this VM reports a different CPU name from day to day, and
# benchstat would not compare runs whose names differ.
BENCH_COUNT ?= 6
BENCH_PKGS ?= ./...
BENCH_OUT ?= bench/latest.txt
BENCHSTAT ?= $(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
.PHONY: bench-compare bench-baseline loadtest loadtest-rss loadtest-curve loadtest-forged
bench-compare: redis-server
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) $(BENCH_PKGS) | grep -v '^cpu:' | tee $(BENCH_OUT)
	$(BENCHSTAT) bench/baseline.txt $(BENCH_OUT)

bench-baseline: redis-server
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) $(BENCH_PKGS) | grep -v '^cpu:' | tee bench/baseline.txt.tmp
	mv bench/baseline.txt.tmp bench/baseline.txt

# loadtest: the server alone on core 0 (GOMAXPROCS=1) with its own Redis,
# noop then APNs (mock, TLS), against the stdlib verify rate on the same core.
loadtest: redis-server
	loadtest/run.sh send

# loadtest-rss: server RSS with 1,000,000 clients in Redis.
loadtest-rss: redis-server
	loadtest/run.sh rss

# loadtest-curve: open loops from 10 % to 100 % of the closed-loop maximum,
# noop and APNs, drawn as docs/loadtest-curve.svg from docs/loadtest-curve.csv
# (≈ 4 min; CURVE_STEPS, CURVE_STEP, CURVE_OUT in loadtest/run.sh).
loadtest-curve: redis-server
	loadtest/run.sh curve

# loadtest-forged: the noop send path with 20 % of the sends forged (signed by
# a wrong key) against clean sends, same server: the good sends' share of
# their clean rate (FORGED, ROUNDS; issue 18 goal 5).
loadtest-forged: redis-server
	loadtest/run.sh forged
