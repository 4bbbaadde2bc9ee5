package models

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

// The 24c02's geometry and its default bus address.
const (
	EEPROMSize        = 256  // bytes of memory (2 Kbit)
	EEPROMPageSize    = 8    // bytes a write can hold before it wraps
	DefaultEEPROMAddr = 0x50 // 7-bit address with A2..A0 tied low
)

// The pins of an I2C model, in the order Sim.Attach takes their lines.
const (
	PinSCL = 0
	PinSDA = 1
)

// EEPROM is a 24c02 I2C EEPROM (256 bytes, 8-byte pages) on a bit-banged
// bus, for the Linux guest's own i2c-gpio bus driver and at24 EEPROM
// driver, as with this device-tree node under the i2c-gpio bus:
//
//	eeprom@50 {
//		compatible = "atmel,24c02";
//		reg = <0x50>;
//		pagesize = <8>;
//	};
//
// Attach it with its SCL line first, then SDA (PinSCL, PinSDA), both with
// pull-ups:
//
//	e := models.NewEEPROM(0x50)
//	sim.SetPull(scl, gpio.PullUp)
//	sim.SetPull(sda, gpio.PullUp)
//	sim.Attach("eeprom", e, scl, sda)
//
// # The bus
//
// SCL and SDA are open drain: the model only ever drives SDA low or
// releases it, and never touches SCL (it does not stretch the clock). It
// follows the level changes of both lines as Changed reports them, in
// order, and acts on these events only:
//
//   - SDA falls while SCL is high: START, or a repeated START. The model
//     releases SDA, abandons the bytes of an unfinished write, and
//     receives the next 8 bits as an address byte.
//   - SDA rises while SCL is high: STOP. The bytes of a write are
//     committed, SDA is released, and the model is off the bus until the
//     next START.
//   - SCL rises: the model samples SDA, a bit of the byte it receives
//     (MSB first), or on the 9th clock of a byte it sent, the master's
//     ACK (SDA low) or NACK (SDA high).
//   - SCL falls: the only time the model changes SDA. After the 8th bit
//     of a byte it receives, it drives SDA low (ACK) for the 9th clock; an
//     address byte of another device is not acknowledged, and the model
//     stays off the bus until the next START or STOP. After the 9th clock
//     it releases SDA, or, reading, puts the first bit of the next byte
//     on it. While it sends a byte, it puts each next bit on SDA (low for
//     0, released for 1), and after the 8th it releases SDA for the
//     master's ACK bit. After the master's ACK it sends the next byte;
//     after its NACK it stays released and off the bus until the next
//     START or STOP.
//
// SDA changing while SCL is low is the master setting up a bit, and is
// ignored; so are the model's own changes of SDA, which all happen while
// SCL is low.
//
// # The memory
//
// The model keeps one address counter, as the part does. A write is
// START, address|W, the word address, then data bytes; the word address
// sets the counter, and each data byte goes to the counter, which then
// advances within its 8-byte page only: the ninth byte of a write wraps
// to the start of the page and overwrites the first, as on the part (and
// at24 never sends more than a page, nor across one). A write of the word
// address alone only sets the counter, as a random read does before its
// repeated START. A write's bytes are committed at its STOP, all at once:
// the part starts its internal write cycle at STOP, and the model takes no
// time for it, so it is never busy (it never leaves its address
// unacknowledged during a write cycle, which at24 would retry through). A
// START before the STOP abandons the bytes, though the counter has
// advanced past them.
//
// A read, START, address|R, sends the byte at the counter and advances it,
// wrapping from 255 to 0, for as long as the master acknowledges: that is
// a current-address read, and a random read when a write of the word
// address and a repeated START precede it; at24 does the latter, in
// chunks of at most 128 bytes.
//
// # Checked against
//
// Linux v6.1: drivers/i2c/algos/i2c-algo-bit.c, which drives the lines
// (i2c_start, i2c_repstart, i2c_stop; i2c_outb, which releases SDA for
// the ACK and reads it with SCL high; i2c_inb, which releases SDA before
// the first bit and samples each bit with SCL high; acknak, which drives
// SDA low for ACK or leaves it released for NACK; try_address, which
// retries an unanswered address 3 times with a STOP and START between;
// bit_xfer, which skips the START and address for I2C_M_NOSTART);
// drivers/i2c/busses/i2c-gpio.c (i2c_gpio_setsda_val, i2c_gpio_setscl_val
// and the getters: both lines open drain, GPIOD_OUT_HIGH_OPEN_DRAIN,
// which gpiolib emulates as input for 1 and output 0 for 0);
// drivers/base/regmap/regmap-i2c.c (regmap_i2c_read: a write of the
// offset, then a read, in one transfer; regmap_i2c_gather_write: the
// offset, then the data as an I2C_M_NOSTART message); and
// drivers/misc/eeprom/at24.c (at24_probe's one-byte test read of offset
// 0; at24_regmap_read with io_limit 128; at24_adjust_write_count, which
// never writes past a page boundary).
//
// The memory is guarded by the model's own lock: Bytes, Load, ReadAt,
// WriteAt and Stats may be called from any goroutine, while the bus runs.
type EEPROM struct {
	addr uint8

	mu    sync.Mutex
	mem   [EEPROMSize]byte
	ptr   uint8 // the address counter
	stats EEPROMStats

	// The write being received: its page and the bytes for it.
	page  uint8
	buf   [EEPROMPageSize]byte
	dirty uint8 // bit i: buf[i] holds a byte for page+i

	// The bus as the model has followed it.
	known    bool  // scl and sda hold the levels last reported
	scl, sda uint8 // levels
	phase    phase
	bits     int   // bits received, or sent, of the current byte
	shift    uint8 // the byte being received or sent
	addrByte bool  // the byte being received is an address byte
	wordAddr bool  // the next byte written is the word address
	reading  bool  // addressed for a read
	acked    bool  // the master acknowledged the byte just sent
	selected bool  // addressed since the last STOP
	low      bool  // the model drives SDA low
}

