package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/models"
	"github.com/gvmm/gvmm/gvmmtest"
)

// eepromOverlay describes the bus and the EEPROM to the guest: i2c-gpio on
// lines 0 (SCL) and 1 (SDA) of gpio0, a 24c02 at 0x50 on it.
const eepromOverlay = "../../examples/i2c-eeprom.dtso"

// eepromDev is the at24 driver's nvmem file for the EEPROM at 0x50 of
// the guest's only I2C bus.
const eepromDev = "/sys/bus/i2c/devices/0-0050/eeprom"

// eepromTimeout bounds each bit-banged transfer: through the nested test
// host every GPIO request is a few milliseconds, and a 256-byte read takes
// some ten thousand of them.
const eepromTimeout = 15 * time.Minute

// hexBytes reads od -An -tx1's output.
func hexBytes(t *testing.T, out string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(out), ""))
	if err != nil {
		t.Fatalf("step 'read od's output': %v in %q", err, out)
	}
	return b
}

// requests is the bank's requestq messages so far.
func requests(b *gvmmtest.Bank) (n uint64) {
	for _, c := range b.Stats().Requests {
		n += c
	}
	return n
}

// TestI2CEEPROM: the guest kernel's own i2c-gpio bus driver and at24
// EEPROM driver, described by a device-tree overlay, read and write a
// 24c02 EEPROM model through two open-drain virtio GPIO lines with
// pull-ups; the bytes are checked against the model's memory both ways.
func TestI2CEEPROM(t *testing.T) {
	e := models.NewEEPROM(0x50)
	want := make([]byte, models.EEPROMSize)
	for i := range want {
		want[i] = byte(i*7 + 3)
	}
	if err := e.Load(want); err != nil {
		t.Fatal(err)
	}
	vm := gvmmtest.Start(t, gvmmtest.GPIO("sim:2,pull-up=0-1,names=scl,sda"),
		gvmmtest.Model(0, "eeprom", e, models.PinSCL, models.PinSDA),
		gvmmtest.Overlay(eepromOverlay))
	b := vm.Bank(0)
	run := func(step, cmd string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), eepromTimeout)
		defer cancel()
		out, err := vm.Run(ctx, cmd)
		if err != nil {
			t.Fatalf("step %q: %v", step, err)
		}
		return out
	}
	// at24's probe read one byte at boot; the driver says what it found.
	if out := run("find the EEPROM", "dmesg | grep -m1 at24; ls "+eepromDev); !strings.Contains(out, "256 byte 24c02 EEPROM") {
		t.Fatalf("step 'find the EEPROM': at24 did not bind: %q", out)
	}

	// The guest reads all 256 bytes.
	before, began := requests(b), time.Now()
	got := hexBytes(t, run("read the EEPROM", "od -An -tx1 -v "+eepromDev))
	took, reqs := time.Since(began), requests(b)-before
	if !bytes.Equal(got, want) {
		t.Fatalf("step 'read the EEPROM': the guest read\n%x\nthe model holds\n%x", got, want)
	}
	st := e.Stats()
	t.Logf("the guest read 256 bytes in %v with %d GPIO requests (%.0f per byte, %.1f ms each); EEPROM: %+v",
		took.Round(time.Millisecond), reqs, float64(reqs)/256, took.Seconds()*1000/float64(reqs), st)

	// The guest writes: 16 bytes at 32 in one write(2) (two 8-byte page
	// writes), then 6 bytes at 60, across the page boundary at 64, which
	// at24 splits. (dd's seek counts blocks of bs: off is a multiple of
	// the length.)
	for _, w := range []struct {
		off  int
		data []byte
	}{
		{32, []byte("gvmm virtio-gpio")},
		{60, []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01}},
	} {
		esc := ""
		for _, c := range w.data {
			esc += fmt.Sprintf(`\%03o`, c)
		}
		run(fmt.Sprintf("write %d bytes at %d", len(w.data), w.off),
			fmt.Sprintf("printf '%s' | dd of=%s bs=%d seek=%d conv=notrunc 2>/dev/null", esc, eepromDev, len(w.data), w.off/len(w.data)))
		copy(want[w.off:], w.data)
		if m := e.Bytes(); !bytes.Equal(m, want) {
			t.Fatalf("step 'write %d bytes at %d': the model holds\n%x\nwant\n%x", len(w.data), w.off, m, want)
		}
	}
	// And reads them back through the bus.
	back := hexBytes(t, run("read back", fmt.Sprintf("dd if=%s bs=1 skip=32 count=36 2>/dev/null | od -An -tx1 -v", eepromDev)))
	if !bytes.Equal(back, want[32:68]) {
		t.Errorf("step 'read back': the guest read %x, want %x", back, want[32:68])
	}
	// Open drain, pull-ups: nobody drove a line against another.
	if n := b.Sim().Conflicts(); n != 0 {
		t.Errorf("%d conflicts on the bus lines", n)
	}
	for _, l := range []int{0, 1} {
		if st := b.Line(l); st.Pull != gpio.PullUp || st.Level != 1 {
			t.Errorf("line %d at rest: %+v, want pulled up and high", l, st)
		}
	}
}

