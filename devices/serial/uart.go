// Package serial models the 16550A UART that carries the guest's console
// (COM1: I/O ports 0x3f8-0x3ff, ISA IRQ 4).
//
// Transmission is instant: a byte written to THR goes straight to Out and
// the transmitter is empty again, so the THR-empty interrupt is raised
// right away, as QEMU's model does. Received bytes wait in a FIFO until the
// guest reads RBR. The interrupt line is level-like: SetIRQ(true) while an
// enabled condition is pending, SetIRQ(false) once none is.
package serial

import (
	"io"
	"sync"
)

// COM1 is the first PC serial port.
const (
	COM1Base = 0x3f8
	COM1IRQ  = 4
	NumPorts = 8
)

// Register offsets from the base port.
const (
	regData = 0 // RBR (read) / THR (write); DLL when LCR.DLAB
	regIER  = 1 // DLM when LCR.DLAB
	regIIR  = 2 // IIR (read) / FCR (write)
	regLCR  = 3
	regMCR  = 4
	regLSR  = 5
	regMSR  = 6
	regSCR  = 7
)

// Register bits (include/uapi/linux/serial_reg.h).
const (
	ierRDI     = 0x01 // received data available
	ierTHRI    = 0x02 // transmitter holding register empty
	iirNoInt   = 0x01
	iirTHRI    = 0x02
	iirRDI     = 0x04
	iirFIFO    = 0xc0
	fcrEnable  = 0x01
	lcrDLAB    = 0x80
	lsrDR      = 0x01
	lsrTHRE    = 0x20
	lsrTEMT    = 0x40
	mcrLoop    = 0x10
	msrDCD     = 0x80
	msrDSR     = 0x20
	msrCTS     = 0x10
	maxPending = 64 << 10 // received bytes kept before new ones are dropped
)

// UART is a 16550A. Its methods are safe for concurrent use.
type UART struct {
	// Out receives every byte the guest transmits.
	Out io.Writer
	// SetIRQ drives the interrupt line.
	SetIRQ func(level bool)

	mu         sync.Mutex
	rx         []byte
	ier, lcr   uint8
	mcr, scr   uint8
	fcr        uint8
	dll, dlm   uint8
	thrPending bool // THR-empty interrupt pending
	irq        bool
}

// New returns a UART writing to out and signalling through setIRQ.
func New(out io.Writer, setIRQ func(bool)) *UART {
	return &UART{Out: out, SetIRQ: setIRQ, dll: 12}
}

// Receive queues bytes for the guest to read.
func (u *UART) Receive(p []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := min(len(p), maxPending-len(u.rx))
	u.rx = append(u.rx, p[:n]...)
	u.update()
}

// Read handles a guest read of the register at offset off.
func (u *UART) Read(off uint64) uint8 {
	u.mu.Lock()
	defer u.mu.Unlock()
	dlab := u.lcr&lcrDLAB != 0
	var v uint8
	switch off {
	case regData:
		if dlab {
			return u.dll
		}
		if len(u.rx) > 0 {
			v = u.rx[0]
			u.rx = u.rx[1:]
		}
	case regIER:
		if dlab {
			return u.dlm
		}
		return u.ier
	case regIIR:
		v = u.iir()
		if v&0x0f == iirTHRI {
			u.thrPending = false // reading IIR acknowledges THRE
		}
	case regLCR:
		return u.lcr
	case regMCR:
		return u.mcr
	case regLSR:
		v = lsrTHRE | lsrTEMT
		if len(u.rx) > 0 {
			v |= lsrDR
		}
		return v
	case regMSR:
		if u.mcr&mcrLoop != 0 {
			// Loopback: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
			m := u.mcr
			return (m&1)<<5 | (m&2)<<3 | (m&4)<<4 | (m&8)<<4
		}
		return msrDCD | msrDSR | msrCTS
	case regSCR:
		return u.scr
	}
	u.update()
	return v
}

// Write handles a guest write of v to the register at offset off.
func (u *UART) Write(off uint64, v uint8) {
	u.mu.Lock()
	defer u.mu.Unlock()
	dlab := u.lcr&lcrDLAB != 0
	switch off {
	case regData:
		if dlab {
			u.dll = v
			return
		}
		if u.mcr&mcrLoop != 0 {
			if len(u.rx) < maxPending {
				u.rx = append(u.rx, v)
			}
		} else if u.Out != nil {
			_, _ = u.Out.Write([]byte{v})
		}
		u.thrPending = true
	case regIER:
		if dlab {
			u.dlm = v
			return
		}
		// Enabling THRI while THR is empty raises the interrupt at once.
		if v&ierTHRI != 0 && u.ier&ierTHRI == 0 {
			u.thrPending = true
		}
		u.ier = v & 0x0f
	case regIIR:
		u.fcr = v
		if v&0x02 != 0 { // clear receive FIFO
			u.rx = u.rx[:0]
		}
	case regLCR:
		u.lcr = v
	case regMCR:
		u.mcr = v & 0x1f
	case regSCR:
		u.scr = v
	}
	u.update()
}

func (u *UART) iir() uint8 {
	v := uint8(iirNoInt)
	switch {
	case u.ier&ierRDI != 0 && len(u.rx) > 0:
		v = iirRDI
	case u.ier&ierTHRI != 0 && u.thrPending:
		v = iirTHRI
	}
	if u.fcr&fcrEnable != 0 {
		v |= iirFIFO
	}
	return v
}

// update drives the interrupt line from the pending conditions.
func (u *UART) update() {
	level := u.iir()&iirNoInt == 0
	if level != u.irq {
		u.irq = level
		if u.SetIRQ != nil {
			u.SetIRQ(level)
		}
	}
}
