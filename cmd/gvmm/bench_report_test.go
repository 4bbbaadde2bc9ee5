package main

// TestBench's report: the tables of figures, ratios and targets.

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// unit is how a cell's values print.
type unit int

const (
	seconds unit = iota
	mebibytes
)

// cell is one figure of one VMM over the runs: the median of vals, with
// their min and max when there are several; or na, why there is none.
type cell struct {
	vals []float64
	unit unit
	na   string
}

func durCell(ds []time.Duration) cell {
	c := cell{unit: seconds}
	for _, d := range ds {
		c.vals = append(c.vals, d.Seconds())
	}
	return c
}

func mibCell(v []float64) cell { return cell{vals: v, unit: mebibytes} }

func naCell(why string) cell { return cell{na: why} }

func (c cell) ok() bool { return c.na == "" && len(c.vals) > 0 }

// med is the median (the mean of the middle two for an even count).
func (c cell) med() float64 {
	s := slices.Clone(c.vals)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (c cell) String() string {
	if c.na != "" {
		return c.na
	}
	if len(c.vals) == 0 {
		return "not measured"
	}
	if len(c.vals) == 1 {
		return formatValue(c.vals[0], c.unit)
	}
	return fmt.Sprintf("%s (%s–%s)", formatValue(c.med(), c.unit),
		formatValue(slices.Min(c.vals), c.unit), formatValue(slices.Max(c.vals), c.unit))
}

// formatValue prints v (seconds or MiB) with three significant digits.
func formatValue(v float64, u unit) string {
	if u == mebibytes {
		return fmt.Sprintf("%.1f MiB", v)
	}
	switch {
	case v < 1e-3:
		return fmt.Sprintf("%.3g µs", v*1e6)
	case v < 1:
		return fmt.Sprintf("%.3g ms", v*1e3)
	}
	return fmt.Sprintf("%.3g s", v)
}

// ratio is a's median over b's, as "0.61×", or "–".
func ratio(a, b cell) string {
	if !a.ok() || !b.ok() || b.med() == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a.med()/b.med())
}

// offTarget says how far value is from the target "≤ limit".
func offTarget(value, limit float64) string {
	if math.IsNaN(value) || limit <= 0 {
		return "not measured"
	}
	if value <= limit {
		return fmt.Sprintf("meets (%.0f%% under)", (1-value/limit)*100)
	}
	return fmt.Sprintf("misses (%.0f%% over)", (value/limit-1)*100)
}

// offTargetAtLeast says how far value is from the target "≥ limit".
func offTargetAtLeast(value, limit float64) string {
	if value >= limit {
		return fmt.Sprintf("meets (%.0f%% over)", (value/limit-1)*100)
	}
	return fmt.Sprintf("misses (%.0f%% under)", (1-value/limit)*100)
}

// ratioOff is offTarget for the ratio of a's and b's medians.
func ratioOff(a, b cell, limit float64) string {
	if !a.ok() || !b.ok() {
		return "not measured"
	}
	return offTarget(a.med()/b.med(), limit)
}

// table prints a Markdown table.
func table(header []string, rows [][]string) string {
	var s strings.Builder
	s.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		s.WriteString("---|")
	}
	s.WriteString("\n")
	for _, r := range rows {
		s.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return s.String()
}

// bootCells returns one cell per VMM of figure f of its boot runs.
func bootCells(vmms []bootVMM, boots map[string][]bootSample, f func(bootSample) float64, u unit) map[string]cell {
	cells := map[string]cell{}
	for _, v := range vmms {
		c := cell{unit: u}
		for _, s := range boots[v.name] {
			c.vals = append(c.vals, f(s))
		}
		cells[v.name] = c
	}
	for _, n := range []string{"QEMU microvm", "QEMU pc"} {
		if _, ok := cells[n]; !ok {
			cells[n] = naCell("n/a (no qemu-system-x86_64)")
		}
	}
	return cells
}

// gpioCell is figure f of GPIO runs gs, or na when there are none.
func gpioCell(gs []gpioSample, na string, f func(gpioSample) time.Duration) cell {
	if len(gs) == 0 {
		if na == "" {
			na = "not measured"
		}
		return naCell(na)
	}
	var ds []time.Duration
	for _, g := range gs {
		ds = append(ds, f(g))
	}
	return durCell(ds)
}

