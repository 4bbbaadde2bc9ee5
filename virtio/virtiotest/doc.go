// Package virtiotest is the driver's side of virtio for device tests:
// fake guest memory (Mem), a driver that lays out a split virtqueue in
// it, adds descriptor chains and reads used elements back (DriverQueue),
// and an Interrupt that records what the device signalled.
//
// A device test typically reads:
//
//	mem := virtiotest.NewMem(1 << 16)
//	d := virtiotest.NewDriverQueue(mem, 0, 16)
//	q := d.Queue() // the device's side, as the transport would hand it over
//	head := d.Add([][]byte{request}, []int{responseLen})
//	... the device pops, handles and pushes ...
//	used := d.Used() // [{Head: head, Len: n, Written: response}]
//
// Everything here panics on misuse by the test (a full queue, memory too
// small), never on what a device under test does.
package virtiotest
