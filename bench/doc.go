// Package bench holds the in-process benchmarks of push-server's send hot
// path: the whole router over an in-memory listener, each measured next to
// its baselines in the same run (crypto/ed25519.Verify and a bare fasthttp
// handler), with the ratios reported as metrics. It has no code of its own;
// see send_timing_test.go, `make bench` and ../BENCHMARKS.md.
package bench