// modeText describes the runs, which alternate in order.
func (b *bench) modeText(order string) string {
	if !b.mode.full {
		return "smoke (make test): one run of each, no warm-up; not a measurement"
	}
	return fmt.Sprintf("full: %d runs of each, alternating (%s, ...), after one warm-up run of each that is not counted", b.mode.runs, order)
}

// bootReport is TestBench's part of the report, in Markdown.
func (b *bench) bootReport(vmms []bootVMM, boots map[string][]bootSample, took time.Duration) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s\n\nQEMU: %s. gvmm: %s.\n\nEach figure is the median of the runs, (min–max) of the runs after it.\n\n",
		b.l1, b.qemuVer, b.gvmmName())
	dur := func(f func(bootSample) time.Duration) func(bootSample) float64 {
		return func(s bootSample) float64 { return f(s).Seconds() }
	}
	type bootRow struct {
		name   string
		cells  map[string]cell
		target string
		off    func(c map[string]cell) string
	}
	bootTarget := func(c map[string]cell) string {
		return "vs microvm " + ratioOff(c["gvmm"], c["QEMU microvm"], 0.8) + "; vs pc " + ratioOff(c["gvmm"], c["QEMU pc"], 0.5)
	}
	memTarget := func(c map[string]cell) string {
		if !c["gvmm"].ok() {
			return "not measured"
		}
		return "gvmm " + offTarget(c["gvmm"].med(), 10)
	}
	none := func(map[string]cell) string { return "–" }
	rows := []bootRow{
		{"boot: process start → /init (its first console line)", bootCells(vmms, boots, dur(func(s bootSample) time.Duration { return s.toInit }), seconds),
			"≤ 0.8× microvm, ≤ 0.5× pc", bootTarget},
		{"boot: process start → VMM exit after `reboot -f` (less the pause)", bootCells(vmms, boots, dur(func(s bootSample) time.Duration { return s.poweroff }), seconds),
			"≤ 0.8× microvm, ≤ 0.5× pc", bootTarget},
		{"of which VMM set-up: process start → first KVM_RUN (¹)", bootCells(vmms, boots, dur(func(s bootSample) time.Duration { return s.setup }), seconds), "–", none},
		{"of which guest: first KVM_RUN → /init", bootCells(vmms, boots, dur(func(s bootSample) time.Duration { return s.toInit - s.setup }), seconds), "–", none},
		{"VMM memory: RSS beyond guest RAM, guest idle at the pause (²)", bootCells(vmms, boots, func(s bootSample) float64 { return mib(s.mem.BeyondGuestRAM()) }, mebibytes),
			"≤ 10 MiB", memTarget},
		{"guest RAM resident (for reference)", bootCells(vmms, boots, func(s bootSample) float64 { return mib(s.mem.GuestRAM) }, mebibytes), "–", none},
	}
	var tr [][]string
	for _, r := range rows {
		c := r.cells
		tr = append(tr, []string{r.name, c["gvmm"].String(), c["QEMU microvm"].String(), c["QEMU pc"].String(),
			ratio(c["gvmm"], c["QEMU microvm"]), ratio(c["gvmm"], c["QEMU pc"]), r.target, r.off(c)})
	}
	fmt.Fprintf(&s, "### Boot and memory (256 MiB guest, 1 vCPU, no GPIO device)\n\nMode: %s; these runs took %v.\n\n",
		b.modeText("gvmm, QEMU microvm, QEMU pc, gvmm"), took.Round(time.Second))
	s.WriteString(table([]string{"figure", "gvmm", "QEMU microvm", "QEMU pc", "gvmm ÷ microvm", "gvmm ÷ pc", "target", "off target"}, tr))
	s.WriteString(`
(¹) gvmm: the line gvmm run --verbose logs just before its vCPUs' first
KVM_RUN. QEMU: its trace event vm_state_notify (-trace vm_state_notify,
"running 1"), which QEMU emits as it starts the vCPUs, whose first KVM_RUN
follows. Both read from the VMM's stderr pipe as they come. For QEMU pc the
guest part includes SeaBIOS, for microvm qboot.
(²) From /proc/PID/smaps at the pause (the guest waits on its console):
the sum of every mapping's Rss less that of the guest-RAM mapping (the one
mapping of guest RAM's size: gvmm's anonymous mapping, QEMU's pc.ram).
`)
	s.WriteString(b.commandLines())
	return s.String()
}

