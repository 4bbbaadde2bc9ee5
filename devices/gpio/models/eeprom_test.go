package models

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

// The bank of the I2C tests: SCL, SDA, and a spare line whose pull marks
// the end of a watch (see busWatch).
const (
	lineSCL   = 0
	lineSDA   = 1
	lineSpare = 2
)

// pattern is 256 bytes that differ from their neighbours and from an
// erased EEPROM.
func pattern(seed byte) []byte {
	p := make([]byte, EEPROMSize)
	for i := range p {
		p[i] = byte(i)*7 + seed
	}
	return p
}

// busWatch follows every change of the bank through Sim.Watch and checks
// the target's half of the protocol: an EEPROM changes what it drives on
// SDA only while SCL is low, and never drives SCL.
type busWatch struct {
	sim    *gpio.Sim
	cancel func()
	marks  chan int // the count of marks seen, after each
	sent   int      // marks made

	mu       sync.Mutex
	problems []string
}

func watchBus(t *testing.T, sim *gpio.Sim) *busWatch {
	t.Helper()
	ch, cancel := sim.Watch()
	scl, err := sim.Get(lineSCL)
	if err != nil {
		t.Fatal(err)
	}
	w := &busWatch{sim: sim, cancel: cancel, marks: make(chan int, 1024)}
	go func() {
		seen := 0
		for c := range ch {
			switch {
			case c.Kind == gpio.ChangeLost:
				w.problem(fmt.Sprintf("watch lost %d changes", c.Lost))
			case c.Line == lineSpare && c.Kind == gpio.ChangePull:
				seen++
				select {
				case w.marks <- seen:
				default:
				}
			case c.Kind == gpio.ChangeInput && strings.HasPrefix(c.Driver, "eeprom"):
				if c.Line == lineSCL {
					w.problem("EEPROM drove SCL: " + c.String())
				} else if scl != 0 {
					w.problem("EEPROM changed SDA while SCL was high: " + c.String())
				}
			}
			if c.Line == lineSCL {
				scl = c.Level
			}
		}
	}()
	return w
}

func (w *busWatch) problem(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, p)
}

// sync waits until the watch has read every change so far: it marks the
// stream with a change of the spare line's pull and waits to see it. It
// reports whether it did.
func (w *busWatch) sync() bool {
	w.sent++
	p := gpio.PullUp
	if w.sent%2 == 0 {
		p = gpio.PullDown
	}
	if err := w.sim.SetPull(lineSpare, p); err != nil {
		return false
	}
	timeout := time.After(time.Second)
	for {
		select {
		case n := <-w.marks:
			if n >= w.sent {
				return true
			}
		case <-timeout:
			return false // lost: the watch says so
		}
	}
}

// finish reports what the watch found.
func (w *busWatch) finish(t *testing.T) {
	t.Helper()
	defer w.cancel()
	ok := false
	for i := 0; i < 10 && !ok; i++ {
		ok = w.sync()
	}
	if !ok {
		t.Error("watch: no end mark")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Error(p)
	}
}

// rig is a bank with EEPROMs on SCL and SDA (pulled up) and the Linux
// guest's bus and at24 driver for the first of them.
type rig struct {
	sim *gpio.Sim
	bus *bitBus
	dev *at24 // at24 for eeproms[0]
	ee  []*EEPROM
}

func newRig(t *testing.T, ee ...*EEPROM) *rig {
	t.Helper()
	sim, err := gpio.NewSim(3, "scl", "sda", "spare")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []int{lineSCL, lineSDA} {
		if err := sim.SetPull(l, gpio.PullUp); err != nil {
			t.Fatal(err)
		}
	}
	for i, e := range ee {
		if _, err := sim.Attach(fmt.Sprintf("eeprom%d", i), e, lineSCL, lineSDA); err != nil {
			t.Fatal(err)
		}
	}
	w := watchBus(t, sim)
	r := &rig{sim: sim, bus: newBitBus(sim, lineSCL, lineSDA), ee: ee}
	r.bus.pace = func() { w.sync() }
	r.dev = newAt24(r.bus, ee[0].Addr())
	t.Cleanup(func() {
		w.finish(t)
		r.checkIdle(t)
		sim.Close()
	})
	return r
}

