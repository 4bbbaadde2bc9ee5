package models

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

// This file is the Linux guest's side of an I2C bus on two lines of a
// Sim, as Linux v6.1 drives it, translated function by function:
//
//   - drivers/gpio/gpiolib.c, gpio_set_open_drain_value_commit: the
//     virtio-gpio chip has no .set_config, so gpiolib emulates open drain:
//     setting 1 makes the line an input, setting 0 an output at 0.
//   - drivers/i2c/busses/i2c-gpio.c: setsda/setscl are
//     gpiod_set_value_cansleep on lines requested
//     GPIOD_OUT_HIGH_OPEN_DRAIN (so released at first), getsda/getscl
//     gpiod_get_value_cansleep; udelay 5, timeout HZ/10.
//   - drivers/i2c/algos/i2c-algo-bit.c: everything else, with the udelays
//     as no-ops (the Sim has no timing; Changed answers at once).
//   - drivers/base/regmap/regmap-i2c.c and drivers/misc/eeprom/at24.c:
//     the transfers at24 makes of reads and writes.

// Errors of a transfer, as the kernel's errnos.
var (
	errTimedOut = errors.New("ETIMEDOUT") // SCL held low past the timeout
	errNXIO     = errors.New("ENXIO")     // address not acknowledged
	errIO       = errors.New("EIO")       // data byte not acknowledged, or short
)

// I2C message flags (include/uapi/linux/i2c.h).
const (
	mRD      = 0x0001 // I2C_M_RD
	mNoStart = 0x4000 // I2C_M_NOSTART
	mStop    = 0x8000 // I2C_M_STOP
)

// i2cMsg is struct i2c_msg.
type i2cMsg struct {
	addr  uint8
	flags uint16
	buf   []byte
}

// bitBus is struct i2c_algo_bit_data with its adapter, over a Sim.
type bitBus struct {
	sim      *gpio.Sim
	scl, sda int
	timeout  time.Duration // adap->timeout: HZ/10 in i2c-gpio
	retries  int           // adap->retries: 3, set by __i2c_bit_add_bus

	err       error // the first error of a Sim call: a test failure
	stretched int   // getscl polls that found SCL held low
	sets      int   // line sets so far
	// pace, if set, is called every 512 sets: a test's Watch of the bank
	// catches up (see busWatch.sync).
	pace func()
	// record, if set, hears of each line access, as fuzz ops.
	record func(op byte)
}

// newBitBus is i2c_gpio_probe: it requests both lines
// GPIOD_OUT_HIGH_OPEN_DRAIN, which gpiod_direction_output makes inputs
// (released) on a chip without .set_config.
func newBitBus(sim *gpio.Sim, scl, sda int) *bitBus {
	b := &bitBus{sim: sim, scl: scl, sda: sda, timeout: 100 * time.Millisecond, retries: 3}
	b.setsda(1)
	b.setscl(1)
	return b
}

func (b *bitBus) check(err error) {
	if err != nil && b.err == nil {
		b.err = err
	}
}

// set is gpiod_set_value_cansleep on an open-drain line without
// .set_config: gpio_set_open_drain_value_commit.
func (b *bitBus) set(line int, v int) {
	if b.record != nil {
		b.record(opFor(line == b.sda, v))
	}
	if b.sets++; b.pace != nil && b.sets%512 == 0 {
		b.pace()
	}
	if v != 0 {
		b.check(b.sim.SetDirection(line, gpio.DirectionIn, 0))
	} else {
		b.check(b.sim.SetDirection(line, gpio.DirectionOut, 0))
	}
}

func (b *bitBus) get(line int) int {
	if b.record != nil {
		b.record(opFor(line == b.sda, -1))
	}
	v, err := b.sim.Get(line)
	b.check(err)
	return int(v)
}

func (b *bitBus) setsda(v int) { b.set(b.sda, v) }
func (b *bitBus) setscl(v int) { b.set(b.scl, v) }
func (b *bitBus) getsda() int  { return b.get(b.sda) }
func (b *bitBus) getscl() int  { return b.get(b.scl) }

