// Package gpiosim makes chips of the kernel's gpio-sim (Documentation/
// admin-guide/gpio/gpio-sim.rst), for tests that need real GPIO lines:
// simulated chips made through configfs, whose lines a test pulls up and
// down and whose outputs it reads in sysfs. They need root and
// CONFIG_GPIO_SIM; Check says whether they can be made here.
package gpiosim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	configfs = "/sys/kernel/config"
	simWait  = 10 * time.Second // for a live chip's character device
)

var seq atomic.Int32

// Check reports why gpio-sim chips cannot be made here (nil if they can):
// not root, configfs not mountable, or no gpio-sim in configfs. It mounts
// configfs at /sys/kernel/config if needed.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: gpio-sim's configfs needs root")
	}
	if _, err := os.Stat(configfs + "/gpio-sim"); err == nil {
		return nil
	}
	if err := unix.Mount("none", configfs, "configfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount -t configfs none %s: %w", configfs, err)
	}
	if _, err := os.Stat(configfs + "/gpio-sim"); err != nil {
		return fmt.Errorf("no gpio-sim in configfs (is CONFIG_GPIO_SIM set?): %w", err)
	}
	return nil
}

// Chip is a live gpio-sim chip with one bank.
type Chip struct {
	t        testing.TB
	label    string   // the bank's label, also the configfs name
	dir      string   // its configfs directory
	made     []string // configfs directories, in the order made
	devName  string   // platform device, gpio-sim.N
	chipName string   // gpiochipM
}

// New makes a chip of n lines: names[i] names line i (an empty name
// leaves it unnamed), and hogs has gpio-sim hog a line (as an input) under
// a consumer name, as if someone else held it. The chip is removed at
// t.Cleanup. New calls t.Fatal, with a message naming the step, when it
// cannot make the chip (see Check). Its label is unique per call.
func New(t testing.TB, n int, names []string, hogs map[int]string) *Chip {
	t.Helper()
	if err := Check(); err != nil {
		t.Fatalf("gpio-sim: %v", err)
	}
	c := &Chip{t: t, label: fmt.Sprintf("gvmm-test-%d-%d", os.Getpid(), seq.Add(1))}
	c.dir = filepath.Join(configfs, "gpio-sim", c.label)
	t.Cleanup(c.remove)
	bank := filepath.Join(c.dir, "bank0")
	c.mkdir(c.dir)
	c.mkdir(bank)
	c.write(filepath.Join(bank, "num_lines"), fmt.Sprint(n))
	c.write(filepath.Join(bank, "label"), c.label)
	for i, name := range names {
		if name != "" {
			line := fmt.Sprintf("%s/line%d", bank, i)
			c.mkdir(line)
			c.write(line+"/name", name)
		}
	}
	for i, consumer := range hogs {
		line := fmt.Sprintf("%s/line%d", bank, i)
		c.mkdir(line)
		c.mkdir(line + "/hog")
		c.write(line+"/hog/name", consumer)
		c.write(line+"/hog/direction", "input")
	}
	c.write(filepath.Join(c.dir, "live"), "1")
	c.devName = c.read(filepath.Join(c.dir, "dev_name"))
	c.chipName = c.read(filepath.Join(bank, "chip_name"))
	deadline := time.Now().Add(simWait)
	for {
		if _, err := os.Stat(c.Dev()); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("gpio-sim chip %s is live but %s did not appear within %v: %v", c.label, c.Dev(), simWait, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func (c *Chip) mkdir(dir string) {
	c.t.Helper()
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, os.ErrExist) {
		return
	}
	if err != nil {
		c.t.Fatalf("making gpio-sim chip %s: %v", c.label, err)
	}
	c.made = append(c.made, dir)
}

// write writes an attribute of configfs or sysfs (no O_TRUNC, no create).
func (c *Chip) write(path, value string) {
	c.t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(value)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		c.t.Fatalf("gpio-sim chip %s: write %q to %s: %v", c.label, value, path, err)
	}
}

func (c *Chip) read(path string) string {
	c.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatalf("gpio-sim chip %s: %v", c.label, err)
	}
	return strings.TrimSpace(string(b))
}

func (c *Chip) remove() {
	if _, err := os.Stat(filepath.Join(c.dir, "live")); err == nil && c.read(filepath.Join(c.dir, "live")) == "1" {
		c.write(filepath.Join(c.dir, "live"), "0")
	}
	for i := len(c.made) - 1; i >= 0; i-- {
		if err := os.Remove(c.made[i]); err != nil {
			c.t.Errorf("removing gpio-sim chip %s: %v", c.label, err)
		}
	}
}

// Label is the bank's label, which is also the chip's label: a chip can
// be looked up by it.
func (c *Chip) Label() string { return c.label }

// Name is the chip's name, gpiochipM.
func (c *Chip) Name() string { return c.chipName }

// Dev is the chip's character device, /dev/gpiochipM.
func (c *Chip) Dev() string { return "/dev/" + c.chipName }

func (c *Chip) sysfs(line int, attr string) string {
	return fmt.Sprintf("/sys/devices/platform/%s/%s/sim_gpio%d/%s", c.devName, c.chipName, line, attr)
}

// Pull drives line from outside the chip: 1 pulls it up, 0 pulls it down.
// It calls t.Fatal when it cannot.
func (c *Chip) Pull(line int, v uint8) {
	c.t.Helper()
	pull, ok := map[uint8]string{0: "pull-down", 1: "pull-up"}[v]
	if !ok {
		c.t.Fatalf("gpio-sim chip %s: pull line %d to %d: want 0 or 1", c.label, line, v)
	}
	c.write(c.sysfs(line, "pull"), pull)
}

// Value is line's level (sim_gpioN/value): what an output drives, or the
// pull of a line nobody drives. It calls t.Fatal when it cannot read it.
func (c *Chip) Value(line int) uint8 {
	c.t.Helper()
	path := c.sysfs(line, "value")
	switch v := c.read(path); v {
	case "0":
		return 0
	case "1":
		return 1
	default:
		c.t.Fatalf("gpio-sim chip %s: %s is %q, want 0 or 1", c.label, path, v)
		return 0
	}
}