// checkIdle checks that the bus is free, both lines released and high,
// and that the bank saw no conflict and cut no cascade off.
func (r *rig) checkIdle(t *testing.T) {
	t.Helper()
	for _, l := range []int{lineSCL, lineSDA} {
		st, err := r.sim.Line(l)
		if err != nil {
			t.Fatal(err)
		}
		if st.Level != 1 || st.Direction == gpio.DirectionOut {
			t.Errorf("line %d after the test: level %d, direction %v, %s", l, st.Level, st.Direction, st.Drivers())
		}
	}
	if n := r.sim.Conflicts(); n != 0 {
		t.Errorf("Conflicts %d", n)
	}
	if n := r.sim.CutOff(); n != 0 {
		t.Errorf("CutOff %d", n)
	}
}

func TestEEPROMLinux(t *testing.T) {
	type want struct {
		mem   func(orig []byte) []byte // the memory expected after run, from what it was
		stats *EEPROMStats
	}
	unchanged := func(orig []byte) []byte { return orig }
	tests := []struct {
		name string
		run  func(t *testing.T, r *rig) error
		want want
	}{
		{
			name: "at24_probe test read",
			run: func(t *testing.T, r *rig) error {
				b, err := r.dev.probe()
				if err == nil && b != pattern(1)[0] {
					t.Errorf("test byte %#x, want %#x", b, pattern(1)[0])
				}
				return err
			},
			want: want{mem: unchanged, stats: &EEPROMStats{Transactions: 1, Addressed: 2, BytesRead: 1, MasterNACKs: 1}},
		},
		{
			name: "at24 reads all 256 bytes, io_limit 128",
			run:  readAll(128),
			want: want{mem: unchanged, stats: &EEPROMStats{Transactions: 2, Addressed: 4, BytesRead: 256, MasterNACKs: 2}},
		},
		{
			name: "at24 reads all 256 bytes, io_limit 16",
			run:  readAll(16),
			want: want{mem: unchanged, stats: &EEPROMStats{Transactions: 16, Addressed: 32, BytesRead: 256, MasterNACKs: 16}},
		},
		{
			name: "at24 reads all 256 bytes, io_limit 1",
			run:  readAll(1),
			want: want{mem: unchanged, stats: &EEPROMStats{Transactions: 256, Addressed: 512, BytesRead: 256, MasterNACKs: 256}},
		},
		{
			name: "sequential read wraps from 255 to 0",
			run: func(t *testing.T, r *rig) error {
				got := make([]byte, 32)
				if err := r.dev.regmapRead(0xf0, got); err != nil {
					return err
				}
				p := pattern(1)
				expectBytes(t, "read at 0xf0", got, append(p[0xf0:], p[:0x10]...))
				got = make([]byte, 512)
				if err := r.dev.regmapRead(0, got); err != nil {
					return err
				}
				expectBytes(t, "512 bytes at 0", got, append(p, p...))
				return nil
			},
			want: want{mem: unchanged, stats: &EEPROMStats{Transactions: 2, Addressed: 4, BytesRead: 544, MasterNACKs: 2}},
		},
		{
			name: "current-address reads go on from the last byte read",
			run: func(t *testing.T, r *rig) error {
				if err := r.dev.regmapRead(0x10, make([]byte, 4)); err != nil {
					return err
				}
				p := pattern(1)
				for _, off := range []int{0x14, 0x17} {
					got := make([]byte, 3)
					if _, err := r.bus.xfer(i2cMsg{addr: r.dev.addr, flags: mRD, buf: got}); err != nil {
						return err
					}
					expectBytes(t, fmt.Sprintf("current-address read at %#x", off), got, p[off:off+3])
				}
				return nil
			},
			want: want{mem: unchanged, stats: &EEPROMStats{Transactions: 3, Addressed: 4, BytesRead: 10, MasterNACKs: 3}},
		},
		{
			name: "a write of the word address alone sets the pointer",
			run: func(t *testing.T, r *rig) error {
				if _, err := r.bus.xfer(i2cMsg{addr: r.dev.addr, buf: []byte{0x40}}); err != nil {
					return err
				}
				got := make([]byte, 2)
				if _, err := r.bus.xfer(i2cMsg{addr: r.dev.addr, flags: mRD, buf: got}); err != nil {
					return err
				}
				expectBytes(t, "current-address read", got, pattern(1)[0x40:0x42])
				return nil
			},
			want: want{mem: unchanged, stats: &EEPROMStats{Transactions: 2, Addressed: 2, BytesRead: 2, MasterNACKs: 1}},
		},
		{
			name: "at24 page writes of all 256 bytes",
			run: func(t *testing.T, r *rig) error {
				return r.dev.write(0, pattern(9))
			},
			want: want{
				mem:   func([]byte) []byte { return pattern(9) },
				stats: &EEPROMStats{Transactions: 32, Addressed: 32, BytesWritten: 256},
			},
		},
		{
			name: "a page write across a page boundary wraps within the page",
			run: func(t *testing.T, r *rig) error {
				data := []byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7}
				if err := r.dev.regmapWrite(0x0c, data); err != nil {
					return err
				}
				// The counter wrapped to 0x0c, where the write began.
				got := make([]byte, 1)
				if _, err := r.bus.xfer(i2cMsg{addr: r.dev.addr, flags: mRD, buf: got}); err != nil {
					return err
				}
				expectBytes(t, "current-address read after the write", got, []byte{0xa0})
				return nil
			},
			want: want{
				mem: func(m []byte) []byte {
					copy(m[0x0c:], []byte{0xa0, 0xa1, 0xa2, 0xa3})
					copy(m[0x08:], []byte{0xa4, 0xa5, 0xa6, 0xa7})
					return m
				},
				stats: &EEPROMStats{Transactions: 2, Addressed: 2, BytesRead: 1, BytesWritten: 8, MasterNACKs: 1},
			},
		},
		{
			name: "ten bytes into one page overwrite the first two",
			run: func(t *testing.T, r *rig) error {
				return r.dev.regmapWrite(0x20, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
			},
			want: want{
				mem: func(m []byte) []byte {
					copy(m[0x20:], []byte{8, 9, 2, 3, 4, 5, 6, 7})
					return m
				},
				stats: &EEPROMStats{Transactions: 1, Addressed: 1, BytesWritten: 10},
			},
		},
		{
			name: "at24 splits a write at the page boundary",
			run: func(t *testing.T, r *rig) error {
				return r.dev.write(0x0c, []byte{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7})
			},
			want: want{
				mem: func(m []byte) []byte {
					copy(m[0x0c:], []byte{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7})
					return m
				},
				stats: &EEPROMStats{Transactions: 2, Addressed: 2, BytesWritten: 8},
			},
		},
		{
			name: "single-byte writes",
			run: func(t *testing.T, r *rig) error {
				for _, off := range []int{0, 7, 8, 0x80, 0xff} {
					if err := r.dev.write(off, []byte{byte(off) ^ 0x5a}); err != nil {
						return err
					}
				}
				return nil
			},
			want: want{
				mem: func(m []byte) []byte {
					for _, off := range []int{0, 7, 8, 0x80, 0xff} {
						m[off] = byte(off) ^ 0x5a
					}
					return m
				},
				stats: &EEPROMStats{Transactions: 5, Addressed: 5, BytesWritten: 5},
			},
		},
		{
			name: "write, then read back through at24",
			run: func(t *testing.T, r *rig) error {
				data := pattern(77)[:40]
				if err := r.dev.write(0x30, data); err != nil {
					return err
				}
				got, err := r.dev.read(0x30, len(data))
				if err != nil {
					return err
				}
				expectBytes(t, "read back", got, data)
				return nil
			},
			want: want{
				mem: func(m []byte) []byte {
					copy(m[0x30:], pattern(77)[:40])
					return m
				},
				// 0x30..0x57: five pages; one read.
				stats: &EEPROMStats{Transactions: 6, Addressed: 7, BytesRead: 40, BytesWritten: 40, MasterNACKs: 1},
			},
		},
		{
			name: "a repeated START abandons an unfinished write",
			run: func(t *testing.T, r *rig) error {
				got := make([]byte, 1)
				_, err := r.bus.xfer(
					i2cMsg{addr: r.dev.addr, buf: []byte{0x30, 0xaa}},
					i2cMsg{addr: r.dev.addr, flags: mRD, buf: got},
				)
				// The counter moved past the abandoned byte.
				expectBytes(t, "read after the abandoned write", got, pattern(1)[0x31:0x32])
				return err
			},
			want: want{mem: unchanged, stats: &EEPROMStats{Transactions: 1, Addressed: 2, BytesRead: 1, BytesWritten: 1, MasterNACKs: 1}},
		},
		{
			name: "another address is not acknowledged",
			run: func(t *testing.T, r *rig) error {
				got := make([]byte, 1)
				_, err := r.bus.xfer(i2cMsg{addr: 0x51, flags: mRD, buf: got})
				if !errors.Is(err, errNXIO) {
					t.Errorf("read at 0x51: %v, want ENXIO", err)
				}
				_, err = r.bus.xfer(i2cMsg{addr: 0x51, buf: []byte{0, 0xee}})
				if !errors.Is(err, errNXIO) {
					t.Errorf("write at 0x51: %v, want ENXIO", err)
				}
				if err := r.bus.err; err != nil {
					return err
				}
				// The device is still there.
				_, err = r.dev.probe()
				return err
			},
			// try_address: one try and adap->retries (3) more, each.
			want: want{mem: unchanged, stats: &EEPROMStats{Transactions: 1, Addressed: 2, BytesRead: 1, NACKs: 8, MasterNACKs: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEEPROM(0)
			if err := e.Load(pattern(1)); err != nil {
				t.Fatal(err)
			}
			r := newRig(t, e)
			if err := tt.run(t, r); err != nil {
				t.Fatalf("run: %v", err)
			}
			expectBytes(t, "memory", e.Bytes(), tt.want.mem(pattern(1)))
			if tt.want.stats != nil {
				if got := e.Stats(); got != *tt.want.stats {
					t.Errorf("stats %+v\nwant  %+v", got, *tt.want.stats)
				}
			}
		})
	}
}

func readAll(ioLimit int) func(t *testing.T, r *rig) error {
	return func(t *testing.T, r *rig) error {
		r.dev.ioLimit = ioLimit
		got, err := r.dev.read(0, EEPROMSize)
		if err != nil {
			return err
		}
		expectBytes(t, "256 bytes", got, r.ee[0].Bytes())
		return nil
	}
}

func expectBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("%s: byte %#x is %#02x, want %#02x (%d bytes, want %d)", what, i, got[i], want[i], len(got), len(want))
			return
		}
	}
	t.Errorf("%s: %d bytes, want %d", what, len(got), len(want))
}

