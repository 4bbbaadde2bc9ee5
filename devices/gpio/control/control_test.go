package control

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

func serve(t *testing.T, banks ...*gpio.Sim) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Banks: banks}
	done := make(chan struct{})
	go func() { _ = s.Serve(l); close(done) }()
	t.Cleanup(func() { l.Close(); <-done })
	return path
}

func TestRequests(t *testing.T) {
	sim, err := gpio.NewSim(4, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	// The guest makes line 1 an output driven high.
	if err := sim.SetDirection(1, gpio.DirectionOut, 1); err != nil {
		t.Fatal(err)
	}
	cl, err := Dial(serve(t, sim, nil)) // bank 1: host lines
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tests := []struct {
		name    string
		req     Request
		wantErr string
		check   func(Response) bool
	}{
		{"get output", Request{Op: "get", Line: 1}, "", func(r Response) bool {
			return r.Line != nil && r.Line.Direction == gpio.DirectionOut.String() && r.Line.Level == 1
		}},
		{"set input", Request{Op: "set", Line: 2, Value: 1}, "", nil},
		{"input seen", Request{Op: "get", Line: 2}, "", func(r Response) bool { return r.Line.Input == 1 }},
		{"list", Request{Op: "list"}, "", func(r Response) bool {
			return len(r.Banks) == 2 && len(r.Banks[0]) == 4 && r.Banks[0][0].Name == "a" && len(r.Banks[1]) == 0
		}},
		{"no such bank", Request{Op: "get", Bank: 3}, "no bank 3", nil},
		{"host bank", Request{Op: "set", Bank: 1, Line: 0, Value: 1}, "bank 1 is host GPIO lines", nil},
		{"no such line", Request{Op: "get", Line: 9}, "9", nil},
		{"bad value", Request{Op: "set", Line: 2, Value: 7}, "7", nil},
		{"unknown op", Request{Op: "poke"}, `unknown op "poke"`, nil},
	}
	for _, tt := range tests {
		r, err := cl.Do(tt.req)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || (tt.check != nil && !tt.check(r)) {
			t.Errorf("%s: %+v, %v", tt.name, r, err)
		}
	}
}

func TestWatch(t *testing.T) {
	sim, err := gpio.NewSim(2)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	path := serve(t, sim)
	w, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Watch(0); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetInput(0, 1); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetDirection(1, gpio.DirectionOut, 1); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		_ = w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		ev, err := w.Next()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, ev.Kind+" "+ev.From+"→"+ev.To)
	}
	want := []string{"input 0→1", "direction " + gpio.DirectionNone.String() + "→" + gpio.DirectionOut.String(), "output 0→1"}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("events %q, want %q", got, want)
			break
		}
	}
}
