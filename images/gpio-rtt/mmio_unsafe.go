package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// timeMMIO maps the page at guest-physical address addr through /dev/mem
// and times n 32-bit writes to it, each one store instruction (a guest
// exit when no memory backs the page).
func timeMMIO(addr uint64, n int) ([]time.Duration, error) {
	f, err := os.OpenFile("/dev/mem", os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	page := uint64(os.Getpagesize())
	b, err := unix.Mmap(int(f.Fd()), int64(addr&^(page-1)), int(page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap /dev/mem at %#x: %w", addr, err)
	}
	defer unix.Munmap(b)
	reg := (*uint32)(unsafe.Pointer(&b[addr&(page-1)&^3]))
	rtt := make([]time.Duration, n)
	for i := range rtt {
		t0 := time.Now()
		atomic.StoreUint32(reg, uint32(i))
		rtt[i] = time.Since(t0)
	}
	return rtt, nil
}
