package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// pinToCPU moves every thread of this process to one CPU and sets
// GOMAXPROCS to 1, as `taskset -c cpu` with GOMAXPROCS=1 would have. It runs
// after signing, so signing uses every core while the server is idle, and
// the measured window gives the server its core alone. sched_setaffinity
// works per thread; threads created later inherit it from their creator.
func pinToCPU(cpu int) error {
	if cpu < 0 || cpu >= 1024 {
		return fmt.Errorf("cpu %d out of range", cpu)
	}
	runtime.GOMAXPROCS(1)
	var mask [1024 / 64]uint64
	mask[cpu/64] = 1 << (cpu % 64)
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("cannot list threads: %w", err)
	}
	for _, t := range tids {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid),
			unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask[0])))
		if errno != 0 && errno != syscall.ESRCH { // ESRCH: the thread exited meanwhile
			return fmt.Errorf("cannot pin thread %d to cpu %d: %w", tid, cpu, errno)
		}
	}
	return nil
}

// watched is a process whose CPU time the phases report, e.g. the server
// (is its core saturated?) and the mock APNs (is it the bottleneck?).
type watched struct {
	name string
	pid  int
}

func parseWatch(s string) ([]watched, error) {
	var out []watched
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		name, pidStr, ok := strings.Cut(part, "=")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			return nil, fmt.Errorf("-watch %q: want name=pid[,name=pid…]", part)
		}
		out = append(out, watched{name, pid})
	}
	return out, nil
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU is a process's user+system CPU time, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("cannot parse /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("cannot parse /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, errors.New("cannot parse /proc stat times")
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// cpuSnapshot is the CPU time of each watched process at one moment.
type cpuSnapshot []time.Duration

func snapshot(ws []watched) cpuSnapshot {
	s := make(cpuSnapshot, len(ws))
	for i, w := range ws {
		s[i], _ = procCPU(w.pid)
	}
	return s
}

// usage formats each watched process's share of one core between two
// snapshots taken elapsed apart: "server 99% mock 12%".
func usage(ws []watched, from, to cpuSnapshot, elapsed time.Duration) string {
	var parts []string
	for i, w := range ws {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", w.name, 100*(to[i]-from[i]).Seconds()/elapsed.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// rss is the VmRSS and VmHWM (peak) lines of /proc/<pid>/status, in kB.
func rss(pid int) (rssKB, hwmKB int64, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch name {
		case "VmRSS":
			rssKB = n
		case "VmHWM":
			hwmKB = n
		}
	}
	return rssKB, hwmKB, nil
}