// phase is where the model is in the 9 clocks of a byte.
type phase uint8

const (
	phaseIdle      phase = iota // off the bus until the next START
	phaseRecv                   // receiving a byte from the master
	phaseAck                    // driving its ACK through the 9th clock
	phaseSend                   // sending a byte to the master
	phaseMasterAck              // released SDA for the master's ACK bit
)

// EEPROMStats counts what an EEPROM did on the bus.
type EEPROMStats struct {
	// Transactions counts START ... STOP spans in which the device was
	// addressed at least once (a random read, with its repeated START,
	// is one).
	Transactions uint64
	// Addressed counts address bytes the device acknowledged.
	Addressed uint64
	// BytesRead counts data bytes sent to the master.
	BytesRead uint64
	// BytesWritten counts data bytes the master wrote and the device
	// acknowledged, not counting word addresses; bytes abandoned by a
	// START before the STOP are counted too.
	BytesWritten uint64
	// NACKs counts address bytes the device did not acknowledge: those
	// of other devices.
	NACKs uint64
	// MasterNACKs counts reads the master ended by not acknowledging a
	// byte.
	MasterNACKs uint64
}

// NewEEPROM returns an erased 24c02 (every byte 0xff) answering to the
// 7-bit address addr; 0 means DefaultEEPROMAddr. It panics if addr does
// not fit in 7 bits.
func NewEEPROM(addr uint8) *EEPROM {
	if addr == 0 {
		addr = DefaultEEPROMAddr
	}
	if addr > 0x7f {
		panic(fmt.Sprintf("models: EEPROM address %#x is not a 7-bit address", addr))
	}
	e := &EEPROM{addr: addr}
	for i := range e.mem {
		e.mem[i] = 0xff
	}
	return e
}

// Addr returns the 7-bit address the EEPROM answers to.
func (e *EEPROM) Addr() uint8 { return e.addr }

// Bytes returns a copy of the memory.
func (e *EEPROM) Bytes() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]byte(nil), e.mem[:]...)
}

