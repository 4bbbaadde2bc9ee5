package main

import "testing"

func TestCountsRoundTrip(t *testing.T) {
	var c counts
	for k := range c {
		c[k] = uint64(10 + k)
	}
	got, err := parseCounts(c.String())
	if err != nil || got != c {
		t.Fatalf("parseCounts(%q) = %v, %v; want %v", c.String(), got, err, c)
	}
	if c.ops() != 10+11+12+13+14+15 {
		t.Errorf("ops() = %d, want the six operation kinds summed", c.ops())
	}
	if _, err := parseCounts("ops=1 set=1"); err == nil {
		t.Error("parseCounts accepted counts without most kinds")
	}
}
