package control

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

func serve(t *testing.T, banks ...*gpio.Sim) string {
	t.Helper()
	return serveServer(t, &Server{Banks: banks})
}

func serveServer(t *testing.T, s *Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
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
		{"host drives it", Request{Op: "get", Line: 2}, "", func(r Response) bool {
			return r.Line.Host == "1" && r.Line.Drivers == "host=1" && r.Line.Pull == "none" && !r.Line.Conflict
		}},
		{"release", Request{Op: "release", Line: 2}, "", nil},
		{"released", Request{Op: "get", Line: 2}, "", func(r Response) bool {
			return r.Line.Host == "released" && r.Line.Input == 0 && r.Line.Level == 0
		}},
		{"release on a host bank", Request{Op: "release", Bank: 1, Line: 0}, "bank 1 is host GPIO lines", nil},
		{"release of no line", Request{Op: "release", Line: 9}, "9", nil},
		{"conflict: the host drives 0 against the guest's 1", Request{Op: "set", Line: 1, Value: 0}, "", nil},
		{"conflict seen", Request{Op: "get", Line: 1}, "", func(r Response) bool {
			return r.Line.Conflict && r.Line.Conflicts == 1 && r.Line.Level == 1
		}},
		{"list", Request{Op: "list"}, "", func(r Response) bool {
			return len(r.Banks) == 2 && len(r.Banks[0]) == 4 && r.Banks[0][0].Name == "a" && len(r.Banks[1]) == 0
		}},
		{"no such bank", Request{Op: "get", Bank: 3}, "no bank 3", nil},
		{"host bank", Request{Op: "set", Bank: 1, Line: 0, Value: 1}, "bank 1 is host GPIO lines", nil},
		{"no such line", Request{Op: "get", Line: 9}, "9", nil},
		{"bad value", Request{Op: "set", Line: 2, Value: 7}, "7", nil},
		{"unknown op", Request{Op: "poke"}, `unknown op "poke"`, nil},
		{"negative line", Request{Op: "get", Line: -1}, "numbered from 0", nil},
		{"stats without devices", Request{Op: "stats"}, "no bank 0", nil},
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
	want := []string{"input released→1", "direction " + gpio.DirectionNone.String() + "→" + gpio.DirectionOut.String(), "output 0→1"}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("events %q, want %q", got, want)
			break
		}
	}
}

// TestListLargeBank: list answers with one line of any length; the client
// reads it whole (a default bufio.Scanner gave up at 64 KiB, about 864
// unnamed lines).
func TestListLargeBank(t *testing.T) {
	sim, err := gpio.NewSim(65535)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	cl, err := Dial(serve(t, sim))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r, err := cl.Do(Request{Op: "list"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Banks) != 1 || len(r.Banks[0]) != 65535 || r.Banks[0][65534].Line != 65534 {
		t.Errorf("list of %d banks", len(r.Banks))
	}
}

// rawConn sends raw lines and reads answers.
func rawConn(t *testing.T, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// TestBadRequests: every malformed request line gets an error answer on
// its own line; the connection goes on, except after a line longer than
// MaxRequestLine, which also closes it.
func TestBadRequests(t *testing.T) {
	sim, err := gpio.NewSim(4)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	path := serve(t, sim)
	c, rd := rawConn(t, path)
	for _, tt := range []struct{ line, want string }{
		{`not json`, "bad request"},
		{`{"op":"get","line":1,"extra":2}`, "unknown field"},
		{`{"op":"get"} {"op":"list"}`, "more than one JSON value"},
		{`{"op":"set","line":1,"value":300}`, "bad request"},
		{`{"op":"get","line":1e99}`, "bad request"},
		{`{"op":"get","bank":-1}`, "numbered from 0"},
		{`{"op":"get","line":2}`, ""},
	} {
		if _, err := c.Write([]byte(tt.line + "\n")); err != nil {
			t.Fatal(err)
		}
		answer, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", tt.line, err)
		}
		if tt.want == "" && !strings.Contains(answer, `"ok":true`) || tt.want != "" && !strings.Contains(answer, tt.want) {
			t.Errorf("%s: answer %s, want %q", tt.line, answer, tt.want)
		}
	}
	long := `{"op":"get","line":1,"x":"` + strings.Repeat("a", MaxRequestLine) + `"}` + "\n"
	if _, err := c.Write([]byte(long)); err != nil {
		t.Fatal(err)
	}
	answer, _ := rd.ReadString('\n')
	if !strings.Contains(answer, "longer than") {
		t.Errorf("over-long request: answer %q", answer)
	}
	if _, err := rd.ReadString('\n'); err == nil {
		t.Error("connection still open after an over-long request")
	}
}

// TestTooManyClients: past MaxConns a client is told so and hung up on;
// when one leaves, a new one is served.
func TestTooManyClients(t *testing.T) {
	sim, err := gpio.NewSim(1)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	path := serve(t, sim)
	var clients []*Client
	for range MaxConns {
		cl, err := Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := cl.Do(Request{Op: "list"}); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
	}
	_, rd := rawConn(t, path)
	if answer, _ := rd.ReadString('\n'); !strings.Contains(answer, "too many clients") {
		t.Errorf("client %d: %q", MaxConns+1, answer)
	}
	clients[0].Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		cl, err := Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Do(Request{Op: "list"})
		cl.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room after a client left: %v", err)
		}
	}
}

// TestStats: stats reports a bank's device counters, host banks included.
func TestStats(t *testing.T) {
	sim, err := gpio.NewSim(2)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dev, err := gpio.NewDevice(sim)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Dial(serveServer(t, &Server{Banks: []*gpio.Sim{sim}, Devices: []*gpio.Device{dev}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r, err := cl.Do(Request{Op: "stats"})
	if err != nil || r.Stats == nil || *r.Stats != (gpio.Stats{}) {
		t.Errorf("stats of a new device: %+v, %v", r.Stats, err)
	}
	if _, err := cl.Do(Request{Op: "stats", Bank: 1}); err == nil || !strings.Contains(err.Error(), "no bank 1") {
		t.Errorf("stats of bank 1: %v", err)
	}
}

// FuzzParseRequest: any line gives a request or an error, never a panic;
// an accepted request is one the server can act on and survives a round
// trip through JSON.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"get","bank":0,"line":3}`, `{"op":"set","bank":0,"line":2,"value":1}`,
		`{"op":"list"}`, `{"op":"watch","bank":1}`, `{"op":"stats"}`, `{"op":"get","line":-1}`,
		`{"op":"x"}`, `[]`, `{"op":"get"}{}`, `{"op":"set","value":256}`, "{\"op\":\"get\",\"line\":1e3}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := ParseRequest(line)
		if err != nil {
			if req != (Request{}) {
				t.Fatalf("error %v with request %+v", err, req)
			}
			return
		}
		if !ops[req.Op] || req.Bank < 0 || req.Line < 0 {
			t.Fatalf("accepted %+v", req)
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRequest(b)
		if err != nil || again != req {
			t.Fatalf("round trip of %+v: %+v, %v", req, again, err)
		}
	})
}
