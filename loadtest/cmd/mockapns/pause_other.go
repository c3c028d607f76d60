//go:build !linux

package main

import "time"

// pause sleeps for d. Elsewhere than Linux it is a plain time.Sleep: the
// burst still gathers, but the netpoller may wake the process meanwhile.
func pause(d time.Duration) { time.Sleep(d) }
