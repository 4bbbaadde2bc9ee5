package vmm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gvmm/gvmm/devices/serial"
	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

type recorder struct{ log []uint64 }

func (r *recorder) Read(off uint64, data []byte)  { r.log = append(r.log, off); data[0] = byte(off) }
func (r *recorder) Write(off uint64, data []byte) { r.log = append(r.log, 100+off) }

func TestBus(t *testing.T) {
	var b Bus
	a, c := &recorder{}, &recorder{}
	b.Add(0x3f8, 8, a)
	b.Add(0x60, 5, c)
	tests := []struct {
		addr uint64
		want byte
	}{
		{0x3f8, 0}, {0x3ff, 7}, {0x400, 0xff}, {0x3f7, 0xff}, {0x64, 4}, {0x65, 0xff}, {0, 0xff},
	}
	for _, tt := range tests {
		d := []byte{0}
		b.Read(tt.addr, d)
		if d[0] != tt.want {
			t.Errorf("read %#x = %#x, want %#x", tt.addr, d[0], tt.want)
		}
	}
	b.Write(0x3f9, []byte{1})
	b.Write(0x500, []byte{1}) // nobody: ignored
	if len(a.log) != 3 || a.log[2] != 101 {
		t.Errorf("device log %v", a.log)
	}
	wide := []byte{1, 2, 3, 4}
	b.Read(0x1000, wide)
	if !bytes.Equal(wide, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("unmapped wide read %v", wide)
	}
}

// hits counts events by name, for devices that several goroutines use at
// once; it is safe for concurrent use.
type hits struct {
	mu sync.Mutex
	m  map[string]int64
}

func (h *hits) add(format string, args ...any) {
	k := fmt.Sprintf(format, args...)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]int64{}
	}
	h.m[k]++
}

func (h *hits) snapshot() map[string]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.m)
}

// tally is a Device that counts each access by offset, width and, for a
// write, the bytes written. A read answers byte j with tag|(off+j)&0xf,
// so the reader sees both which device and which offset it reached.
type tally struct {
	name string
	tag  byte
	h    *hits
}

func (d *tally) Read(off uint64, data []byte) {
	d.h.add("%s r %#x/%d", d.name, off, len(data))
	for j := range data {
		data[j] = d.tag | byte(off+uint64(j))&0xf
	}
}

func (d *tally) Write(off uint64, data []byte) {
	d.h.add("%s w %#x/%d %x", d.name, off, len(data), data)
}

// virtioTally is a virtio device behind a real virtio.MMIO transport. It
// counts configuration accesses as tally does (reads answer
// 0xc0|(off+j)&0xf), notifications by queue, activations and resets, and
// signals a used buffer for each notification, so that the transport
// raises the line once per notification.
type virtioTally struct {
	h   *hits
	irq virtio.Interrupt // set by Activate, before the vCPUs start
}

func (d *virtioTally) ID() uint32              { return 42 }
func (d *virtioTally) Features() uint64        { return 0 }
func (d *virtioTally) QueueMaxSizes() []uint16 { return []uint16{8, 8} }

func (d *virtioTally) ReadConfig(off uint64, p []byte) {
	d.h.add("virtio config r %#x/%d", off, len(p))
	for j := range p {
		p[j] = 0xc0 | byte(off+uint64(j))&0xf
	}
}

func (d *virtioTally) WriteConfig(off uint64, p []byte) {
	d.h.add("virtio config w %#x/%d %x", off, len(p), p)
}

func (d *virtioTally) Activate(mem virtio.GuestMemory, irq virtio.Interrupt, queues []*virtio.Queue, features uint64) error {
	d.h.add("virtio activate")
	d.irq = irq
	return nil
}

func (d *virtioTally) Notify(q int) {
	d.h.add("virtio notify %d", q)
	d.irq.Signal(virtio.InterruptUsedBuffer)
}

func (d *virtioTally) Reset() { d.h.add("virtio reset") }

// uartOut is the host's end of the UART: it counts the bytes the guest
// transmits by value.
type uartOut struct{ h *hits }