func (b *bitBus) sdalo() { b.setsda(0) }
func (b *bitBus) sdahi() { b.setsda(1) }
func (b *bitBus) scllo() { b.setscl(0) }

// sclhi raises SCL and waits while a target holds it low (clock
// stretching), up to the timeout.
func (b *bitBus) sclhi() error {
	b.setscl(1)
	start := time.Now()
	for b.getscl() == 0 {
		if time.Since(start) > b.timeout {
			// Test one last time, as we may have been preempted.
			if b.getscl() != 0 {
				break
			}
			return errTimedOut
		}
		b.stretched++
		runtime.Gosched() // cpu_relax
	}
	return nil
}

func (b *bitBus) start() { // assert: scl, sda are high
	b.setsda(0)
	b.scllo()
}

func (b *bitBus) repstart() { // assert: scl is low
	b.sdahi()
	_ = b.sclhi()
	b.setsda(0)
	b.scllo()
}

func (b *bitBus) stop() { // assert: scl is low
	b.sdalo()
	_ = b.sclhi()
	b.setsda(1)
}

// outb sends c and reports whether the target acknowledged it.
func (b *bitBus) outb(c byte) (bool, error) {
	for i := 7; i >= 0; i-- {
		b.setsda(int(c>>i) & 1)
		if err := b.sclhi(); err != nil {
			return false, err
		}
		b.scllo()
	}
	b.sdahi()
	if err := b.sclhi(); err != nil {
		return false, err
	}
	ack := b.getsda() == 0
	b.scllo()
	return ack, nil
}

func (b *bitBus) inb() (byte, error) {
	var in byte
	b.sdahi()
	for i := 0; i < 8; i++ {
		if err := b.sclhi(); err != nil {
			return 0, err
		}
		in <<= 1
		if b.getsda() != 0 {
			in |= 1
		}
		b.setscl(0)
	}
	return in, nil
}

func (b *bitBus) acknak(ack bool) error { // assert: sda is high
	if ack {
		b.setsda(0)
	}
	if err := b.sclhi(); err != nil {
		return err
	}
	b.scllo()
	return nil
}

func (b *bitBus) tryAddress(addr byte, retries int) (bool, error) {
	var (
		ack bool
		err error
	)
	for i := 0; i <= retries; i++ {
		ack, err = b.outb(addr)
		if ack || err != nil || i == retries {
			break
		}
		b.stop()
		b.start()
	}
	return ack, err
}

func (b *bitBus) sendbytes(m i2cMsg) (int, error) {
	for n, c := range m.buf {
		ack, err := b.outb(c)
		if err != nil {
			return n, err
		}
		if !ack {
			return n, errIO // "sendbytes: NAK bailout."
		}
	}
	return len(m.buf), nil
}

func (b *bitBus) readbytes(m i2cMsg) (int, error) {
	for n := range m.buf {
		c, err := b.inb()
		if err != nil {
			return n, err
		}
		m.buf[n] = c
		if err := b.acknak(n+1 < len(m.buf)); err != nil {
			return n + 1, err
		}
	}
	return len(m.buf), nil
}

func (b *bitBus) doAddress(m i2cMsg) error {
	addr := m.addr << 1
	if m.flags&mRD != 0 {
		addr |= 1
	}
	ack, err := b.tryAddress(addr, b.retries)
	if err != nil || !ack {
		return errNXIO
	}
	return nil
}

