package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// connStates counts the server-side connection states a server went through.
type connStates struct {
	mu     sync.Mutex
	counts map[http.ConnState]int
}

func (c *connStates) hook(_ net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[http.ConnState]int{}
	}
	c.counts[s]++
}

func (c *connStates) get(s http.ConnState) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[s]
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A slow request and a connection that never sends one outlive the timeout: shutdown closes them
// and reports success, instead of failing with the deadline as a bare Shutdown does.
func TestShutdownClosesWhatOutlivesTheTimeout(t *testing.T) {
	cfg := testConfig(t, "-live-mib", "0", "-load", "off")
	svc := newService(cfg)
	drv := newDriver("http://127.0.0.1:1/work", 1, cfg.Load)
	states := &connStates{}
	srv := &http.Server{Handler: routes(cfg, svc, drv, newCacheControl(svc), slog.New(slog.NewTextHandler(io.Discard, nil))), ConnState: states.hook}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	silent, err := net.Dial("tcp", ln.Addr().String()) // dialed, never sends a request
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	slow := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/work?delay_ms=60000")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		slow <- err
	}()
	waitFor(t, "both connections open, one request in flight", 5*time.Second, func() bool {
		return states.get(http.StateNew) == 2 && states.get(http.StateActive) == 1
	})

	start := time.Now()
	if err := shutdown(srv, 300*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %v with a 300ms timeout", took)
	}
	select {
	case err := <-slow:
		if err == nil {
			t.Error("the slow request completed; its connection should have been closed")
		}
	case <-time.After(2 * time.Second):
		t.Error("the slow request's connection is still open after shutdown")
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve returned %v", err)
	}
}

// Stopped while its requests hang, the driver aborts them after its drain time instead of
// waiting for the client's 30 s timeout, and counts them as failed.
func TestDriverDrainIsBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	d := newDriver(srv.URL, 4, schedule{Kind: "steady", QPS: 200})
	d.drain = 200 * time.Millisecond
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { d.run(ctx); close(done) }()
	waitFor(t, "4 requests in flight", 5*time.Second, func() bool { return len(d.slots) == 4 })
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the driver still waits for its requests 3 s after a 200ms drain")
	}
	if d.failed.Load() != d.sent.Load() || d.sent.Load() != 4 {
		t.Errorf("sent %d, failed %d: want the 4 aborted requests counted as failed", d.sent.Load(), d.failed.Load())
	}
}

// After the driver stops, none of its keep-alive connections stay open: http.Server.Shutdown
// would wait up to 5 s for one it dialed but never used.
func TestDriverClosesItsConnectionsWhenStopped(t *testing.T) {
	states := &connStates{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = states.hook
	srv.Start()
	defer srv.Close()
	d := newDriver(srv.URL, 8, schedule{Kind: "steady", QPS: 2000})
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { d.run(ctx); close(done) }()
	waitFor(t, "200 requests sent", 5*time.Second, func() bool { return d.sent.Load() >= 200 })
	cancel()
	<-done
	if states.get(http.StateNew) == 0 {
		t.Fatal("the server saw no connection")
	}
	waitFor(t, "every driver connection closed", time.Second, func() bool {
		return states.get(http.StateClosed) == states.get(http.StateNew)
	})
	if d.failed.Load() != 0 {
		t.Errorf("%d requests failed against a fast server", d.failed.Load())
	}
}
