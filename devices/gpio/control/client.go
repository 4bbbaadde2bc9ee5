package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// Client talks to a Server.
type Client struct {
	c   net.Conn
	dec *json.Decoder
}

// Dial connects to the control socket at path.
func Dial(path string) (*Client, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (is gvmm running with --control %s?)", path, err, path)
	}
	// A decoder, not a line scanner: an answer (list of a large bank) has
	// no length limit on this side.
	return &Client{c: c, dec: json.NewDecoder(c)}, nil
}

// Close hangs up.
func (cl *Client) Close() error { return cl.c.Close() }

// read decodes the next answer or streamed event into v.
func (cl *Client) read(v any) error {
	err := cl.dec.Decode(v)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("control socket closed")
	}
	return err
}

// Do sends one request and reads its response.
func (cl *Client) Do(req Request) (Response, error) {
	var resp Response
	if err := json.NewEncoder(cl.c).Encode(req); err != nil {
		return resp, err
	}
	if err := cl.read(&resp); err != nil {
		return resp, err
	}
	if !resp.OK {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// Watch starts streaming bank's changes; call Next for each.
func (cl *Client) Watch(bank int) error {
	_, err := cl.Do(Request{Op: "watch", Bank: bank})
	return err
}

// Next returns the next streamed change. An Event of Kind "lost" says how
// many changes were not delivered because this client fell behind.
func (cl *Client) Next() (Event, error) {
	var ev Event
	err := cl.read(&ev)
	return ev, err
}
