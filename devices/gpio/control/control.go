// Package control is the host-side control surface of simulated GPIO
// banks: a Unix socket speaking JSON lines, served by `gvmm run --control
// PATH` and used by `gvmm gpio get|set|list|watch|stats` (or any client:
// socat, a test, a script).
//
// Each request is one JSON object on one line, of at most MaxRequestLine
// bytes; each answer is one line:
//
//	{"op":"get","bank":0,"line":3}           → {"ok":true,"line":{...LineState...}}
//	{"op":"set","bank":0,"line":2,"value":1} → {"ok":true}    (the host drives the line)
//	{"op":"release","bank":0,"line":2}       → {"ok":true}    (the host stops driving it)
//	{"op":"list"}                            → {"ok":true,"banks":[[...LineState...],...]}
//	{"op":"stats","bank":0}                  → {"ok":true,"stats":{...gpio.Stats...}}
//	{"op":"watch","bank":0}                  → {"ok":true}, then one Event per change
//
// A failed request answers {"ok":false,"error":"..."}. watch streams until
// the client closes the connection; a watcher that falls gpio.WatchLimit
// changes behind gets an Event of kind "lost" saying how many it missed.
// Banks are numbered in --gpio order. At most MaxConns clients are served
// at once.
package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

// Limits on what a client can make the server hold.
const (
	// MaxRequestLine is the longest request line the server reads; a
	// longer one is answered with an error and the connection closed.
	MaxRequestLine = 4096
	// MaxConns is how many clients are served at once; another one is
	// told so and hung up on.
	MaxConns = 32
	// WriteTimeout is how long an answer may take to be read: a client
	// that stops reading an answer is hung up on, so that it holds the
	// answer's memory no longer. (A watch stream has no timeout; its
	// queue is bounded by gpio.WatchLimit instead.)
	WriteTimeout = 10 * time.Second
)

// Request is one client request.
type Request struct {
	Op    string `json:"op"`
	Bank  int    `json:"bank"`
	Line  int    `json:"line"`
	Value uint8  `json:"value"`
}

// ops are the requests the server knows.
var ops = map[string]bool{"get": true, "set": true, "release": true, "list": true, "stats": true, "watch": true}

// ParseRequest decodes one request line: one JSON object with the fields
// of Request (a field it does not have is refused; encoding/json matches
// names without regard to case), a known op and no negative numbers.
// Whether the bank and line exist is for the server to say.
func ParseRequest(line []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("bad request: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, errors.New("bad request: more than one JSON value on the line")
	}
	switch {
	case !ops[req.Op]:
		return Request{}, fmt.Errorf("unknown op %q (want get, set, release, list, stats or watch)", req.Op)
	case req.Bank < 0:
		return Request{}, fmt.Errorf("bank %d: banks are numbered from 0", req.Bank)
	case req.Line < 0:
		return Request{}, fmt.Errorf("line %d: lines are numbered from 0", req.Line)
	}
	return req, nil
}

// Line is the state of one line as the control surface reports it
// (gpio.LineState): Input is what the host's side gives the line (its
// drivers, else its pull), Host what the host itself drives ("0", "1" or
// "released"), Drivers every host-side driver ("host=1 eeprom.1=0").
type Line struct {
	Line      int    `json:"line"`
	Name      string `json:"name,omitempty"`
	Direction string `json:"direction"`
	Output    uint8  `json:"output"`
	Input     uint8  `json:"input"`
	Level     uint8  `json:"level"`
	IRQType   string `json:"irq"`
	Pull      string `json:"pull"`
	Host      string `json:"host"`
	Drivers   string `json:"drivers"`
	Conflict  bool   `json:"conflict,omitempty"`
	Conflicts uint64 `json:"conflicts,omitempty"`
}

