package gpio

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Each rule of the wire model (Sim's doc): who drives, the pull, and how
// they resolve, with conflicts counted.
func TestSimWireRules(t *testing.T) {
	const (
		rel = DriveReleased
		lo  = DriveLow
		hi  = DriveHigh
	)
	type guest struct {
		dir Direction
		out uint8
	}
	in, none := guest{dir: DirectionIn}, guest{}
	out0, out1 := guest{DirectionOut, 0}, guest{DirectionOut, 1}
	tests := []struct {
		name     string
		pull     Pull
		guest    guest
		host     Drive
		model    []Drive // one model pin per entry, all on line 0
		level    uint8
		input    uint8 // what the host's side gives the line
		conflict bool
	}{
		{"floating reads 0", PullNone, in, rel, nil, 0, 0, false},
		{"released line floats too", PullNone, none, rel, nil, 0, 0, false},
		{"pull-up", PullUp, in, rel, nil, 1, 1, false},
		{"pull-down", PullDown, in, rel, nil, 0, 0, false},
		{"host drives 1 against pull-down", PullDown, in, hi, nil, 1, 1, false},
		{"host drives 0 against pull-up", PullUp, in, lo, nil, 0, 0, false},
		{"model drives 0 against pull-up", PullUp, in, rel, []Drive{lo}, 0, 0, false},
		{"released model leaves the pull", PullUp, in, rel, []Drive{rel}, 1, 1, false},
		{"wired-AND: one low of two", PullUp, in, rel, []Drive{rel, lo}, 0, 0, false},
		{"guest output 1 with pull-down", PullDown, out1, rel, nil, 1, 0, false},
		{"guest output 0 with pull-up", PullUp, out0, rel, nil, 0, 1, false},
		// gpiolib's open drain: input for 1, output 0 for 0.
		{"open drain released with pull-up", PullUp, in, rel, []Drive{rel}, 1, 1, false},
		{"open drain low with pull-up", PullUp, out0, rel, []Drive{rel}, 0, 1, false},
		{"open drain low with the model low", PullUp, out0, rel, []Drive{lo}, 0, 0, false},
		{"guest output agrees with the host", PullNone, out1, hi, nil, 1, 1, false},
		{"conflict: guest 1, model 0", PullUp, out1, rel, []Drive{lo}, 1, 0, true},
		{"conflict: guest 0, host 1", PullNone, out0, hi, nil, 0, 1, true},
		{"conflict: host 1, model 0 (low wins)", PullNone, in, hi, []Drive{lo}, 0, 0, true},
		{"conflict: two models", PullUp, none, rel, []Drive{hi, lo}, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSim(t, 1)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(s.SetPull(0, tt.pull))
			for i, d := range tt.model {
				a, err := s.Attach("m"+string(rune('a'+i)), nopModel{}, 0)
				must(err)
				must(a.Drive(0, d))
			}
			must(s.SetDrive(0, tt.host))
			if tt.guest.dir != DirectionNone {
				must(s.SetDirection(0, tt.guest.dir, tt.guest.out))
			}
			st, _ := s.Line(0)
			if v, _ := s.Get(0); v != tt.level || st.Level != tt.level {
				t.Errorf("level: Get %d, LineState %d, want %d", v, st.Level, tt.level)
			}
			if st.Input != tt.input {
				t.Errorf("Input %d, want %d", st.Input, tt.input)
			}
			if st.Conflict != tt.conflict {
				t.Errorf("Conflict %v, want %v (%s)", st.Conflict, tt.conflict, st.Drivers())
			}
			if want := uint64(b2u(tt.conflict)); st.Conflicts != want || s.Conflicts() != want {
				t.Errorf("Conflicts %d (bank %d), want %d", st.Conflicts, s.Conflicts(), want)
			}
			if len(st.Models) != len(tt.model) {
				t.Errorf("Models %v, want %d", st.Models, len(tt.model))
			}
		})
	}
}