// Load sets the memory to b, followed by erased bytes (0xff) up to
// EEPROMSize. It fails if b is longer than EEPROMSize.
func (e *EEPROM) Load(b []byte) error {
	if len(b) > EEPROMSize {
		return fmt.Errorf("models: %d bytes for a %d-byte EEPROM", len(b), EEPROMSize)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := copy(e.mem[:], b)
	for i := n; i < EEPROMSize; i++ {
		e.mem[i] = 0xff
	}
	return nil
}

// ReadAt copies memory from off into p (io.ReaderAt). It reads fewer than
// len(p) bytes only at the end of the memory, with io.EOF.
func (e *EEPROM) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > EEPROMSize {
		return 0, fmt.Errorf("models: offset %d outside a %d-byte EEPROM", off, EEPROMSize)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := copy(p, e.mem[off:])
	if n < len(p) {
		return n, io.EOF // io.ReaderAt: fewer bytes only at the end, with io.EOF
	}
	return n, nil
}

// WriteAt sets memory from off to p (io.WriterAt), as if programmed
// outside the bus: it takes no write cycle and leaves the address counter
// alone. It writes fewer than len(p) bytes, with an error, only at the
// end of the memory.
func (e *EEPROM) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > EEPROMSize {
		return 0, fmt.Errorf("models: offset %d outside a %d-byte EEPROM", off, EEPROMSize)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := copy(e.mem[off:], p)
	if n < len(p) {
		return n, fmt.Errorf("models: write of %d bytes at %d past the end of a %d-byte EEPROM", len(p), off, EEPROMSize)
	}
	return n, nil
}

// Stats returns what the EEPROM has counted so far.
func (e *EEPROM) Stats() EEPROMStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Changed implements gpio.Model: it follows SCL (pin 0) and SDA (pin 1)
// and drives SDA as the Type's documentation describes.
func (e *EEPROM) Changed(w *gpio.Wires, pin int, level uint8, _ time.Time) {
	e.mu.Lock()
	if !e.known {
		// The first change the model hears of: it learns where the
		// other line stands (Attach does not tell), and that this one
		// has just changed.
		e.known = true
		e.scl, e.sda = w.Level(PinSCL), w.Level(PinSDA)
		if pin == PinSCL {
			e.scl = 1 - level
		} else {
			e.sda = 1 - level
		}
	}
	switch pin {
	case PinSCL:
		if level != e.scl { // equal only if a change was cut off: resync
			e.scl = level
			if level == 1 {
				e.sclRose()
			} else {
				e.sclFell()
			}
		}
	case PinSDA:
		if level != e.sda {
			e.sda = level
			if e.scl == 1 {
				if level == 0 {
					e.start()
				} else {
					e.stop()
				}
			}
		}
	}
	d := gpio.DriveReleased
	if e.low {
		d = gpio.DriveLow
	}
	e.mu.Unlock()
	// Not under e.mu: the bank's lock is held already, Drive takes no
	// other, and it only queues the change for the models, this one
	// included, to hear of once this call returns.
	w.Drive(PinSDA, d)
}

// start is a START or repeated START condition.
func (e *EEPROM) start() {
	e.dirty = 0 // an unfinished write is abandoned
	e.phase, e.bits, e.shift = phaseRecv, 0, 0
	e.addrByte, e.wordAddr, e.reading = true, false, false
	e.low = false
}

// stop is a STOP condition: the write, if any, is committed.
func (e *EEPROM) stop() {
	for i := range e.buf {
		if e.dirty&(1<<i) != 0 {
			e.mem[e.page+uint8(i)] = e.buf[i]
		}
	}
	e.dirty = 0
	if e.selected {
		e.stats.Transactions++
	}
	e.selected = false
	e.phase, e.low = phaseIdle, false
}

// sclRose samples SDA.
func (e *EEPROM) sclRose() {
	switch e.phase {
	case phaseRecv:
		if e.bits < 8 {
			e.shift = e.shift<<1 | e.sda
			e.bits++
		}
	case phaseMasterAck:
		e.acked = e.sda == 0
	}
}

// sclFell moves to the next bit, and is when the model changes SDA.
func (e *EEPROM) sclFell() {
	switch e.phase {
	case phaseRecv:
		if e.bits == 8 {
			e.received(e.shift)
		}
	case phaseAck: // the 9th clock is over
		if e.reading {
			e.load()
		} else {
			e.phase, e.bits, e.shift, e.low = phaseRecv, 0, 0, false
		}
	case phaseSend:
		if e.bits == 8 {
			e.stats.BytesRead++
			e.phase, e.low, e.acked = phaseMasterAck, false, false
			return
		}
		e.low = e.shift&(0x80>>e.bits) == 0
		e.bits++
	case phaseMasterAck:
		if e.acked {
			e.load()
		} else {
			e.stats.MasterNACKs++
			e.phase = phaseIdle
		}
	}
}

// received handles a byte from the master, after its 8th clock: it
// acknowledges it, or, for another device's address, leaves the bus.
func (e *EEPROM) received(b uint8) {
	switch {
	case e.addrByte:
		e.addrByte = false
		if b>>1 != e.addr {
			e.stats.NACKs++
			e.phase, e.low = phaseIdle, false
			return
		}
		e.stats.Addressed++
		e.selected = true
		e.reading = b&1 == 1
		e.wordAddr = !e.reading
	case e.wordAddr:
		e.wordAddr = false
		e.ptr = b
	default:
		i := e.ptr % EEPROMPageSize
		e.page = e.ptr - i
		e.buf[i] = b
		e.dirty |= 1 << i
		e.ptr = e.page + (i+1)%EEPROMPageSize
		e.stats.BytesWritten++
	}
	e.phase, e.low = phaseAck, true
}

// load starts sending the byte at the address counter, on a falling edge
// of SCL: its first bit goes on SDA now.
func (e *EEPROM) load() {
	e.shift = e.mem[e.ptr]
	e.ptr++
	e.phase, e.bits = phaseSend, 1
	e.low = e.shift&0x80 == 0
}