// at24's probe of an absent device fails, after at24_regmap_read's
// retries, each of try_address's four tries unanswered.
func TestEEPROMAbsent(t *testing.T) {
	e := NewEEPROM(0x57)
	r := newRig(t, e)
	dev := newAt24(r.bus, 0x50)
	dev.writeTimeout = 3 * time.Millisecond
	if _, err := dev.probe(); err == nil {
		t.Fatal("probe of 0x50 found a device")
	}
	st := e.Stats()
	if st.NACKs == 0 || st.NACKs%4 != 0 || st.Addressed != 0 || st.Transactions != 0 {
		t.Errorf("stats %+v: want NACKs in fours, nothing else", st)
	}
	if b, err := r.dev.probe(); err != nil || b != 0xff {
		t.Errorf("probe of 0x57: %#x, %v; want the erased 0xff", b, err)
	}
}

// Two EEPROMs on one bus, wired-AND: each answers its own address only.
func TestEEPROMTwoOnABus(t *testing.T) {
	a, b := NewEEPROM(0x50), NewEEPROM(0x51)
	r := newRig(t, a, b)
	devB := newAt24(r.bus, 0x51)
	if err := r.dev.write(0, pattern(3)); err != nil {
		t.Fatal(err)
	}
	if err := devB.write(0, pattern(4)); err != nil {
		t.Fatal(err)
	}
	expectBytes(t, "0x50", a.Bytes(), pattern(3))
	expectBytes(t, "0x51", b.Bytes(), pattern(4))
	for _, d := range []struct {
		dev  *at24
		want []byte
	}{{r.dev, pattern(3)}, {devB, pattern(4)}} {
		got, err := d.dev.read(0, EEPROMSize)
		if err != nil {
			t.Fatal(err)
		}
		expectBytes(t, fmt.Sprintf("read of %#x", d.dev.addr), got, d.want)
	}
	// Each ignored the other's 32 page writes and 2 reads (two address
	// bytes each).
	if na, nb := a.Stats().NACKs, b.Stats().NACKs; na != 36 || nb != 36 {
		t.Errorf("NACKs %d and %d, want 36 each", na, nb)
	}
}

