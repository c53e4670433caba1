package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

func testConfig(t *testing.T, args ...string) config {
	t.Helper()
	c, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAllocateCutsGarbageIntoTheConfiguredSizes(t *testing.T) {
	svc := newService(testConfig(t, "-live-mib", "0", "-object-sizes", "100,1000"))
	for _, n := range []int{0, 1, 100, 1100, 5000} {
		allocs := testing.AllocsPerRun(5, func() { svc.allocate(n) })
		// n bytes in 100/1000 pairs, plus the holding slice (and the sink's escape) at most.
		want := float64(n / 1100 * 2)
		if allocs < want || allocs > want+4 {
			t.Errorf("allocate(%d): %v allocations, want about %v", n, allocs, want)
		}
	}
}

func TestLiveSetKeepsItsSize(t *testing.T) {
	svc := newService(testConfig(t, "-live-mib", "1", "-live-object-bytes", "1024", "-cache-churn", "3"))
	if len(svc.cache) != 1024 || len(svc.cache[0].items) != 16 {
		t.Fatalf("cache has %d entries of %d items", len(svc.cache), len(svc.cache[0].items))
	}
	before := svc.cache[0]
	for i := 0; i < 2000; i++ {
		svc.churn()
	}
	if len(svc.cache) != 1024 || svc.cache[0] == before {
		t.Fatalf("churn: %d entries, first replaced: %v", len(svc.cache), svc.cache[0] != before)
	}
}

func TestWorkHandlerParameters(t *testing.T) {
	svc := newService(testConfig(t, "-live-mib", "0"))
	for _, tt := range []struct {
		query string
		code  int
	}{{"", 200}, {"?bytes=1000", 200}, {"?delay_ms=20", 200}, {"?bytes=-1", 400}, {"?bytes=x", 400}, {"?delay_ms=9999999", 400}} {
		rec := httptest.NewRecorder()
		start := time.Now()
		svc.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/work"+tt.query, nil))
		if rec.Code != tt.code {
			t.Errorf("%s: %d %s", tt.query, rec.Code, rec.Body)
		}
		if tt.query == "?delay_ms=20" && time.Since(start) < 20*time.Millisecond {
			t.Errorf("delay_ms=20 returned after %v", time.Since(start))
		}
	}
	if svc.requests.Load() != 3 {
		t.Errorf("requests counted: %d, want 3", svc.requests.Load())
	}
}

func TestLeakGrowsAtTheRateUpToTheCap(t *testing.T) {
	svc := newService(testConfig(t, "-live-mib", "0", "-leak-mib-per-sec", "20", "-leak-max-mib", "1"))
	ctx, cancel := contextWithCancel()
	defer cancel()
	go svc.leak(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for svc.leakedTotal.Load() < 1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("leaked only %d bytes in 5 s at 20 MiB/s", svc.leakedTotal.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(250 * time.Millisecond)
	if got := svc.leakedTotal.Load(); got != 1<<20 {
		t.Fatalf("leaked %d bytes past the 1 MiB cap", got)
	}
}

func TestLatencyQuantile(t *testing.T) {
	h := newLatencyHistogram()
	if h.quantile(0.99) != 0 {
		t.Fatal("empty histogram must report 0")
	}
	for i := 1; i <= 1000; i++ {
		h.observe(time.Duration(i) * time.Millisecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(tt.q)
		if got < tt.want || float64(got) > float64(tt.want)*1.051 {
			t.Errorf("q%v: %v, want %v within +5%%", tt.q, got, tt.want)
		}
	}
}

func TestVmHWM(t *testing.T) {
	p := vmHWM()
	if p == nil || *p < 1<<20 {
		t.Fatalf("VmHWM %v", p)
	}
}
