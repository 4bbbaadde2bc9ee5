package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/control"
	"github.com/gvmm/gvmm/internal/imagecache"
	"github.com/gvmm/gvmm/internal/qemuboot"
)

// qemuGPIOScript is what the guest runs under QEMU: libgpiod's tools
// against the controller gvmm gpio-backend serves. Line 1 is driven high
// by the host before boot; the guest holds line 2 high until the host,
// having seen it, answers by driving line 3 high (a handshake on the
// lines themselves, no timing); then gpiomon, which needs interrupts.
const qemuGPIOScript = `gpiodetect
gpioinfo gpiochip0
echo "GET1=$(gpioget gpiochip0 1)"
gpioset --mode=signal gpiochip0 2=1 &
echo "HOLDING2"
until [ "$(gpioget gpiochip0 3)" = 1 ]; do sleep 0.1; done
kill $!
wait
echo "SEEN3"
gpiomon --num-events=1 gpiochip0 4; echo "GPIOMON=$?"
reboot -f
`

// TestQEMUVhostUserGPIO boots the guest image under Debian's QEMU with
// gvmm's GPIO device served over vhost-user by gvmm gpio-backend: the
// guest's libgpiod tools find the controller with its line names, read
// a line the host drives, and set one the host sees. QEMU 7.2 never
// offers VIRTIO_GPIO_F_IRQ to the guest (rust-vmm/vhost-device issue
// 613), so the guest must have no GPIO interrupts: the back end's
// negotiated features lack the bit and gpiomon fails.
func TestQEMUVhostUserGPIO(t *testing.T) {
	needKVM(t)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("step 'find QEMU': %v (install Debian's qemu-system-x86; make test does)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
	defer cancel()
	dir := t.TempDir()
	sock, ctl := filepath.Join(dir, "gpio.sock"), filepath.Join(dir, "ctl.sock")

	be, err := qemuboot.Start(command(ctx, "gpio-backend", "--verbose", "--socket", sock, "--control", ctl,
		"--gpio", "sim:8,names=clk,in1,out2,ack3"))
	if err != nil {
		t.Fatalf("step 'start gvmm gpio-backend': %v", err)
	}
	defer be.Kill()
	if _, err := be.WaitFor(ctx, "gvmm gpio-backend listens", qemuboot.Stderr, "gvmm gpio-backend: serving"); err != nil {
		t.Fatal(err)
	}
	cl := dialControl(t, ctx, ctl)
	setInput(t, cl, 0, 1, 1)

	img := imagecache.Dir()
	c := qemuboot.Config{Binary: qemu, Machine: qemuboot.MachineMicrovm,
		Kernel: filepath.Join(img, "bzImage"), Initrd: filepath.Join(img, "initramfs.cpio.gz"),
		VhostUserGPIO: sock, Append: benchCmdline(qemuGPIOScript)}
	t.Logf("QEMU: %s", c)
	p, err := qemuboot.Start(c.Command(ctx))
	if err != nil {
		t.Fatalf("step 'start QEMU': %v", err)
	}
	defer p.Kill()
	defer func() {
		if t.Failed() {
			t.Logf("QEMU's console:\n%s\nQEMU's stderr:\n%s\ngvmm gpio-backend:\n%s",
				p.Output(qemuboot.Console), p.Output(qemuboot.Stderr), be.Tail(40))
		}
	}()

	if _, err := p.WaitFor(ctx, "the guest holds line 2 high", qemuboot.Console, "HOLDING2"); err != nil {
		t.Fatal(err)
	}
	waitState(t, ctx, cl, "the host sees the guest's gpioset on line 2", 0, 2, func(l control.Line) bool {
		return l.Direction == "out" && l.Output == 1
	})
	setInput(t, cl, 0, 3, 1)
	if _, err := p.WaitFor(ctx, "the guest sees the host's answer on line 3", qemuboot.Console, "SEEN3"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitFor(ctx, "gpiomon returns", qemuboot.Console, "GPIOMON="); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx, "QEMU exits when the guest reboots"); err != nil {
		t.Fatal(err)
	}
	console := p.Output(qemuboot.Console)

	for _, want := range []string{
		`gpiochip0 \[virtio0\] \(8 lines\)`, // gpiodetect
		`line +0: +"clk"`,                   // gpioinfo, with the names from the config space
		`line +3: +"ack3"`,
		`GET1=1`, // gpioget of the host-driven input
	} {
		if !regexp.MustCompile(want).MatchString(console) {
			t.Errorf("the guest's console lacks %s", want)
		}
	}
	// No interrupts through QEMU 7.2: gpiomon cannot request edges.
	if m := regexp.MustCompile(`GPIOMON=(\d+)`).FindStringSubmatch(console); m == nil || m[1] == "0" {
		t.Errorf("gpiomon succeeded under QEMU 7.2, which should give the guest no GPIO interrupts: %v", m)
	}
	// And the back end agrees: the features QEMU set lack VIRTIO_GPIO_F_IRQ
	// (bit 0), and only the requestq was started.
	m := regexp.MustCompile(`device started: rings (\S+), features (0x[0-9a-f]+)`).FindStringSubmatch(be.Output(qemuboot.Stderr))
	if m == nil {
		t.Fatalf("gvmm gpio-backend never said which rings and features QEMU started:\n%s", be.Tail(40))
	}
	features, err := strconv.ParseUint(m[2], 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	if features&1 != 0 || m[1] != "0" {
		t.Errorf("QEMU 7.2 negotiated rings %s, features %#x: expected the requestq alone, without VIRTIO_GPIO_F_IRQ", m[1], features)
	}
	// The bank answered the guest's requests: gpioget's GET_VALUEs and
	// gpioset's SET_VALUEs went through the back end's requestq.
	st, err := cl.Do(control.Request{Op: "stats"})
	if err != nil || st.Stats == nil {
		t.Fatalf("step 'read the bank's stats': %v", err)
	}
	if r := st.Stats.Requests; r[gpio.MsgTypeGetValue] == 0 || r[gpio.MsgTypeSetValue] == 0 {
		t.Errorf("the bank counted no GET_VALUE or SET_VALUE from the guest: %v", r)
	}
	t.Logf("QEMU 7.2 with gvmm gpio-backend: features %#x, requests by type %v", features, st.Stats.Requests)
}
