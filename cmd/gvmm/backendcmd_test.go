package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/control"
	"github.com/gvmm/gvmm/virtio/vhostuser"
)

// These tests run gvmm gpio-backend in the test's process; none needs KVM
// or a guest (go test -run Backend ./cmd/gvmm).

// TestBackendFlagErrors: every mistake is one line on stderr, exit
// status 2, and nothing is listened on.
func TestBackendFlagErrors(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "gpio.sock")
	ok := []string{"--socket", sock, "--gpio", "sim:8"}
	with := func(extra ...string) []string { return append(append([]string{}, ok...), extra...) }
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no flags", nil, "--socket PATH is required"},
		{"no --socket", []string{"--gpio", "sim:8"}, "--socket PATH is required"},
		{"no --gpio", []string{"--socket", sock}, "--gpio LINES is required"},
		{"two --gpio", with("--gpio", "sim:2"), "2 --gpio flags: a back end serves one controller"},
		{"bad line count", []string{"--socket", sock, "--gpio", "sim:0"}, `invalid value "sim:0" for flag -gpio: line count "0"`},
		{"bad pull", []string{"--socket", sock, "--gpio", "sim:4,pull-up=4"}, "pull-up: line 4: the bank has lines 0 to 3"},
		{"bad host lines", []string{"--socket", sock, "--gpio", "chip0:"}, `invalid value "chip0:" for flag -gpio`},
		{"no lines at all", []string{"--socket", sock, "--gpio", "eight"}, "or sim:N for a simulated bank"},
		{"argument", with("serve"), `unexpected argument "serve" (flags only)`},
		{"run's flag", with("--mem", "1G"), "flag provided but not defined: -mem"},
		{"--socket without a value", []string{"--gpio", "sim:8", "--socket"}, "flag needs an argument: -socket"},
		{"bad --name", with("--name", "my vm"), `name "my vm"`},
		{"--control is --socket", with("--control", sock), "--control and --socket are both " + sock},
		{"--verbose=maybe", with("--verbose=maybe"), `invalid boolean value "maybe" for -verbose`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			st := gvmm(append([]string{"gpio-backend"}, c.args...), nil, &stdout, &stderr)
			line := stderr.String()
			if st != 2 {
				t.Errorf("exit status %d, want 2", st)
			}
			if !strings.HasPrefix(line, "gvmm gpio-backend: ") || !strings.Contains(line, c.want) ||
				!strings.HasSuffix(line, " (see 'gvmm gpio-backend --help')\n") || strings.Count(line, "\n") != 1 {
				t.Errorf("stderr %q, want one line with %q", line, c.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if _, err := os.Lstat(sock); err == nil {
				t.Errorf("%s exists", sock)
			}
		})
	}
}

// TestBackendHelp: --help explains the QEMU side, with the command line.
func TestBackendHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if st := gvmm([]string{"gpio-backend", "--help"}, nil, &stdout, &stderr); st != 0 {
		t.Fatalf("exit status %d, stderr %q", st, stderr.String())
	}
	for _, want := range []string{
		"-device vhost-user-gpio-device,chardev=gpio0",
		"memory-backend-memfd,id=mem,size=256M,share=on",
		"virtio_mmio.device=512@0xfeb00e00:12",
		"-socket path", "-gpio lines", "-control path",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(usage, "gvmm gpio-backend --socket PATH --gpio LINES") {
		t.Error("gvmm's usage does not list gpio-backend")
	}
}

// TestBackendSocketInUse: a socket something answers on is refused (exit
// status 1); a stale socket file is replaced.
func TestBackendSocketInUse(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "gpio.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stdout, stderr bytes.Buffer
	if st := gvmm([]string{"gpio-backend", "--socket", sock, "--gpio", "sim:2"}, nil, &stdout, &stderr); st != 1 ||
		!strings.Contains(stderr.String(), "in use (something answers on it); give --socket another path") {
		t.Fatalf("exit status %d, stderr %q", st, stderr.String())
	}
}

// TestBackendServes runs gvmm gpio-backend: a front end gets the GPIO
// device's features and configuration over the socket, the control
// socket drives the bank, a stale socket file is replaced, and SIGTERM
// ends it cleanly (status 0, sockets removed).
func TestBackendServes(t *testing.T) {
	dir := t.TempDir()
	sock, ctl := filepath.Join(dir, "gpio.sock"), filepath.Join(dir, "ctl.sock")
	// A socket file left by a back end that was killed.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- gvmm([]string{"gpio-backend", "--socket", sock, "--gpio", "sim:4,names=a,b", "--control", ctl, "--verbose"},
			nil, &stdout, &stderr)
	}()
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err = net.Dial("unix", sock); err == nil && strings.Contains(stderr.String(), "serving") {
			break
		}
		if c != nil {
			c.Close()
		}
		select {
		case st := <-done:
			t.Fatalf("gvmm gpio-backend exited with %d: %s", st, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket after 10 s: %v; stderr %q", err, stderr.String())
		}
	}
	defer c.Close()

	call := func(r vhostuser.Request, payload []byte) []byte {
		t.Helper()
		h := vhostuser.Header{Request: r, Flags: vhostuser.Version, Size: uint32(len(payload))}.Bytes()
		if _, err := c.Write(append(h[:], payload...)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var hb [vhostuser.HeaderSize]byte
		if _, err := io.ReadFull(c, hb[:]); err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		rh := vhostuser.ParseHeader(hb)
		p := make([]byte, min(rh.Size, vhostuser.MaxPayload))
		if _, err := io.ReadFull(c, p); err != nil || rh.Request != r || rh.Flags != vhostuser.Version|vhostuser.FlagReply {
			t.Fatalf("%v: reply %+v %x %v", r, rh, p, err)
		}
		return p
	}
	features := binary.LittleEndian.Uint64(call(vhostuser.GetFeatures, nil))
	if want := uint64(1<<gpio.FeatureIRQ | 1<<vhostuser.FProtocolFeatures | 1<<32); features&want != want {
		t.Errorf("features %#x lack %#x", features, want&^features)
	}
	cfg := call(vhostuser.GetConfig, vhostuser.ConfigSpace{Size: gpio.ConfigSize, Data: make([]byte, gpio.ConfigSize)}.Bytes())
	if len(cfg) != 12+gpio.ConfigSize || binary.LittleEndian.Uint16(cfg[12:]) != 4 {
		t.Errorf("GET_CONFIG %x, want ngpio 4", cfg)
	}

	cl, err := control.Dial(ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Do(control.Request{Op: "set", Line: 2, Value: 1}); err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Do(control.Request{Op: "get", Line: 2})
	if err != nil || resp.Line == nil || resp.Line.Input != 1 {
		t.Fatalf("control get 2: %+v %v", resp, err)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-done:
		if st != 0 {
			t.Errorf("exit status %d after SIGTERM, want 0", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gvmm gpio-backend still running 10 s after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "stopped by terminated") {
		t.Errorf("stderr %q, want it stopped by SIGTERM", stderr.String())
	}
	for _, p := range []string{sock, ctl} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still exists", p)
		}
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the front end's connection is still open")
	}
}
