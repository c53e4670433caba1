package agent

import (
	"math"
	"reflect"
	"runtime/metrics"
	"testing"
)

func TestParseGOGCLikeTheRuntime(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want int
	}{
		{"", 100}, {"100", 100}, {"0", 0}, {"250", 250}, {"+50", 50}, {"off", -1}, {"-1", -1},
		{"-20", -1}, {"OFF", 100}, {"abc", 100}, {"1e3", 100}, {" 50", 100}, {"2147483648", 100},
		{"2147483647", math.MaxInt32},
	} {
		if got := parseGOGC(tt.env); got != tt.want {
			t.Errorf("GOGC=%q: got %d, want %d", tt.env, got, tt.want)
		}
	}
}

func TestParseGOMEMLIMITLikeTheRuntime(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want int64
		ok   bool
	}{
		{"1073741824", 1 << 30, true}, {"1024B", 1024, true}, {"512KiB", 512 << 10, true},
		{"256MiB", 256 << 20, true}, {"2GiB", 2 << 30, true}, {"1TiB", 1 << 40, true},
		{"0", 0, true}, {"9223372036854775807", math.MaxInt64, true},
		// The runtime refuses these at startup (fatal error), so they can never be "startup".
		{"100MB", 0, false}, {"1.5GiB", 0, false}, {"1gib", 0, false}, {"MiB", 0, false},
		{"-1", 0, false}, {"B", 0, false}, {"8388608TiB", 0, false}, {"1 MiB", 0, false}, {"", 0, false},
	} {
		got, ok := parseByteCount(tt.env)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseByteCount(%q) = %d, %v; want %d, %v", tt.env, got, ok, tt.want, tt.ok)
		}
	}
	for _, env := range []string{"", "off"} {
		if got := parseGOMEMLIMIT(env); got != math.MaxInt64 {
			t.Errorf("GOMEMLIMIT=%q: %d, want no limit", env, got)
		}
	}
}

func TestStartupSettingsComeFromTheEnvironment(t *testing.T) {
	env := map[string]string{"GOGC": "off", "GOMEMLIMIT": "3GiB"}
	got := startupSettings(func(k string) string { return env[k] })
	if got != (settings{-1, 3 << 30}) {
		t.Fatalf("got %+v", got)
	}
}

func TestPauseSummary(t *testing.T) {
	inf := math.Inf(1)
	h := &metrics.Float64Histogram{
		Buckets: []float64{math.Inf(-1), 0, 0.001, 0.002, 0.01, 0.05, inf},
		Counts:  []uint64{0, 50, 40, 9, 1, 0},
	}
	ps := summarize(h) // ranks: p50 is the 50th pause (bucket 0..1ms), p99 the 99th (2..10ms)
	if ps.Count != 100 || *ps.P50Seconds != 0.001 || *ps.P99Seconds != 0.01 || *ps.MaxSeconds != 0.05 {
		t.Fatalf("got count %d p50 %g p99 %g max %g", ps.Count, *ps.P50Seconds, *ps.P99Seconds, *ps.MaxSeconds)
	}
	want := [][2]float64{{0.001, 50}, {0.002, 40}, {0.01, 9}, {0.05, 1}}
	if !reflect.DeepEqual(ps.Buckets, want) {
		t.Fatalf("buckets: got %v, want %v", ps.Buckets, want)
	}
	h.Counts = []uint64{0, 0, 0, 0, 0, 3} // only overflow: report its finite lower bound
	ps = summarize(h)
	if *ps.MaxSeconds != 0.05 || *ps.P50Seconds != 0.05 || !reflect.DeepEqual(ps.Buckets, [][2]float64{{0.05, 3}}) {
		t.Fatalf("overflow bucket: %+v", ps)
	}
	h.Counts = []uint64{0, 0, 0, 0, 0, 0}
	if ps = summarize(h); ps.Count != 0 || ps.P50Seconds != nil || ps.MaxSeconds != nil || ps.Buckets != nil {
		t.Fatalf("no pauses: %+v", ps)
	}
}

func TestNonEmptyBucketsKeepTheLongest(t *testing.T) {
	h := &metrics.Float64Histogram{
		Buckets: []float64{0, 1, 2, 3, 4, 5},
		Counts:  []uint64{1, 0, 2, 3, 4},
	}
	tests := []struct {
		max  int
		want [][2]float64
	}{
		{10, [][2]float64{{1, 1}, {3, 2}, {4, 3}, {5, 4}}},
		{2, [][2]float64{{4, 3}, {5, 4}}},
		{1, [][2]float64{{5, 4}}},
	}
	for _, tt := range tests {
		if got := nonEmpty(h, tt.max); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("nonEmpty(max %d) = %v, want %v", tt.max, got, tt.want)
		}
	}
}