// xfer is bit_xfer: one transfer of msgs, START to STOP. It returns how
// many messages went through, or an error.
func (b *bitBus) xfer(msgs ...i2cMsg) (int, error) {
	b.start()
	err := func() error {
		for i, m := range msgs {
			if m.flags&mNoStart == 0 {
				if i > 0 {
					if msgs[i-1].flags&mStop != 0 {
						b.stop()
						b.start()
					} else {
						b.repstart()
					}
				}
				if err := b.doAddress(m); err != nil {
					return err
				}
			}
			var (
				n   int
				err error
			)
			if m.flags&mRD != 0 {
				n, err = b.readbytes(m)
			} else {
				n, err = b.sendbytes(m)
			}
			if err != nil {
				return err
			}
			if n < len(m.buf) {
				return errIO
			}
		}
		return nil
	}()
	b.stop()
	if b.err != nil {
		return 0, fmt.Errorf("sim: %w", b.err)
	}
	if err != nil {
		return 0, err
	}
	return len(msgs), nil
}

// at24 is drivers/misc/eeprom/at24.c for a 24c02 on a bitBus, through
// regmap-i2c.
type at24 struct {
	bus          *bitBus
	addr         uint8
	byteLen      int
	pageSize     int           // "pagesize" in the DT
	ioLimit      int           // the io_limit parameter
	writeTimeout time.Duration // the write_timeout parameter
}

func newAt24(bus *bitBus, addr uint8) *at24 {
	return &at24{bus: bus, addr: addr, byteLen: 256, pageSize: 8, ioLimit: 128, writeTimeout: 25 * time.Millisecond}
}

// regmapRead is regmap_i2c_read: the offset written, then count bytes
// read, with a repeated START between.
func (a *at24) regmapRead(off int, buf []byte) error {
	_, err := a.bus.xfer(
		i2cMsg{addr: a.addr, buf: []byte{byte(off)}},
		i2cMsg{addr: a.addr, flags: mRD, buf: buf},
	)
	return err
}

// regmapWrite is regmap_bulk_write through regmap_i2c_gather_write: the
// offset, then the data as an I2C_M_NOSTART message, so one write on the
// bus.
func (a *at24) regmapWrite(off int, data []byte) error {
	_, err := a.bus.xfer(
		i2cMsg{addr: a.addr, buf: []byte{byte(off)}},
		i2cMsg{addr: a.addr, flags: mNoStart, buf: data},
	)
	return err
}

// retry is the loop of at24_regmap_read and at24_regmap_write: try until
// write_timeout has passed since the first try, 1 ms apart.
func (a *at24) retry(op func() error) error {
	timeout := time.Now().Add(a.writeTimeout)
	for {
		t := time.Now()
		if err := op(); err == nil {
			return nil
		}
		time.Sleep(time.Millisecond) // usleep_range(1000, 1500)
		if !t.Before(timeout) {
			return errTimedOut
		}
	}
}

// read is at24_read.
func (a *at24) read(off, count int) ([]byte, error) {
	if off+count > a.byteLen {
		return nil, errors.New("EINVAL")
	}
	out := make([]byte, 0, count)
	for count > 0 {
		n := min(count, a.ioLimit) // at24_adjust_read_count
		buf := make([]byte, n)
		if err := a.retry(func() error { return a.regmapRead(off, buf) }); err != nil {
			return nil, err
		}
		out = append(out, buf...)
		off += n
		count -= n
	}
	return out, nil
}

// write is at24_write.
func (a *at24) write(off int, data []byte) error {
	if len(data) == 0 || off+len(data) > a.byteLen {
		return errors.New("EINVAL")
	}
	writeMax := min(a.pageSize, a.ioLimit)
	for len(data) > 0 {
		// at24_adjust_write_count: at most a page, never across one.
		n := min(len(data), writeMax)
		if next := (off/a.pageSize + 1) * a.pageSize; off+n > next {
			n = next - off
		}
		chunk := data[:n]
		if err := a.retry(func() error { return a.regmapWrite(off, chunk) }); err != nil {
			return err
		}
		data = data[n:]
		off += n
	}
	return nil
}

// probe is at24_probe's one-byte test read of offset 0.
func (a *at24) probe() (byte, error) {
	b, err := a.read(0, 1)
	if err != nil {
		return 0, errors.New("ENODEV")
	}
	return b[0], nil
}