// A conflict is counted once each time the line goes into it, and
// watchers see it start and end.
func TestSimConflictCounted(t *testing.T) {
	s := mustSim(t, 1)
	ch, cancel := s.Watch()
	defer cancel()
	a, err := s.Attach("m", nopModel{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []func() error{
		func() error { return s.SetDirection(0, DirectionOut, 1) },
		func() error { return a.Drive(0, DriveLow) }, // into conflict
		func() error { return s.Set(0, 1) },          // no change: still in it
		func() error { return s.Set(0, 0) },          // out of it
		func() error { return s.Set(0, 1) },          // in again
	} {
		if err := op(); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Conflicts(); n != 2 {
		t.Errorf("Conflicts %d, want 2", n)
	}
	var got []string
	for len(got) < 7 {
		select {
		case c := <-ch:
			got = append(got, strings.Split(c.String(), " at ")[0])
		case <-time.After(5 * time.Second):
			t.Fatalf("changes %q: no more", got)
		}
	}
	want := []string{
		"line 0 direction none→out level 1",
		"line 0 output 0→1 level 1",
		"line 0 input (m.0) released→0 level 1",
		"line 0 conflict 0→1 level 1",
		"line 0 output 1→0 level 0",
		"line 0 conflict 1→0 level 0",
		"line 0 output 0→1 level 1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

type nopModel struct{}

func (nopModel) Changed(*Wires, int, uint8, time.Time) {}

// echoModel copies pin 0's level to pin 1, inverted, from Changed.
type echoModel struct{ heard []uint8 }

func (m *echoModel) Changed(w *Wires, pin int, level uint8, _ time.Time) {
	m.heard = append(m.heard, uint8(pin)<<1|level)
	if pin == 0 {
		w.Drive(1, Drive(1-level))
	}
}

// A model answers within the request that caused the change: after the
// guest's call returns, the answer is on the line.
func TestSimModelAnswersInTime(t *testing.T) {
	s := mustSim(t, 2)
	m := &echoModel{}
	a, err := s.Attach("echo", m, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetDirection(1, DirectionIn, 0); err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint8{1, 0, 1} {
		if err := s.SetDirection(0, DirectionOut, v); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(1); got != 1-v {
			t.Fatalf("guest drove %d: pin 1 reads %d, want %d", v, got, 1-v)
		}
	}
	// Pin 0 ended at 1, so the model drives pin 1 at 0.
	if l, _ := a.Level(1); l != 0 {
		t.Errorf("pin 1 level %d", l)
	}
	a.Detach()
	if err := a.Drive(0, DriveLow); !errors.Is(err, ErrDetached) {
		t.Errorf("Drive after Detach: %v", err)
	}
	if st, _ := s.Line(1); st.Models != nil || st.Level != 0 {
		t.Errorf("after Detach: %+v", st)
	}
}

// loopModel answers every change of its pin by inverting it: it never
// settles, and the bank cuts the cascade off.
type loopModel struct{ n int }

func (m *loopModel) Changed(w *Wires, pin int, level uint8, _ time.Time) {
	m.n++
	w.Drive(pin, Drive(1-level))
}

func TestSimModelCascadeBounded(t *testing.T) {
	s := mustSim(t, 1)
	m := &loopModel{}
	a, err := s.Attach("loop", m, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Drive(0, DriveHigh); err != nil {
		t.Fatal(err)
	}
	if m.n != MaxCascade {
		t.Errorf("model heard %d changes, want MaxCascade (%d)", m.n, MaxCascade)
	}
	if s.CutOff() != 1 {
		t.Errorf("CutOff %d, want 1", s.CutOff())
	}
	// The bank still answers.
	if _, err := s.Get(0); err != nil {
		t.Fatal(err)
	}
}

func TestSimAttachErrors(t *testing.T) {
	s := mustSim(t, 4)
	tests := []struct {
		name  string
		lines []int
		want  string
	}{
		{"", []int{0}, "model name"},
		{"host", []int{0}, "model name"},
		{"a.b", []int{0}, "model name"},
		{"m", nil, "at least one line"},
		{"m", []int{4}, "out of range"},
		{"m", []int{1, 1}, "given twice"},
	}
	for _, tt := range tests {
		_, err := s.Attach(tt.name, nopModel{}, tt.lines...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Attach(%q, %v): %v, want %q", tt.name, tt.lines, err, tt.want)
		}
	}
	a, _ := s.Attach("m", nopModel{}, 2)
	if err := a.Drive(1, DriveLow); err == nil {
		t.Error("Drive of a pin the model does not have")
	}
	if err := a.Drive(0, 7); err == nil {
		t.Error("Drive(7)")
	}
	if err := s.SetDrive(0, 3); err == nil {
		t.Error("SetDrive(3)")
	}
	if err := s.SetPull(0, 3); err == nil {
		t.Error("SetPull(3)")
	}
}

type panicModel struct{}

func (panicModel) Changed(*Wires, int, uint8, time.Time) { panic("model bug") }

// A model that panics does not leave the bank locked.
func TestSimModelPanic(t *testing.T) {
	s := mustSim(t, 1)
	if _, err := s.Attach("bad", panicModel{}, 0); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the model's panic did not reach the caller")
			}
		}()
		_ = s.SetInput(0, 1)
	}()
	done := make(chan struct{})
	go func() {
		_, _ = s.Get(0)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the bank stayed locked after a model panicked")
	}
}
