package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
)

// Client talks to a Server.
type Client struct {
	c  net.Conn
	sc *bufio.Scanner
}

// Dial connects to the control socket at path.
func Dial(path string) (*Client, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (is gvmm running with --control %s?)", path, err, path)
	}
	return &Client{c: c, sc: bufio.NewScanner(c)}, nil
}

// Close hangs up.
func (cl *Client) Close() error { return cl.c.Close() }

// Do sends one request and reads its response.
func (cl *Client) Do(req Request) (Response, error) {
	var resp Response
	if err := json.NewEncoder(cl.c).Encode(req); err != nil {
		return resp, err
	}
	if !cl.sc.Scan() {
		if err := cl.sc.Err(); err != nil {
			return resp, err
		}
		return resp, errors.New("control socket closed")
	}
	if err := json.Unmarshal(cl.sc.Bytes(), &resp); err != nil {
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

// Next returns the next streamed change.
func (cl *Client) Next() (Event, error) {
	var ev Event
	if !cl.sc.Scan() {
		if err := cl.sc.Err(); err != nil {
			return ev, err
		}
		return ev, errors.New("control socket closed")
	}
	return ev, json.Unmarshal(cl.sc.Bytes(), &ev)
}
