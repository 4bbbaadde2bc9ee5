package serial

import (
	"bytes"
	"testing"
)

type irqLog struct{ levels []bool }

func (l *irqLog) set(v bool)  { l.levels = append(l.levels, v) }
func (l *irqLog) level() bool { return len(l.levels) > 0 && l.levels[len(l.levels)-1] }

func TestTransmit(t *testing.T) {
	var out bytes.Buffer
	var irq irqLog
	u := New(&out, irq.set)
	for _, b := range []byte("hi\n") {
		u.Write(regData, b)
	}
	if out.String() != "hi\n" {
		t.Errorf("out %q", out.String())
	}
	if irq.level() {
		t.Error("interrupt raised with IER = 0")
	}
	if lsr := u.Read(regLSR); lsr&(lsrTHRE|lsrTEMT) != lsrTHRE|lsrTEMT || lsr&lsrDR != 0 {
		t.Errorf("LSR %#x", lsr)
	}
}

func TestTHREInterrupt(t *testing.T) {
	var irq irqLog
	u := New(nil, irq.set)
	steps := []struct {
		name    string
		do      func()
		wantIRQ bool
		wantIIR uint8 // 0: don't read
	}{
		{"enable THRI raises at once", func() { u.Write(regIER, ierTHRI) }, true, 0},
		{"IIR says THRI and acknowledges", func() {}, false, iirTHRI},
		{"IIR then says nothing", func() {}, false, iirNoInt},
		{"writing THR raises again", func() { u.Write(regData, 'x') }, true, 0},
		{"disable THRI lowers", func() { u.Write(regIER, 0) }, false, iirNoInt},
	}
	for _, s := range steps {
		s.do()
		if s.wantIIR != 0 {
			if got := u.Read(regIIR) & 0x0f; got != s.wantIIR {
				t.Fatalf("%s: IIR %#x, want %#x", s.name, got, s.wantIIR)
			}
		}
		if irq.level() != s.wantIRQ {
			t.Fatalf("%s: irq %v, want %v", s.name, irq.level(), s.wantIRQ)
		}
	}
}

func TestReceive(t *testing.T) {
	var irq irqLog
	u := New(nil, irq.set)
	u.Receive([]byte("ab"))
	if irq.level() {
		t.Error("interrupt without RDI enabled")
	}
	u.Write(regIER, ierRDI)
	if !irq.level() || u.Read(regIIR)&0x0f != iirRDI || u.Read(regLSR)&lsrDR == 0 {
		t.Fatal("received data not signalled")
	}
	if a, b := u.Read(regData), u.Read(regData); a != 'a' || b != 'b' {
		t.Errorf("read %q %q", a, b)
	}
	if irq.level() || u.Read(regLSR)&lsrDR != 0 {
		t.Error("still signalled after the FIFO drained")
	}
	if u.Read(regData) != 0 {
		t.Error("empty RBR not 0")
	}
	u.Receive(make([]byte, maxPending+10))
	if n := len(u.rx); n != maxPending {
		t.Errorf("pending %d bytes, cap %d", n, maxPending)
	}
}

func TestRegisters(t *testing.T) {
	u := New(nil, nil)
	tests := []struct {
		name     string
		off      uint64
		write    uint8
		readOff  uint64
		wantRead uint8
		setupLCR uint8
		resetLCR bool
	}{
		{"scratch", regSCR, 0x5a, regSCR, 0x5a, 0, false},
		{"IER keeps low nibble", regIER, 0xff, regIER, 0x0f, 0, false},
		{"divisor latch low", regData, 0x01, regData, 0x01, lcrDLAB, true},
		{"divisor latch high", regIER, 0x02, regIER, 0x02, lcrDLAB, true},
		{"FIFO enabled shows in IIR", regIIR, fcrEnable, regIIR, iirFIFO | iirNoInt, 0, false},
		{"loopback MSR", regMCR, mcrLoop | 0x3, regMSR, 0x30, 0, false},
	}
	for _, tt := range tests {
		u.Write(regIER, 0)
		u.Write(regLCR, tt.setupLCR)
		u.Write(tt.off, tt.write)
		if got := u.Read(tt.readOff); got != tt.wantRead {
			t.Errorf("%s: read %#x, want %#x", tt.name, got, tt.wantRead)
		}
		if tt.resetLCR {
			u.Write(regLCR, 0)
		}
	}
}
