package spec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/gvmm/gvmm/fdt"
)

// MaxOverlaySize bounds an overlay file, compiled or source: gvmm's whole
// device tree is a few KiB.
const MaxOverlaySize = 1 << 20

// Overlay is one --dt-overlay: a device-tree overlay blob and the file it
// came from.
type Overlay struct {
	Path string
	DTB  []byte
}

// LoadOverlay reads a --dt-overlay file: a compiled overlay (`dtc -@ -I
// dts -O dtb`; any name), or overlay source (a name ending in .dtso or
// .dts), which it compiles with dtc. It checks that the result is a
// device tree with fragments; whether they apply is for the tree they go
// on to say (vmm.DeviceTree).
func LoadOverlay(path string) (Overlay, error) {
	f, err := os.Open(path)
	if err != nil {
		return Overlay{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxOverlaySize+1))
	if err != nil {
		return Overlay{}, err
	}
	if len(b) > MaxOverlaySize {
		return Overlay{}, fmt.Errorf("%s: larger than %d bytes: not a device-tree overlay", path, MaxOverlaySize)
	}
	if len(b) < 4 || binary.BigEndian.Uint32(b) != fdt.Magic {
		ext := filepath.Ext(path)
		if ext != ".dtso" && ext != ".dts" {
			return Overlay{}, fmt.Errorf("%s: not a compiled device-tree overlay (no FDT magic): compile it with 'dtc -@ -I dts -O dtb -o OUT.dtbo %s', or name its source .dtso", path, path)
		}
		if b, err = compileOverlay(path); err != nil {
			return Overlay{}, err
		}
	}
	if _, err := fdt.Parse(b); err != nil {
		return Overlay{}, fmt.Errorf("%s: %w", path, err)
	}
	return Overlay{Path: path, DTB: b}, nil
}

// compileOverlay compiles overlay source with dtc, with symbols (-@) so
// that it can refer to labels of the tree it goes on.
func compileOverlay(path string) ([]byte, error) {
	dtc, err := exec.LookPath("dtc")
	if err != nil {
		return nil, fmt.Errorf("%s: overlay source needs dtc to compile it: install device-tree-compiler (apt-get install device-tree-compiler), or give a compiled .dtbo", path)
	}
	var stdout, stderr bytes.Buffer
	arg := path
	if strings.HasPrefix(arg, "-") {
		arg = "./" + arg // a file, not an option
	}
	cmd := exec.Command(dtc, "-@", "-q", "-I", "dts", "-O", "dtb", "-o", "-", arg)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return nil, fmt.Errorf("%s: dtc: %s", path, msg)
		}
		return nil, fmt.Errorf("%s: dtc: %v", path, err)
	}
	if stdout.Len() > MaxOverlaySize {
		return nil, fmt.Errorf("%s: compiles to more than %d bytes", path, MaxOverlaySize)
	}
	return stdout.Bytes(), nil
}