// stretcher holds SCL low for a while after every falling edge, as a slow
// target stretching the clock does, from a timer through its Attachment.
type stretcher struct {
	hold    time.Duration
	forever bool
	a       *gpio.Attachment
	wg      sync.WaitGroup
}

func (s *stretcher) Changed(w *gpio.Wires, _ int, level uint8, _ time.Time) {
	if level != 0 {
		return
	}
	w.Drive(0, gpio.DriveLow)
	if s.forever {
		return
	}
	s.wg.Add(1)
	time.AfterFunc(s.hold, func() {
		defer s.wg.Done()
		_ = s.a.Drive(0, gpio.DriveReleased)
	})
}

// sclhi waits for SCL while a target stretches the clock, and gives up
// after adap->timeout.
func TestEEPROMClockStretching(t *testing.T) {
	t.Run("stretched", func(t *testing.T) {
		e := NewEEPROM(0)
		r := newRig(t, e)
		s := &stretcher{hold: 20 * time.Microsecond}
		a, err := r.sim.Attach("stretcher", s, lineSCL)
		if err != nil {
			t.Fatal(err)
		}
		s.a = a
		data := []byte{1, 2, 3, 4}
		if err := r.dev.write(0x44, data); err != nil {
			t.Fatal(err)
		}
		got, err := r.dev.read(0x44, 4)
		if err != nil {
			t.Fatal(err)
		}
		expectBytes(t, "read back", got, data)
		if r.bus.stretched == 0 {
			t.Error("the master never saw SCL held low")
		}
		s.wg.Wait()
	})
	t.Run("held for good", func(t *testing.T) {
		e := NewEEPROM(0)
		r := newRig(t, e)
		s := &stretcher{forever: true}
		a, err := r.sim.Attach("stretcher", s, lineSCL)
		if err != nil {
			t.Fatal(err)
		}
		r.bus.timeout = 5 * time.Millisecond
		start := time.Now()
		_, err = r.bus.xfer(i2cMsg{addr: 0x50, flags: mRD, buf: make([]byte, 1)})
		// doAddress reports a timeout in the address as ENXIO.
		if !errors.Is(err, errNXIO) {
			t.Errorf("xfer: %v, want ENXIO", err)
		}
		if d := time.Since(start); d < r.bus.timeout {
			t.Errorf("gave up after %v, before the timeout", d)
		}
		a.Detach() // SCL goes up: the master's STOP attempt left it released
		if st := e.Stats(); st.Addressed != 0 || st.Transactions != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestEEPROMMemoryAPI(t *testing.T) {
	e := NewEEPROM(0)
	if e.Addr() != DefaultEEPROMAddr {
		t.Errorf("Addr %#x", e.Addr())
	}
	if got := e.Bytes(); len(got) != EEPROMSize || !bytes.Equal(got, bytes.Repeat([]byte{0xff}, EEPROMSize)) {
		t.Errorf("new EEPROM not erased: %x", got)
	}
	if err := e.Load(make([]byte, EEPROMSize+1)); err == nil {
		t.Error("Load of 257 bytes")
	}
	if err := e.Load([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if n, err := e.WriteAt([]byte{9, 9}, 0xfe); n != 2 || err != nil {
		t.Errorf("WriteAt at 0xfe: %d, %v", n, err)
	}
	if n, err := e.WriteAt([]byte{7, 7}, 0xff); n != 1 || err == nil {
		t.Errorf("WriteAt past the end: %d, %v", n, err)
	}
	buf := make([]byte, 4)
	if n, err := e.ReadAt(buf, 0); n != 4 || err != nil || !bytes.Equal(buf, []byte{1, 2, 3, 0xff}) {
		t.Errorf("ReadAt 0: %d, %v, %x", n, err, buf)
	}
	if n, err := e.ReadAt(buf, 0xfe); n != 2 || err == nil || !bytes.Equal(buf[:2], []byte{9, 7}) {
		t.Errorf("ReadAt 0xfe: %d, %v, %x", n, err, buf)
	}
	if _, err := e.ReadAt(buf, -1); err == nil {
		t.Error("ReadAt -1")
	}
	b := e.Bytes()
	b[0] = 0x42
	if e.Bytes()[0] != 1 {
		t.Error("Bytes is not a copy")
	}
	defer func() {
		if recover() == nil {
			t.Error("NewEEPROM(0x80) did not panic")
		}
	}()
	NewEEPROM(0x80)
}

// The memory can be read and written from other goroutines while the bus
// runs (go test -race).
func TestEEPROMConcurrentAccess(t *testing.T) {
	e := NewEEPROM(0)
	r := newRig(t, e)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			_, _ = e.WriteAt([]byte{byte(i)}, 0x80+int64(i%16))
			_ = e.Bytes()
			_ = e.Stats()
		}
	}()
	if err := r.dev.write(0, pattern(5)[:64]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.dev.read(0, EEPROMSize); err != nil {
		t.Fatal(err)
	}
	<-done
	expectBytes(t, "written part", e.Bytes()[:64], pattern(5)[:64])
}
