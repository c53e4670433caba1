package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCacheResizesLinearlyAndDrops(t *testing.T) {
	cfg := testConfig(t, "-live-mib", "1", "-live-object-bytes", "4096")
	svc := newService(cfg)
	c := newCacheControl(svc)
	ctx, cancel := contextWithCancel()
	defer cancel()
	go c.run(ctx)
	post := func(q string) map[string]any {
		t.Helper()
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cache?"+q, nil))
		if rec.Code != 200 {
			t.Fatalf("POST /cache?%s: %d %s", q, rec.Code, rec.Body)
		}
		var doc map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	if got := svc.entries(); got != 256 {
		t.Fatalf("1 MiB of 4 KiB entries: %d entries, want 256", got)
	}
	if doc := post("live_mib=4&over=1s"); doc["targetEntries"] != float64(1024) {
		t.Fatalf("target: %v", doc)
	}
	time.Sleep(450 * time.Millisecond)
	mid := svc.entries()
	if mid <= 256 || mid >= 1024 {
		t.Fatalf("half-way through a 1 s resize: %d entries, want between 256 and 1024", mid)
	}
	deadline := time.Now().Add(3 * time.Second)
	for svc.entries() != 1024 {
		if time.Now().After(deadline) {
			t.Fatalf("resize did not reach 1024 entries: %d", svc.entries())
		}
		time.Sleep(20 * time.Millisecond)
	}
	post("live_mib=0.5") // dropped at once
	deadline = time.Now().Add(time.Second)
	for svc.entries() != 128 {
		if time.Now().After(deadline) {
			t.Fatalf("drop did not reach 128 entries: %d", svc.entries())
		}
		time.Sleep(10 * time.Millisecond)
	}
	svc.churn() // churn keeps working on the resized cache
}

func TestCacheRefusesBadParameters(t *testing.T) {
	c := newCacheControl(newService(testConfig(t, "-live-mib", "0")))
	for q, names := range map[string]string{
		"": "live_mib", "live_mib=x": "live_mib", "live_mib=-1": "live_mib",
		"live_mib=1&over=soon": "over", "live_mib=1&size=2": "size",
	} {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cache?"+q, nil))
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), names) {
			t.Errorf("POST /cache?%s: %d %q, want 400 naming the parameter", q, rec.Code, rec.Body)
		}
	}
}

func TestSessionsHoldAQPSProportionalLiveSet(t *testing.T) {
	cfg := testConfig(t, "-live-mib", "0", "-session-bytes", "640", "-session-ttl", "300ms", "-garbage-bytes", "64")
	svc := newService(cfg)
	for i := 0; i < 50; i++ {
		svc.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/work", nil))
	}
	if n := svc.sessions.count(); n != 50 {
		t.Fatalf("%d sessions after 50 requests", n)
	}
	if got := len(svc.sessions.buckets[svc.sessions.cur][0].items); got != 10 {
		t.Fatalf("a 640-byte session has %d records, want 10", got)
	}
	for i := 0; i < len(svc.sessions.buckets); i++ { // one TTL of ticks later every session expired
		svc.sessions.rotate()
	}
	if n := svc.sessions.count(); n != 0 {
		t.Fatalf("%d sessions outlived their TTL", n)
	}
	if _, err := parseConfig([]string{"-session-bytes", "10", "-session-ttl", "1ms"}, func(string) string { return "" }, nil); err == nil {
		t.Fatal("a TTL under one tick was accepted")
	}
}

func TestDriverReportsClientLatency(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		time.Sleep(2 * time.Millisecond)
	}))
	defer srv.Close()
	d := newDriver(srv.URL, 4, schedule{Kind: "steady", QPS: 200})
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { d.run(ctx); close(done) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done
	snap := d.latency.snapshot()
	var n int64
	for k, c := range snap.Counts {
		i, _ := strconv.Atoi(k)
		if up := snap.MinSeconds * pow(snap.Growth, i); up < 0.002 {
			t.Errorf("bucket %d (up to %.6f s) holds %d requests that took at least 2 ms", i, up, c)
		}
		n += c
	}
	if n == 0 || n != d.sent.Load()-d.failed.Load() {
		t.Fatalf("histogram holds %d of %d successful requests", n, d.sent.Load()-d.failed.Load())
	}
	if p99 := d.latency.quantile(0.99); p99 < 2*time.Millisecond {
		t.Fatalf("client p99 %v below the handler's 2 ms", p99)
	}
}

func pow(b float64, n int) float64 {
	out := 1.0
	for i := 0; i < n; i++ {
		out *= b
	}
	return out
}
