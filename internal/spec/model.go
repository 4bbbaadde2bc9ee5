package spec

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/models"
)

// modelSyntax is --model's syntax, for messages and help.
const modelSyntax = "at24c02=CTRL:SCL,SDA[,addr=0xNN][,file=PATH]"

// Model is one --model flag: a device model gvmm attaches to lines of a
// simulated bank before the guest boots.
type Model struct {
	value string // the flag's value, for messages
	ctrl  int
	lines []int // the model's pins, in order
	addr  uint8
	file  string
}

// ParseModel reads at24c02=CTRL:SCL,SDA[,addr=0xNN][,file=PATH]: a 24c02
// I2C EEPROM (models.EEPROM) on lines SCL and SDA of controller CTRL (its
// index or label), at address addr (default 0x50), holding the first 256
// bytes of PATH (default: erased, every byte 0xff).
func ParseModel(s string) (Model, error) {
	kind, rest, ok := strings.Cut(s, "=")
	if !ok {
		return Model{}, fmt.Errorf("want %s", modelSyntax)
	}
	if kind != "at24c02" {
		return Model{}, fmt.Errorf("unknown model %q (gvmm has at24c02, an I2C EEPROM: %s)", kind, modelSyntax)
	}
	m := Model{value: s, addr: models.DefaultEEPROMAddr}
	var ref lineRef
	opts, err := parseRefOpts(rest, &ref)
	if err != nil {
		return Model{}, err
	}
	if len(opts) == 0 {
		return Model{}, fmt.Errorf("%q: want CTRL:SCL,SDA, e.g. 0:0,1", rest)
	}
	sda, ok := parseIndex(opts[0])
	if !ok {
		return Model{}, fmt.Errorf("SDA line %q: want a line number (%s)", opts[0], modelSyntax)
	}
	if sda == ref.line {
		return Model{}, fmt.Errorf("SCL and SDA are both line %d: want two lines", sda)
	}
	m.ctrl, m.lines = ref.ctrl, []int{ref.line, sda}
	for _, o := range opts[1:] {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "addr":
			n, err := strconv.ParseUint(v, 0, 8)
			if err != nil || n < 0x08 || n > 0x77 {
				return Model{}, fmt.Errorf("addr %q: want a 7-bit I2C address from 0x08 to 0x77, e.g. 0x50", v)
			}
			m.addr = uint8(n)
		case "file":
			if v == "" {
				return Model{}, fmt.Errorf("file=: want a path")
			}
			m.file = v
		default:
			return Model{}, fmt.Errorf("unknown option %q (want addr=0xNN or file=PATH)", o)
		}
	}
	return m, nil
}

// Value is the flag's value, as given.
func (m Model) Value() string { return m.value }

// Controller is the index of the controller the model is on.
func (m Model) Controller() int { return m.ctrl }

// Name is the name the model is attached under: "at24c02@50" for the
// EEPROM at 0x50.
func (m Model) Name() string { return fmt.Sprintf("at24c02@%02x", m.addr) }

// CheckModels checks the models against the --gpio controllers: each is
// on a simulated bank that has its lines, and no two models of the same
// name share a bank. It returns warnings for what will not work as the
// user may expect, such as I2C lines without pull-ups.
func CheckModels(gpios []GPIO, ms []Model) (warnings []string, err error) {
	names := map[string]bool{}
	for _, m := range ms {
		what := fmt.Sprintf("--model %q", m.value)
		if m.ctrl >= len(gpios) {
			return nil, fmt.Errorf("%s: no GPIO controller %d (there are %d; add one with --gpio sim:N)", what, m.ctrl, len(gpios))
		}
		g := gpios[m.ctrl]
		if g.host != nil {
			return nil, fmt.Errorf("%s: controller %d is host lines (%s): a model goes on a simulated bank (--gpio sim:N)", what, m.ctrl, g.value)
		}
		for _, l := range m.lines {
			if l >= g.lines {
				return nil, fmt.Errorf("%s: no line %d on controller %d: its last line is %d", what, l, m.ctrl, g.lines-1)
			}
			if g.pulls[l] != gpio.PullUp {
				warnings = append(warnings, fmt.Sprintf("%s: line %d of controller %d has no pull-up, which an I2C bus needs (released, it reads 0): add pull-up=%d,%d to its --gpio", what, l, m.ctrl, m.lines[0], m.lines[1]))
			}
		}
		key := fmt.Sprintf("%d/%s", m.ctrl, m.Name())
		if names[key] {
			return nil, fmt.Errorf("%s: controller %d has a model at that address already", what, m.ctrl)
		}
		names[key] = true
	}
	return warnings, nil
}

// Open makes the model, loads its file, and attaches it to sim (the
// bank of controller Controller()).
func (m Model) Open(sim *gpio.Sim) (*models.EEPROM, *gpio.Attachment, error) {
	e := models.NewEEPROM(m.addr)
	if m.file != "" {
		b, err := readAtMost(m.file, models.EEPROMSize)
		if err != nil {
			return nil, nil, fmt.Errorf("--model %q: %w", m.value, err)
		}
		if err := e.Load(b); err != nil {
			return nil, nil, fmt.Errorf("--model %q: %w", m.value, err)
		}
	}
	a, err := sim.Attach(m.Name(), e, m.lines...)
	if err != nil {
		return nil, nil, fmt.Errorf("--model %q: %w", m.value, err)
	}
	return e, a, nil
}

// readAtMost reads path, failing if it is longer than n bytes.
func readAtMost(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(n)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > n {
		return nil, fmt.Errorf("%s: longer than the EEPROM's %d bytes", path, n)
	}
	return b, nil
}
