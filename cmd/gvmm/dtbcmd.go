package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gvmm/gvmm/vmm"
)

const dtbUsage = `Usage: gvmm dtb [gvmm run flags] -o FILE

Writes the flattened device tree (DTB) that 'gvmm run' with the same flags
gives the guest: CPUs, APICs, power-off register, a virtio-mmio node with a
GPIO controller for each --gpio, the gpio-leds and gpio-keys devices of
--led and --key, with each --dt-overlay applied. It needs neither KVM nor
a kernel. The flags are checked as 'gvmm run' checks them; those that do
not change the tree (--kernel, --initrd, --append, --cmd, --control,
--name, --model, --mem: RAM is described by the e820 map, not the tree)
are accepted and ignored.

  -o FILE   where to write the blob; - for standard output

Example:
  gvmm dtb --gpio sim:8 --led status=0:0 --key 28=0:1 -o - | dtc -I dtb -O dts
  gvmm dtb --gpio sim:2,pull-up=0-1 --dt-overlay eeprom.dtso -o - | dtc -I dtb -O dts

Flags of gvmm run:
`

// dtbCmd runs gvmm dtb and returns the exit status.
func dtbCmd(args []string, stdout, stderr io.Writer) int {
	f, out, err := parseDTB(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gvmm dtb: %v (see 'gvmm dtb --help')\n", err)
		return 2
	}
	dtb, err := vmm.DeviceTree(f.config())
	if err == nil {
		err = writeOutput(out, dtb, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gvmm dtb: %v\n", err)
		return 1
	}
	return 0
}

// parseDTB reads gvmm run's flags and -o, which it returns.
func parseDTB(args []string, stdout io.Writer) (*runFlags, string, error) {
	f, fs := newRunFlags("gvmm dtb")
	out := fs.String("o", "", "write the blob to `file`; - for standard output")
	help := func() {
		fmt.Fprint(stdout, dtbUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fmt.Fprint(stdout, consumersHelp)
	}
	if err := f.parse(fs, args, help); err != nil {
		return nil, "", err
	}
	if *out == "" {
		return nil, "", errors.New("-o FILE is required (- for standard output)")
	}
	return f, *out, nil
}

// writeOutput writes b to the file path, or to stdout if path is "-".
func writeOutput(path string, b []byte, stdout io.Writer) error {
	if path == "-" {
		_, err := stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