// Event is one change streamed by watch.
type Event struct {
	Time time.Time `json:"time"`
	Bank int       `json:"bank"`
	Line int       `json:"line"`
	Kind string    `json:"kind"` // direction, output, input, irq, pull, conflict or lost
	// Driver names who drove, for kind "input": "host", or a model's pin.
	Driver string `json:"driver,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Level  uint8  `json:"level"`
	// Lost is, for kind "lost", how many changes the watcher missed.
	Lost uint64 `json:"lost,omitempty"`
}

// Response answers a request.
type Response struct {
	OK    bool        `json:"ok"`
	Error string      `json:"error,omitempty"`
	Line  *Line       `json:"line,omitempty"`
	Banks [][]Line    `json:"banks,omitempty"`
	Stats *gpio.Stats `json:"stats,omitempty"`
}

func lineOf(s gpio.LineState) Line {
	return Line{Line: s.Line, Name: s.Name, Direction: s.Direction.String(), Output: s.Output,
		Input: s.Input, Level: s.Level, IRQType: s.IRQType.String(), Pull: s.Pull.String(),
		Host: s.Host.String(), Drivers: s.Drivers(), Conflict: s.Conflict, Conflicts: s.Conflicts}
}

func eventOf(bank int, c gpio.Change) Event {
	from, to := c.Values()
	if c.Kind == gpio.ChangeLost {
		return Event{Time: c.Time, Bank: bank, Kind: c.Kind.String(), Lost: c.Lost}
	}
	return Event{Time: c.Time, Bank: bank, Line: c.Line, Kind: c.Kind.String(), Driver: c.Driver, From: from, To: to, Level: c.Level}
}

// Server serves the banks on a listener.
type Server struct {
	// Banks are the simulated banks in --gpio order; nil stands for a
	// controller of host lines, which the server refuses to touch.
	Banks []*gpio.Sim
	// Devices, if set, are the virtio-gpio devices in the same order,
	// for stats (host banks included).
	Devices []*gpio.Device
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   int
	// listMu lets one list answer be built at a time: for 8 banks of
	// 65535 lines it takes some 70 MiB until it is written.
	listMu sync.Mutex
}

// Serve accepts connections until l is closed (it then returns nil) or
// accepting fails for good. Running out of file descriptors is waited out.
func (s *Server) Serve(l net.Listener) error {
	defer s.wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			switch {
			case errors.Is(err, net.ErrClosed):
				return nil
			case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ECONNABORTED):
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return err
		}
		s.mu.Lock()
		full := s.conns >= MaxConns
		if !full {
			s.conns++
		}
		s.mu.Unlock()
		if full {
			_ = json.NewEncoder(c).Encode(Response{Error: fmt.Sprintf("too many clients: at most %d at once", MaxConns)})
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.conn(c)
			s.mu.Lock()
			s.conns--
			s.mu.Unlock()
		}()
	}
}

func (s *Server) conn(c net.Conn) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 512), MaxRequestLine)
	enc := json.NewEncoder(c)
	for sc.Scan() {
		req, err := ParseRequest(sc.Bytes())
		if err != nil {
			if enc.Encode(Response{Error: err.Error()}) != nil {
				return
			}
			continue
		}
		if req.Op == "watch" {
			s.watch(c, sc, enc, req)
			return
		}
		if s.answer(c, enc, req) != nil {
			return
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		_ = enc.Encode(Response{Error: fmt.Sprintf("request longer than %d bytes; closing", MaxRequestLine)})
	}
}

// answer writes the answer to req, within WriteTimeout.
func (s *Server) answer(c net.Conn, enc *json.Encoder, req Request) error {
	if req.Op == "list" {
		s.listMu.Lock()
		defer s.listMu.Unlock()
	}
	resp := s.do(req)
	_ = c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	defer c.SetWriteDeadline(time.Time{})
	return enc.Encode(resp)
}

func (s *Server) bank(i int) (*gpio.Sim, error) {
	if i < 0 || i >= len(s.Banks) {
		return nil, fmt.Errorf("no bank %d: there are %d (numbered from 0 in --gpio order)", i, len(s.Banks))
	}
	if s.Banks[i] == nil {
		return nil, fmt.Errorf("bank %d is host GPIO lines, not simulated: use the host's own tools (gpioget, gpiomon) on them", i)
	}
	return s.Banks[i], nil
}

func (s *Server) do(req Request) Response {
	if req.Op == "list" {
		var banks [][]Line
		for _, b := range s.Banks {
			var ls []Line
			if b == nil { // host lines: not served here
				banks = append(banks, ls)
				continue
			}
			for _, st := range b.Snapshot() {
				ls = append(ls, lineOf(st))
			}
			banks = append(banks, ls)
		}
		return Response{OK: true, Banks: banks}
	}
	if req.Op == "stats" {
		if req.Bank >= len(s.Devices) || req.Bank >= len(s.Banks) {
			return Response{Error: fmt.Sprintf("no bank %d: there are %d (numbered from 0 in --gpio order)", req.Bank, len(s.Banks))}
		}
		st := s.Devices[req.Bank].Stats()
		return Response{OK: true, Stats: &st}
	}
	b, err := s.bank(req.Bank)
	if err != nil {
		return Response{Error: err.Error()}
	}
	switch req.Op {
	case "get":
		st, err := b.Line(req.Line)
		if err != nil {
			return Response{Error: err.Error()}
		}
		l := lineOf(st)
		return Response{OK: true, Line: &l}
	case "set":
		if err := b.SetInput(req.Line, req.Value); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true}
	case "release":
		if err := b.SetDrive(req.Line, gpio.DriveReleased); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true}
	}
	return Response{Error: fmt.Sprintf("unknown op %q", req.Op)}
}

// watch streams the bank's changes until the client hangs up.
func (s *Server) watch(c net.Conn, sc *bufio.Scanner, enc *json.Encoder, req Request) {
	b, err := s.bank(req.Bank)
	if err != nil {
		_ = enc.Encode(Response{Error: err.Error()})
		return
	}
	changes, cancel := b.Watch()
	defer cancel()
	if enc.Encode(Response{OK: true}) != nil {
		return
	}
	gone := make(chan struct{})
	go func() {
		for sc.Scan() { // the client says nothing more; EOF means it left
		}
		close(gone)
	}()
	for {
		select {
		case ch, ok := <-changes:
			if !ok || enc.Encode(eventOf(req.Bank, ch)) != nil {
				return
			}
		case <-gone:
			return
		}
	}
}
