//go:build !linux

package verify

import "time"

// threadCPU falls back to wall time where the thread's CPU time is not read.
func threadCPU() time.Duration { return time.Duration(time.Now().UnixNano()) }

// processCPU is not read here: the cpu-ns/op metrics read 0.
func processCPU() time.Duration { return 0 }
