package models

import (
	"testing"

	"github.com/gvmm/gvmm/devices/gpio"
)

// What one byte of FuzzEEPROM's input makes the guest do (the byte modulo
// numOps): the open-drain accesses of i2c-gpio through gpiolib.
const (
	opReleaseSCL = iota // setscl(1): SCL an input
	opPullSCL           // setscl(0): SCL an output at 0
	opReleaseSDA
	opPullSDA
	opReadSCL // getscl
	opReadSDA // getsda
	numOps
)

// opFor is the op for a set of SDA or SCL to v, or a get for v < 0.
func opFor(sda bool, v int) byte {
	switch {
	case v < 0 && sda:
		return opReadSDA
	case v < 0:
		return opReadSCL
	case v == 0 && sda:
		return opPullSDA
	case v == 0:
		return opPullSCL
	case sda:
		return opReleaseSDA
	}
	return opReleaseSCL
}

// guestOp does op on the bank of newRig.
func guestOp(sim *gpio.Sim, op byte) error {
	switch op % numOps {
	case opReleaseSCL:
		return sim.SetDirection(lineSCL, gpio.DirectionIn, 0)
	case opPullSCL:
		return sim.SetDirection(lineSCL, gpio.DirectionOut, 0)
	case opReleaseSDA:
		return sim.SetDirection(lineSDA, gpio.DirectionIn, 0)
	case opPullSDA:
		return sim.SetDirection(lineSDA, gpio.DirectionOut, 0)
	case opReadSCL:
		_, err := sim.Get(lineSCL)
		return err
	default:
		_, err := sim.Get(lineSDA)
		return err
	}
}

// recoveryTries bounds how many times recoverBus clocks the bus and tries
// a STOP before it counts the bus as wedged.
const recoveryTries = 4

// recoverBus frees the bus whatever state the EEPROM was left in: with
// SDA released, 9 clocks (ending any byte the EEPROM sends, at the NACK
// they give it), then a STOP; again if the EEPROM still held SDA low.
func recoverBus(sim *gpio.Sim) (bool, error) {
	ops := []byte{opReleaseSDA, opReleaseSCL}
	for range 9 {
		ops = append(ops, opPullSCL, opReleaseSCL)
	}
	ops = append(ops, opPullSCL, opPullSDA, opReleaseSCL, opReleaseSDA)
	for range recoveryTries {
		for _, op := range ops {
			if err := guestOp(sim, op); err != nil {
				return false, err
			}
		}
		scl, _ := sim.Get(lineSCL)
		sda, _ := sim.Get(lineSDA)
		if scl == 1 && sda == 1 {
			return true, nil
		}
	}
	return false, nil
}

// seedOps records the line accesses of real transactions, as the Linux
// master makes them, to seed the fuzzer with.
func seedOps(t testing.TB, run func(dev *at24) error) []byte {
	sim, err := gpio.NewSim(2)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	_ = sim.SetPull(lineSCL, gpio.PullUp)
	_ = sim.SetPull(lineSDA, gpio.PullUp)
	if _, err := sim.Attach("eeprom", NewEEPROM(0), lineSCL, lineSDA); err != nil {
		t.Fatal(err)
	}
	var ops []byte
	bus := newBitBus(sim, lineSCL, lineSDA)
	bus.record = func(op byte) { ops = append(ops, op) }
	dev := newAt24(bus, DefaultEEPROMAddr)
	dev.writeTimeout = 0 // one try
	_ = run(dev)
	return ops
}

// FuzzEEPROM drives SCL and SDA at random against an EEPROM: it never
// panics, its memory stays 256 bytes, the bank never cuts a cascade off
// nor sees a conflict, the EEPROM only changes SDA while SCL is low, and
// whatever state it is left in, a bus recovery frees the bus and the
// EEPROM answers a probe again.
func FuzzEEPROM(f *testing.F) {
	for _, run := range []func(dev *at24) error{
		func(dev *at24) error { _, err := dev.probe(); return err },
		func(dev *at24) error { return dev.write(0x0c, []byte{1, 2, 3, 4, 5, 6}) },
		func(dev *at24) error { _, err := dev.read(0xfc, 4); return err },
		func(dev *at24) error { return dev.regmapWrite(0x3e, []byte{0x80, 0x7f, 0x00}) },
		func(dev *at24) error { dev.addr = 0x51; _, err := dev.probe(); return err },
	} {
		f.Add(seedOps(f, run))
	}
	f.Add([]byte{opPullSDA, opPullSCL, opReleaseSDA, opReleaseSCL, opReleaseSDA})
	f.Fuzz(func(t *testing.T, ops []byte) {
		e := NewEEPROM(0)
		if err := e.Load(pattern(1)); err != nil {
			t.Fatal(err)
		}
		sim, err := gpio.NewSim(3, "scl", "sda", "spare")
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		_ = sim.SetPull(lineSCL, gpio.PullUp)
		_ = sim.SetPull(lineSDA, gpio.PullUp)
		if _, err := sim.Attach("eeprom", e, lineSCL, lineSDA); err != nil {
			t.Fatal(err)
		}
		w := watchBus(t, sim)
		for i, op := range ops {
			if err := guestOp(sim, op); err != nil {
				t.Fatal(err)
			}
			if i%512 == 511 {
				w.sync() // the watch keeps up
			}
		}
		if n := len(e.Bytes()); n != EEPROMSize {
			t.Fatalf("memory %d bytes", n)
		}
		ok, err := recoverBus(sim)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			st, _ := sim.Line(lineSDA)
			t.Fatalf("bus still held after %d recoveries: SDA %s", recoveryTries, st.Drivers())
		}
		bus := newBitBus(sim, lineSCL, lineSDA)
		bus.pace = func() { w.sync() }
		dev := newAt24(bus, DefaultEEPROMAddr)
		dev.writeTimeout = 0
		b, err := dev.probe()
		if err != nil {
			t.Fatalf("probe after recovery: %v", err)
		}
		if want := e.Bytes()[0]; b != want {
			t.Errorf("probe read %#x, memory holds %#x", b, want)
		}
		w.finish(t)
		if n := sim.CutOff(); n != 0 {
			t.Errorf("CutOff %d", n)
		}
		if n := sim.Conflicts(); n != 0 {
			t.Errorf("Conflicts %d", n)
		}
		if n := len(e.Bytes()); n != EEPROMSize {
			t.Errorf("memory %d bytes", n)
		}
	})
}