// gpioReport is TestBenchGPIO's part of the report, in Markdown.
func (b *bench) gpioReport(gpios map[string][]gpioSample, backendNA string, took time.Duration) string {
	var s strings.Builder
	g, q := gpios["gvmm"], gpios["qemu"]
	setG := gpioCell(g, "", func(x gpioSample) time.Duration { return x.set.median })
	setQ := gpioCell(q, backendNA, func(x gpioSample) time.Duration { return x.set.median })
	setG99 := gpioCell(g, "", func(x gpioSample) time.Duration { return x.set.p99 })
	setQ99 := gpioCell(q, backendNA, func(x gpioSample) time.Duration { return x.set.p99 })
	getG := gpioCell(g, "", func(x gpioSample) time.Duration { return x.get.median })
	getQ := gpioCell(q, backendNA, func(x gpioSample) time.Duration { return x.get.median })
	getG99 := gpioCell(g, "", func(x gpioSample) time.Duration { return x.get.p99 })
	getQ99 := gpioCell(q, backendNA, func(x gpioSample) time.Duration { return x.get.p99 })
	floor := gpioCell(g, "", func(x gpioSample) time.Duration { return x.mmio.median })
	floor99 := gpioCell(g, "", func(x gpioSample) time.Duration { return x.mmio.p99 })
	echo := gpioCell(g, "", func(x gpioSample) time.Duration { return median(x.echoDevice) })
	echo99 := gpioCell(g, "", func(x gpioSample) time.Duration { return percentile(x.echoDevice, 99) })
	echoC := gpioCell(g, "", func(x gpioSample) time.Duration { return median(x.echoClient) })
	echoC99 := gpioCell(g, "", func(x gpioSample) time.Duration { return percentile(x.echoClient, 99) })
	var memG, memQ cell
	for _, x := range g {
		memG.vals = append(memG.vals, mib(x.mem.BeyondGuestRAM()))
	}
	memG.unit = mebibytes
	memQ = naCell(backendNA)
	if len(q) > 0 {
		memQ = cell{unit: mebibytes}
		for _, x := range q {
			memQ.vals = append(memQ.vals, mib(x.mem.BeyondGuestRAM()))
		}
	}
	noIRQ := naCell("n/a (QEMU 7.2 offers no GPIO interrupts over vhost-user)")
	vs := func(a, b cell) string { return ratioOff(a, b, 0.5) }
	memOff := "not measured"
	if memG.ok() {
		memOff = "gvmm " + offTarget(memG.med(), 10)
	}
	tr := [][]string{
		{"GPIO set round trip (gpio-rtt -op set), median", setG.String(), setQ.String(), ratio(setG, setQ), "≤ 0.5×", vs(setG, setQ)},
		{"GPIO set round trip, p99", setG99.String(), setQ99.String(), ratio(setG99, setQ99), "≤ 0.5×", vs(setG99, setQ99)},
		{"GPIO get round trip (gpio-rtt -op get), median", getG.String(), getQ.String(), ratio(getG, getQ), "≤ 0.5×", vs(getG, getQ)},
		{"GPIO get round trip, p99", getG99.String(), getQ99.String(), ratio(getG99, getQ99), "≤ 0.5×", vs(getG99, getQ99)},
		{"floor: MMIO write to vmm.NullMMIOBase (gpio-rtt -op mmio), median", floor.String(), "–",
			"set ÷ floor " + ratio(setG, floor) + ", get ÷ floor " + ratio(getG, floor), "set ≤ 1.5× floor", "set " + ratioOff(setG, floor, 1.5)},
		{"floor, p99", floor99.String(), "–", "–", "–", "–"},
		{"host edge → guest → host (gpio-rtt -op echo), median, gvmm's clock (³)", echo.String(), noIRQ.String(),
			"echo ÷ set " + ratio(echo, setG), "≤ 2× set", ratioOff(echo, setG, 2)},
		{"host edge → guest → host, p99, gvmm's clock", echo99.String(), "–", "echo p99 ÷ set p99 " + ratio(echo99, setG99), "≤ 2× set", ratioOff(echo99, setG99, 2)},
		{"the same echo as the bench saw it through --control, median / p99", echoC.String() + " / " + echoC99.String(), "–", "–", "–", "–"},
		{"VMM memory: RSS beyond guest RAM after the GPIO runs (QEMU: its own and the back end's)", memG.String(), memQ.String(), ratio(memG, memQ), "≤ 10 MiB", memOff},
	}
	fmt.Fprintf(&s, "### GPIO (256 MiB guest, one simulated bank of 8 lines; gpio-rtt: %d requests a run, %d echoed edges)\n\nMode: %s; these runs took %v.\n\n",
		b.mode.gpioN, b.mode.echoN, b.modeText("gvmm, QEMU + gvmm gpio-backend, gvmm"), took.Round(time.Second))
	s.WriteString(table([]string{"figure", "gvmm (device in-process)", "QEMU microvm + gvmm gpio-backend (vhost-user)", "ratio", "target", "off target"}, tr))
	s.WriteString(`
Each run's value is gpio-rtt's median (or p99) over its requests, timed in
the guest around each ioctl; the cell is the median over the runs.
(³) The bench sets input line 3 through gvmm's --control socket and the
guest's gpio-rtt copies each edge to output line 2; the round trip is from
gvmm's timestamp of the input change to its timestamp of the output change
(both in the watch stream), so the socket's JSON is not in it.
Memory: as in the boot runs, at the pause after the runs; for QEMU, its
RSS and the back end's less their mappings of the shared guest RAM
(memory-backend-memfd).
`)

	s.WriteString(b.commandLines())
	return s.String()
}