// TestOverlayHog: an overlay that targets the controller by its label
// (&gpio0) adds a GPIO hog, which the guest's gpiolib requests as the
// chip registers: line 3 is an output driving 1 before anything in user
// space runs, and gpioinfo shows its consumer.
func TestOverlayHog(t *testing.T) {
	vm := gvmmtest.Start(t, gvmmtest.Sim(8), gvmmtest.Overlay("../../examples/reset-hog.dtso"))
	if st := vm.Bank(0).Line(3); st.Direction != gpio.DirectionOut || st.Level != 1 {
		t.Errorf("line 3 after boot: direction %s, level %d; want the hog's output at 1", st.Direction, st.Level)
	}
	out := vm.MustRun("gpioinfo gpiochip0")
	var line3 string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "line   3:") {
			line3 = l
		}
	}
	t.Logf("gpioinfo: %s", line3)
	if !strings.Contains(line3, `"reset"`) || !strings.Contains(line3, "output") || !strings.Contains(line3, "[used]") {
		t.Errorf("gpioinfo's line 3: %q, want it used by \"reset\" as an output\n%s", line3, out)
	}
}

// TestModelFlag: gvmm run's --model and --dt-overlay, end to end: the
// EEPROM holds file='s bytes, and the guest's at24 reads them.
func TestModelFlag(t *testing.T) {
	needKVM(t)
	rom := []byte("gvmm's EEPROM, from a file")
	path := filepath.Join(t.TempDir(), "rom.bin")
	if err := os.WriteFile(path, rom, 0o644); err != nil {
		t.Fatal(err)
	}
	r := gvmmRun(t, "read the EEPROM through --model", "run", "--append", quietCmdline,
		"--gpio", "sim:2,pull-up=0-1,names=scl,sda", "--model", "at24c02=0:0,1,file="+path,
		"--dt-overlay", eepromOverlay,
		"--cmd", fmt.Sprintf("od -An -tx1 -v -N%d %s", len(rom), eepromDev))
	if r.status != 0 {
		t.Fatalf("status %d, stderr %q", r.status, r.stderr)
	}
	var got []byte
	for _, l := range strings.Split(r.stdout, "\n") {
		if b, err := hex.DecodeString(strings.Join(strings.Fields(l), "")); err == nil && len(b) > 0 && len(got) < len(rom) {
			got = append(got, b...)
		}
	}
	if !bytes.Equal(got, rom) {
		t.Errorf("the guest read %q, want %q; console:\n%s", got, rom, r.stdout)
	}
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("warnings for a well-formed bus: %q", r.stderr)
	}
}
