package main

import (
	"syscall"
	"time"
	"unsafe"
)

// pause sleeps for d in nanosleep(2) without telling the Go scheduler, so
// the goroutine keeps its P and no other thread takes over the netpoller
// meanwhile. That is the point: a thread waiting in the netpoller is woken
// for every segment the client sends (a push is two, HEADERS then DATA),
// and on the load-test VM a wake-up costs far more than a push (see
// conn.run). Holding the P stalls the process's other goroutines for d,
// which a load-test mock with one busy connection can afford: d is short
// and the next burst is read as soon as it ends. An interrupted sleep just
// ends early.
func pause(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_, _, _ = syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}