// densityReport is TestBenchDensity's part of the report.
func (b *bench) densityReport(d densityResult, took time.Duration) string {
	var s strings.Builder
	s.WriteString("### Density (gvmm: 64 MiB guests, 1 vCPU, one simulated bank of 4 lines each, each guest echoing its line 1 to line 0 in a GPIO loop)\n\n")
	perVM := math.NaN()
	if d.sustained > 0 && d.availBefore > d.avail {
		perVM = mib(d.availBefore-d.avail) / float64(d.sustained)
	}
	beyond, ram := mibCell(d.beyond), mibCell(d.guestRAM)
	worst := math.NaN()
	if beyond.ok() && !math.IsNaN(perVM) {
		kernel := max(perVM-beyond.med()-ram.med(), 0) // the host kernel's share: KVM, page tables
		worst = 64 + beyond.med() + kernel
	}
	beyondOff := "not measured"
	if beyond.ok() {
		beyondOff = offTarget(beyond.med(), 10)
	}
	const host = 24 << 10 // MiB
	tr := [][]string{
		{"VMs running at once, every one answering", fmt.Sprintf("%d (stopped adding: %s)", d.sustained, d.stopped), "–", "–"},
		{"host memory per VM: drop of MemAvailable ÷ VMs", fmt.Sprintf("%.1f MiB (%.0f MiB for %d)", perVM, mib(d.availBefore-min(d.avail, d.availBefore)), d.sustained), "–", "–"},
		{"of which gvmm's RSS beyond guest RAM", beyond.String(), "≤ 10 MiB", beyondOff},
		{"of which guest RAM resident", ram.String(), "–", "–"},
		{"host CPU busy with them all idle between rounds, less before the first (5 s of /proc/stat each)", fmt.Sprintf("%.0f%% − %.0f%% of %d CPU(s): %s%.1f%% of a CPU a VM",
			100*d.busy, 100*d.busyBefore, d.cpus, atLeast(d.busy), 100*(d.busy-d.busyBefore)*float64(d.cpus)/float64(max(d.sustained, 1))), "–", "–"},
		{"memory a VM if its guest touched all its RAM: 64 MiB + RSS beyond guest RAM + the host kernel's share (what MemAvailable lost beyond the two)", fmt.Sprintf("%.1f MiB", worst), "–", "–"},
		{fmt.Sprintf("extrapolated to a 24 GiB host: %d MiB ÷ that", host), fmt.Sprintf("%.0f VMs (%.0f at the measured %.1f MiB a VM)", math.Floor(host/worst), math.Floor(host/perVM), perVM),
			"≥ 100", offTargetAtLeast(math.Floor(host/worst), 100)},
		{"the last VM's boot to its GPIO loop; the last round of echoes from every VM", fmt.Sprintf("%v; %v", d.lastBoot.Round(time.Millisecond), d.lastEcho.Round(time.Millisecond)), "–", "–"},
	}
	s.WriteString(table([]string{"figure", "value", "target", "off target"}, tr))
	fmt.Fprintf(&s, `
VMs are added one at a time; after each, every VM must copy a new level
of its input to its output within a minute (the host sets the input
through --control and polls the output). The extrapolation is by memory
alone, every guest page counted as touched, nothing left to the host
itself; a host's CPUs are not extrapolated from the nested test host's
emulated one, which is what runs out here: the guest kernel ticks at 250
Hz even when idle (CONFIG_HZ_PERIODIC), each tick a nested exit that TCG
emulates. The density run took %v.
`, took.Round(time.Second))
	s.WriteString(b.commandLines())
	return s.String()
}

