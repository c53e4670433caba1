package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock drives lease expiry without sleeping.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clock   *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and runs, outside the clock's lock, every timer that fell due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// preserveRuntime restores the process-wide GC knobs after a test that changes them.
func preserveRuntime(t testing.TB) {
	t.Helper()
	gogc, limit := currentGOGC(), debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(gogc)
		debug.SetMemoryLimit(limit)
	})
}

// startAt pins the runtime and the env-derived startup values to known ones for one test.
func startAt(t testing.TB, gogc string, limit string) {
	t.Helper()
	preserveRuntime(t)
	t.Setenv("GOGC", gogc)
	t.Setenv("GOMEMLIMIT", limit)
	s := startupSettings(func(k string) string {
		return map[string]string{"GOGC": gogc, "GOMEMLIMIT": limit}[k]
	})
	debug.SetGCPercent(s.GOGC)
	debug.SetMemoryLimit(s.MemoryLimitBytes)
}

func newTestAgent(t testing.TB, opts ...Option) (*Agent, *fakeClock) {
	t.Helper()
	a := New(opts...)
	c := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	a.now, a.afterFunc = c.Now, c.AfterFunc
	return a, c
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t testing.TB, h http.Handler, method, target, body, token string) response {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return serve(t, h, req)
}

func newRequest(method, body, token string) *http.Request {
	req := httptest.NewRequest(method, "/debug/gctuner", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

func serve(t testing.TB, h http.Handler, req *http.Request) response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := response{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if req.Method != http.MethodHead {
		dec := json.NewDecoder(strings.NewReader(r.raw))
		dec.UseNumber() // memory limits are int64; float64 would round MaxInt64
		if err := dec.Decode(&r.body); err != nil {
			t.Fatalf("%s %s: response is not a JSON object: %v: %q", req.Method, req.URL, err, r.raw)
		}
	}
	return r
}

func lookup(t testing.TB, body map[string]any, path string) any {
	t.Helper()
	var cur any = body
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: %v is not an object", path, cur)
		}
		cur = m[k]
	}
	return cur
}

// number reads a JSON number at a dotted path.
func number(t testing.TB, body map[string]any, path string) json.Number {
	t.Helper()
	v := lookup(t, body, path)
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%s: %v (%T) is not a number", path, v, v)
	}
	return n
}

// integer reads a JSON integer at a dotted path such as "new.gogc".
func integer(t testing.TB, body map[string]any, path string) int64 {
	t.Helper()
	n := number(t, body, path)
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%s: %v is not an integer: %v", path, n, err)
	}
	return i
}

// float reads a JSON number at a dotted path.
func float(t testing.TB, body map[string]any, path string) float64 {
	t.Helper()
	n := number(t, body, path)
	f, err := n.Float64()
	if err != nil {
		t.Fatalf("%s: %v: %v", path, n, err)
	}
	return f
}

const testToken = "s3cret-token"

// lineLog is a deliberately naive slog.Handler: it writes each record's message and attribute
// values verbatim, one record per line, as a printf-style log sink would. Whatever the agent logs
// must stay one line per record, and short, even through such a sink.
type lineLog struct {
	mu      sync.Mutex
	buf     strings.Builder
	records int
}

func (l *lineLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *lineLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *lineLog) WithGroup(string) slog.Handler            { return l }

func (l *lineLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&l.buf, " %s=%s", a.Key, a.Value)
		return true
	})
	l.buf.WriteByte('\n')
	l.records++
	return nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines checks that every record took exactly one line and returns them.
func (l *lineLog) lines(t testing.TB) []string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.SplitAfter(l.buf.String(), "\n")
	lines = lines[:len(lines)-1] // after the last newline
	if len(lines) != l.records {
		t.Errorf("%d log records took %d lines:\n%s", l.records, len(lines), l.buf.String())
	}
	return lines
}