func (o uartOut) Write(p []byte) (int, error) {
	for _, c := range p {
		o.h.add("uart out %q", c)
	}
	return len(p), nil
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// virtioBringUp drives the virtio-mmio handshake through b for the
// transport at base, as Linux's virtio_mmio does: reset, ACKNOWLEDGE,
// DRIVER, VIRTIO_F_VERSION_1 as the only feature, FEATURES_OK, every
// queue laid out in mem by a virtiotest.DriverQueue, and DRIVER_OK.
func virtioBringUp(t *testing.T, b *Bus, base uint64, mem virtiotest.Mem, queues int) {
	t.Helper()
	w := func(off uint64, v uint32) { b.Write(base+off, le32(v)) }
	status := func() uint32 {
		d := make([]byte, 4)
		b.Read(base+virtio.RegStatus, d)
		return binary.LittleEndian.Uint32(d)
	}
	w(virtio.RegStatus, 0)
	w(virtio.RegStatus, virtio.StatusAcknowledge)
	w(virtio.RegStatus, virtio.StatusAcknowledge|virtio.StatusDriver)
	w(virtio.RegDriverFeaturesSel, 1)
	w(virtio.RegDriverFeatures, 1<<(virtio.FVersion1-32))
	w(virtio.RegDriverFeaturesSel, 0)
	w(virtio.RegDriverFeatures, 0)
	w(virtio.RegStatus, status()|virtio.StatusFeaturesOK)
	for q := range queues {
		d := virtiotest.NewDriverQueue(mem, uint64(q)*0x1000, 8)
		w(virtio.RegQueueSel, uint32(q))
		w(virtio.RegQueueNum, uint32(d.Size))
		w(virtio.RegQueueDescLow, uint32(d.DescAddr))
		w(virtio.RegQueueDriverLow, uint32(d.AvailAddr))
		w(virtio.RegQueueDeviceLow, uint32(d.UsedAddr))
		w(virtio.RegQueueReady, 1)
	}
	w(virtio.RegStatus, status()|virtio.StatusDriverOK)
	if s := status(); s != 0xf {
		t.Fatalf("virtio status %#x after DRIVER_OK, want 0xf", s)
	}
}

// TestBusConcurrent is what several vCPUs do to the buses at once: eight
// goroutines run thousands of port and MMIO exits each through one Bus,
// to plain devices (one behind portFunc, as the VM's small ports are),
// the real UART behind the adapter New uses, and a real virtio-mmio
// transport with a device behind it, while a host goroutine types into
// the UART and another notifies the virtio device as an ioeventfd
// goroutine does. Every read must come back with the bytes of the device
// and offset it was sent to, and afterwards each device must have seen
// exactly the accesses sent to it, by offset, width and data: not one
// lost, duplicated or delivered elsewhere. Run with -race, it also shows
// that the bus, the transport and the UART need no more locking than
// they have.
func TestBusConcurrent(t *testing.T) {
	const (
		vcpus    = 8
		rounds   = 400   // of every access in the table, per vCPU
		hostKick = 5000  // ioeventfd notifications of queue 1
		rxBytes  = 20000 // bytes the host types into the UART
	)
	var h hits
	var b Bus
	b.Add(0x60, 5, &tally{name: "kbd", tag: 0x10, h: &h})
	pf := &tally{name: "cmos", tag: 0x20, h: &h}
	b.Add(0x70, 2, portFunc{read: pf.Read, write: pf.Write})
	b.Add(0x80, 1, portFunc{}) // reads zero, ignores writes
	var irqLevels atomic.Int64
	uart := serial.New(uartOut{&h}, func(bool) { irqLevels.Add(1) })
	b.Add(serial.COM1Base, serial.NumPorts, uartPorts(uart))
	b.Add(0x1000_0000, 0x100, &tally{name: "mmio", tag: 0x30, h: &h})

	mem := virtiotest.NewMem(0x4000)
	var raised atomic.Int64
	vbase, _ := virtioSlot(0)
	tr := virtio.NewMMIO(&virtioTally{h: &h}, &Memory{Regions: []Region{{GPA: 0, Host: mem}}},
		func() { raised.Add(1) })
	tr.Log = func(line string) { t.Errorf("virtio transport: %s", line) }
	b.Add(vbase, virtio.MMIOSize, tr)
	virtioBringUp(t, &b, vbase, mem, 2)

	// Bytes the vCPUs read from the UART's RBR, by value; 0 is "nothing
	// there" (the host never types it).
	var rx [256]atomic.Int64

	type access struct {
		addr  uint64
		write []byte // the bytes written; nil for a read
		n     int    // a read's width
		want  []byte // what a read must return, if check is nil
		check func(got []byte) error
		hit   string // the event the access must count once; "" for none
	}
	ff := func(n int) []byte { return bytes.Repeat([]byte{0xff}, n) }
	lsr := func(got []byte) error {
		if got[0]&^0x01 != 0x60 { // THRE|TEMT, and DR while bytes wait
			return fmt.Errorf("LSR %#x", got[0])
		}
		return nil
	}
	isr := func(got []byte) error {
		if v := binary.LittleEndian.Uint32(got); v&^virtio.InterruptUsedBuffer != 0 {
			return fmt.Errorf("InterruptStatus %#x", v)
		}
		return nil
	}
	table := []access{
		// Plain devices, every offset and the edges of their windows.
		{addr: 0x60, n: 1, want: []byte{0x10}, hit: "kbd r 0x0/1"},
		{addr: 0x64, n: 1, want: []byte{0x14}, hit: "kbd r 0x4/1"},
		{addr: 0x62, n: 2, want: []byte{0x12, 0x13}, hit: "kbd r 0x2/2"},
		{addr: 0x64, write: []byte{0xfe}, hit: "kbd w 0x4/1 fe"},
		{addr: 0x65, n: 1, want: ff(1)},
		{addr: 0x5f, write: []byte{1}},
		{addr: 0x71, n: 1, want: []byte{0x21}, hit: "cmos r 0x1/1"},
		{addr: 0x70, write: []byte{0x8f}, hit: "cmos w 0x0/1 8f"},
		{addr: 0x80, n: 1, want: []byte{0}},
		{addr: 0x80, write: []byte{0x55}},
		{addr: 0x1000_00fc, n: 4, want: []byte{0x3c, 0x3d, 0x3e, 0x3f}, hit: "mmio r 0xfc/4"},
		{addr: 0x1000_0008, write: []byte{1, 2, 3, 4, 5, 6, 7, 8}, hit: "mmio w 0x8/8 0102030405060708"},
		{addr: 0x1000_0100, n: 4, want: ff(4)},
		// The UART: transmit, status, and the bytes the host types.
		{addr: serial.COM1Base, write: []byte{'x'}, hit: `uart out 'x'`},
		{addr: serial.COM1Base, write: []byte{'y'}, hit: `uart out 'y'`},
		{addr: serial.COM1Base + 5, n: 1, check: lsr},
		{addr: serial.COM1Base + 6, n: 1, want: []byte{0xb0}}, // DCD|DSR|CTS
		{addr: serial.COM1Base + 2, n: 1, want: []byte{0x01}}, // IIR: nothing pending
		{addr: serial.COM1Base, n: 1, check: func(got []byte) error { rx[got[0]].Add(1); return nil }},
		// The virtio-mmio transport and its device.
		{addr: vbase + virtio.RegMagicValue, n: 4, want: le32(virtio.MagicValue)},
		{addr: vbase + virtio.RegDeviceID, n: 4, want: le32(42)},
		{addr: vbase + virtio.RegStatus, n: 4, want: le32(0xf)},
		{addr: vbase + virtio.RegQueueReady, n: 4, want: le32(1)},
		{addr: vbase + virtio.RegConfig + 3, n: 1, want: []byte{0xc3}, hit: "virtio config r 0x3/1"},
		{addr: vbase + virtio.RegConfig + 4, n: 4, want: []byte{0xc4, 0xc5, 0xc6, 0xc7}, hit: "virtio config r 0x4/4"},
		{addr: vbase + virtio.RegConfig + 0x10, write: []byte{9, 8}, hit: "virtio config w 0x10/2 0908"},
		{addr: vbase + virtio.RegQueueNotify, write: le32(0), hit: "virtio notify 0"},
		{addr: vbase + virtio.RegQueueNotify, write: le32(1), hit: "virtio notify 1"},
		{addr: vbase + virtio.RegQueueNotify, write: le32(2)}, // no such queue: dropped
		{addr: vbase + virtio.RegInterruptStatus, n: 4, check: isr},
		{addr: vbase + virtio.RegInterruptACK, write: le32(virtio.InterruptUsedBuffer)},
		{addr: vbase + virtio.MMIOSize, n: 4, want: ff(4)},
	}

	var wg sync.WaitGroup
	wg.Go(func() { // the host typing
		for i := 0; i < rxBytes; i += 100 {
			p := make([]byte, 100)
			for j := range p {
				p[j] = byte((i+j)%255 + 1)
			}
			uart.Receive(p)
		}
	})
	wg.Go(func() { // an ioeventfd goroutine
		for range hostKick {
			tr.Notify(1)
		}
	})
	for v := range vcpus {
		wg.Go(func() {
			buf := make([]byte, 8)
			for i := range rounds * len(table) {
				a := table[(v+i)%len(table)] // each vCPU in its own order
				if a.write != nil {
					b.Write(a.addr, a.write)
					continue
				}
				got := buf[:a.n]
				for j := range got {
					got[j] = 0xaa
				}
				b.Read(a.addr, got)
				var err error
				if a.check != nil {
					err = a.check(got)
				} else if !bytes.Equal(got, a.want) {
					err = fmt.Errorf("read %x, want %x", got, a.want)
				}
				if err != nil {
					t.Errorf("vCPU %d: %d-byte read at %#x: %v", v, a.n, a.addr, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// What the vCPUs left in the UART's receive buffer.
	for d := []byte{0}; ; {
		b.Read(serial.COM1Base+5, d)
		if d[0]&0x01 == 0 {
			break
		}
		b.Read(serial.COM1Base, d)
		rx[d[0]].Add(1)
	}
	for v := 1; v < 256; v++ {
		want := int64(rxBytes / 255)
		if v <= rxBytes%255 {
			want++
		}
		if got := rx[v].Load(); got != want {
			t.Errorf("UART delivered byte %#x %d times, want %d", v, got, want)
		}
	}
	if n := irqLevels.Load(); n != 0 {
		t.Errorf("UART interrupt line moved %d times with IER 0", n)
	}

	want := map[string]int64{
		"virtio reset":    1,
		"virtio activate": 1,
		"virtio notify 1": hostKick,
	}
	for _, a := range table {
		if a.hit != "" {
			want[a.hit] += vcpus * rounds
		}
	}
	got := h.snapshot()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: %d times, want %d", k, got[k], want[k])
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s, %d times", k, n)
		}
	}
	notifies := got["virtio notify 0"] + got["virtio notify 1"]
	if r := raised.Load(); r != notifies {
		t.Errorf("interrupt raised %d times for %d notifications", r, notifies)
	}
}