// atLeast is "at least " for a CPU share that is all there was (the VMs
// would have taken more).
func atLeast(busy float64) string {
	if busy >= 0.98 {
		return "at least "
	}
	return ""
}

// commandLines lists the command lines noted so far, and the guest
// scripts they name.
func (b *bench) commandLines() string {
	var s strings.Builder
	s.WriteString("\n### Command lines\n\n")
	b.mu.Lock()
	for _, c := range b.cmdlines {
		s.WriteString(c + "\n")
	}
	names := make([]string, 0, len(b.scripts))
	for n := range b.scripts {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&s, "<%s> is the base64 of:\n\n", n)
		for _, l := range strings.Split(strings.TrimRight(b.scripts[n], "\n"), "\n") {
			s.WriteString("    " + l + "\n")
		}
		s.WriteString("\n")
	}
	b.mu.Unlock()
	return s.String()
}

// TestBenchParseRTT reads gpio-rtt's lines as the bench does (no KVM
// needed).
func TestBenchParseRTT(t *testing.T) {
	tests := []struct {
		line string
		want rtt
		err  string
	}{
		{"gpio-rtt: set 2000 on /dev/gpiochip0 line 0: median 1.2ms, p99 3.1ms, p10 1.1ms, p90 1.5ms, min 1ms, max 4ms",
			rtt{1200 * time.Microsecond, 3100 * time.Microsecond}, ""},
		{"gpio-rtt: mmio 100 at 0xd00fe000: median 23.456µs, p99 101.2µs, p10 20µs, p90 30µs, min 19µs, max 2.1ms",
			rtt{23456 * time.Nanosecond, 101200 * time.Nanosecond}, ""},
		{"\x1b[0mgpio-rtt: get 10 on /dev/gpiochip0 line 1: median 850ns, p99 1.5s, min 1ns, max 2s", rtt{850, 1500 * time.Millisecond}, ""},
		{"gpio-rtt: set 10: median 1ms", rtt{}, "no p99"},
		{"gpio-rtt: echo ready", rtt{}, "no median"},
		{"gpio-rtt: set 10: median 1 ms, p99 2ms", rtt{}, "unknown unit"},
	}
	for _, tt := range tests {
		got, err := parseRTT(tt.line)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseRTT(%q): %v, want error %q", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseRTT(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
}

// TestBenchCells checks the report's arithmetic: medians, formats,
// ratios and distances to targets.
func TestBenchCells(t *testing.T) {
	ms := func(v ...float64) cell {
		c := cell{unit: seconds}
		for _, x := range v {
			c.vals = append(c.vals, x/1000)
		}
		return c
	}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"one value", ms(12.345).String(), "12.3 ms"},
		{"odd count", ms(3, 1, 2).String(), "2 ms (1 ms–3 ms)"},
		{"even count: mean of the middle two", ms(4, 1, 2, 3).String(), "2.5 ms (1 ms–4 ms)"},
		{"microseconds", ms(0.0421).String(), "42.1 µs"},
		{"seconds", ms(2345).String(), "2.35 s"},
		{"MiB", mibCell([]float64{9.25}).String(), "9.2 MiB"},
		{"n/a", naCell("n/a (why)").String(), "n/a (why)"},
		{"nothing", cell{}.String(), "not measured"},
		{"ratio", ratio(ms(1), ms(4)), "0.25×"},
		{"ratio with n/a", ratio(ms(1), naCell("x")), "–"},
		{"meets", offTarget(0.4, 0.5), "meets (20% under)"},
		{"misses", offTarget(0.75, 0.5), "misses (50% over)"},
		{"at least, meets", offTargetAtLeast(150, 100), "meets (50% over)"},
		{"at least, misses", offTargetAtLeast(80, 100), "misses (20% under)"},
		{"ratio off target", ratioOff(ms(3), ms(2), 1.5), "meets (0% under)"},
		{"ratio off target, n/a", ratioOff(ms(3), naCell("x"), 1.5), "not measured"},
		{"percentile", percentile([]time.Duration{5, 1, 4, 2, 3}, 99).String(), "4ns"},
		{"median", median([]time.Duration{5, 1, 4, 2, 3}).String(), "3ns"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
