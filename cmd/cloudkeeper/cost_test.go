package main

import "testing"

func TestUSD(t *testing.T) {
	for v, want := range map[float64]string{0: "$0", 0.02: "$0.02", 1234.567: "$1234.57", 0.0000004: "$0.0000004",
		0.00001547: "$0.000015", 0.0000155: "$0.000016", 0.009999: "$0.01", 0.0042: "$0.0042"} {
		if got := usd(v); got != want {
			t.Errorf("usd(%v) = %q, want %q", v, got, want)
		}
	}
}
