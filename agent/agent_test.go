package agent

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

const mib = 1 << 20

func post(gogc, limit string, lease int, owner string) string {
	return fmt.Sprintf(`{"gogc":%s,"memoryLimitBytes":%s,"leaseSeconds":%d,"owner":%q}`, gogc, limit, lease, owner)
}

func TestGetReportsTheDocumentedShape(t *testing.T) {
	startAt(t, "150", "512MiB")
	a, _ := newTestAgent(t, WithToken(testToken))
	r := do(t, a.Handler(), http.MethodGet, "/debug/gctuner", "", testToken)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	for path, want := range map[string]int64{
		"gogc": 150, "memoryLimitBytes": 512 * mib,
		"startup.gogc": 150, "startup.memoryLimitBytes": 512 * mib,
		"bounds.minGOGC": 10, "bounds.maxGOGC": 1000,
		"bounds.minMemoryLimitBytes": 32 * mib, "bounds.maxLeaseSeconds": 1800,
		"metrics./gc/gogc:percent": 150, "metrics./gc/gomemlimit:bytes": 512 * mib,
	} {
		if got := integer(t, r.body, path); got != want {
			t.Errorf("%s = %d, want %d", path, got, want)
		}
	}
	if v, _ := r.body["goVersion"].(string); !strings.HasPrefix(v, "go") {
		t.Errorf("goVersion %q", v)
	}
	if integer(t, r.body, "gomaxprocs") < 1 {
		t.Error("gomaxprocs < 1")
	}
	if r.body["lease"] != nil {
		t.Errorf("lease = %v, want null", r.body["lease"])
	}
	if r.body["writesEnabled"] != true {
		t.Errorf("writesEnabled = %v with a token", r.body["writesEnabled"])
	}
	for _, name := range snapshotMetrics {
		lookup(t, r.body, "metrics."+name)
		if _, ok := r.body["metrics"].(map[string]any)[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	debug.FreeOSMemory() // at least one GC, hence one pause, before the next GET
	r = do(t, a.Handler(), http.MethodGet, "/", "", testToken)
	if integer(t, r.body, "pauses.count") < 1 {
		t.Fatalf("no pauses after a forced GC: %v", r.body["pauses"])
	}
	p50, p99, pmax := float(t, r.body, "pauses.p50Seconds"), float(t, r.body, "pauses.p99Seconds"), float(t, r.body, "pauses.maxSeconds")
	if !(0 < p50 && p50 <= p99 && p99 <= pmax && pmax < 10) {
		t.Errorf("pause summary out of order: p50 %g p99 %g max %g", p50, p99, pmax)
	}
	if integer(t, r.body, "metrics./gc/cycles/forced:gc-cycles") < 1 {
		t.Error("forced cycle not counted")
	}
}

func TestGetReportsTheRequestCounter(t *testing.T) {
	counted := func(read func() uint64) []Option { return []Option{WithRequestCounter(read)} }
	tests := []struct {
		name   string
		opts   func(read func() uint64) []Option
		values []uint64 // what the counter returns on successive calls
		want   []string // requestsTotal of successive GETs; "" means the key is absent
	}{
		{"counter, followed between GETs", counted, []uint64{0, 7, 7, 1 << 40}, []string{"0", "7", "7", "1099511627776"}},
		{"no counter", func(func() uint64) []Option { return nil }, nil, []string{"", ""}},
		{"nil counter", func(func() uint64) []Option { return []Option{WithRequestCounter(nil)} }, nil, []string{""}},
		{"nil after a counter", func(read func() uint64) []Option {
			return []Option{WithRequestCounter(read), WithRequestCounter(nil)}
		}, []uint64{3}, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			startAt(t, "100", "")
			var calls int
			read := func() uint64 { calls++; return tt.values[min(calls, len(tt.values))-1] }
			a, _ := newTestAgent(t, append(tt.opts(read), WithToken(testToken))...)
			h := a.Handler()
			// Only a served GET reads the counter: not writes, not a refused GET.
			do(t, h, http.MethodPost, "/", post("150", "null", 60, "op"), testToken)
			do(t, h, http.MethodDelete, "/", "", testToken)
			do(t, h, http.MethodGet, "/", "", "wrong")
			if calls != 0 {
				t.Fatalf("counter called %d times before any served GET", calls)
			}
			for i, want := range tt.want {
				r := do(t, h, http.MethodGet, "/", "", testToken)
				v, present := r.body["requestsTotal"]
				if want == "" {
					if present {
						t.Errorf("GET %d: requestsTotal = %v, want the key absent", i, v)
					}
					continue
				}
				if n, ok := v.(json.Number); !ok || n.String() != want {
					t.Errorf("GET %d: requestsTotal = %v (%T), want %s", i, v, v, want)
				}
			}
		})
	}
}

func TestPostAppliesAndReportsPreviousAndNew(t *testing.T) {
	startAt(t, "100", "")
	a, clock := newTestAgent(t, WithToken(testToken))
	h := a.Handler()
	r := do(t, h, http.MethodPost, "/", post("250", "268435456", 30, "op-a"), testToken)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	want := map[string]int64{
		"previous.gogc": 100, "previous.memoryLimitBytes": math.MaxInt64,
		"new.gogc": 250, "new.memoryLimitBytes": 256 * mib,
	}
	for path, w := range want {
		if got := integer(t, r.body, path); got != w {
			t.Errorf("%s = %d, want %d", path, got, w)
		}
	}
	if got := currentSettings(); got != (settings{250, 256 * mib}) {
		t.Fatalf("runtime has %+v", got)
	}
	if owner := lookup(t, r.body, "lease.owner"); owner != "op-a" {
		t.Errorf("lease owner %v", owner)
	}
	if rem := float(t, r.body, "lease.remainingSeconds"); rem != 30 {
		t.Errorf("remainingSeconds %g, want 30", rem)
	}
	// A null knob is left alone, and the same owner renews.
	clock.Advance(10 * time.Second)
	r = do(t, h, http.MethodPost, "/", post("null", "null", 60, "op-a"), testToken)
	if r.status != http.StatusOK || integer(t, r.body, "new.gogc") != 250 || integer(t, r.body, "previous.gogc") != 250 {
		t.Fatalf("renewal: %d %s", r.status, r.raw)
	}
	if rem := float(t, r.body, "lease.remainingSeconds"); rem != 60 {
		t.Errorf("renewed lease remainingSeconds %g, want 60", rem)
	}
	g := do(t, h, http.MethodGet, "/", "", testToken)
	if integer(t, g.body, "metrics./gc/gogc:percent") != 250 || integer(t, g.body, "metrics./gc/gomemlimit:bytes") != 256*mib {
		t.Errorf("GET after POST: %s", g.raw)
	}
}

func TestLeaseExpiryRestoresStartupValues(t *testing.T) {
	tests := []struct {
		name          string
		gogcEnv       string
		limitEnv      string
		body          string
		wantAfterPost settings
		wantRestored  settings
	}{
		{"both knobs, defaults", "", "", post("50", "134217728", 30, "op"),
			settings{50, 128 * mib}, settings{100, math.MaxInt64}},
		{"both knobs, env", "300", "1GiB", post("50", "134217728", 30, "op"),
			settings{50, 128 * mib}, settings{300, 1 << 30}},
		{"GOGC=off at startup", "off", "256MiB", post("80", "null", 30, "op"),
			settings{80, 256 * mib}, settings{-1, 256 * mib}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			startAt(t, tt.gogcEnv, tt.limitEnv)
			a, clock := newTestAgent(t, AllowUnauthenticatedWrites())
			h := a.Handler()
			if r := do(t, h, http.MethodPost, "/", tt.body, ""); r.status != http.StatusOK {
				t.Fatalf("POST: %d %s", r.status, r.raw)
			}
			if got := currentSettings(); got != tt.wantAfterPost {
				t.Fatalf("after POST %+v, want %+v", got, tt.wantAfterPost)
			}
			clock.Advance(29 * time.Second)
			if got := currentSettings(); got != tt.wantAfterPost {
				t.Fatalf("restored before expiry: %+v", got)
			}
			clock.Advance(time.Second)
			if got := currentSettings(); got != tt.wantRestored {
				t.Fatalf("after expiry %+v, want %+v", got, tt.wantRestored)
			}
			if r := do(t, h, http.MethodGet, "/", "", ""); r.body["lease"] != nil {
				t.Fatalf("lease still reported: %s", r.raw)
			}
		})
	}
}

func TestRenewalPostponesExpiry(t *testing.T) {
	startAt(t, "100", "")
	a, clock := newTestAgent(t, AllowUnauthenticatedWrites())
	h := a.Handler()
	do(t, h, http.MethodPost, "/", post("60", "null", 10, "op"), "")
	for i := 0; i < 5; i++ { // renew every 8 s for 40 s: never expires
		clock.Advance(8 * time.Second)
		if r := do(t, h, http.MethodPost, "/", post("60", "null", 10, "op"), ""); r.status != http.StatusOK {
			t.Fatalf("renewal %d: %d %s", i, r.status, r.raw)
		}
		if g := currentGOGC(); g != 60 {
			t.Fatalf("renewal %d: gogc %d, the old timer must not fire", i, g)
		}
	}
	clock.Advance(10 * time.Second)
	if g := currentGOGC(); g != 100 {
		t.Fatalf("gogc %d after the last lease expired, want 100", g)
	}
}

// The lease expires on a real timer too (no request needed to trigger the restore).
func TestLeaseExpiresOnRealTimer(t *testing.T) {
	startAt(t, "100", "")
	a := New(AllowUnauthenticatedWrites())
	if r := do(t, a.Handler(), http.MethodPost, "/", post("70", "null", 1, "op"), ""); r.status != http.StatusOK {
		t.Fatalf("POST: %d %s", r.status, r.raw)
	}
	if g := currentGOGC(); g != 70 {
		t.Fatalf("gogc %d, want 70", g)
	}
	deadline := time.Now().Add(3 * time.Second)
	for currentGOGC() != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("gogc still %d 3 s after a 1 s lease", currentGOGC())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The timer's goroutine restored under a.mu; taking it orders that goroutine's use of
	// setGCPercent before later tests that swap the variable (the race detector cannot see the
	// runtime's GOGC as a synchronisation point).
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lease != nil {
		t.Fatal("lease still held after the restore")
	}
}

func TestExpiryRestoresOnlyTheKnobsTheLeaseSet(t *testing.T) {
	startAt(t, "100", "")
	a, clock := newTestAgent(t, AllowUnauthenticatedWrites())
	debug.SetMemoryLimit(300 * mib) // set by the application itself, not through the agent
	do(t, a.Handler(), http.MethodPost, "/", post("40", "null", 5, "op"), "")
	clock.Advance(5 * time.Second)
	if got := currentSettings(); got != (settings{100, 300 * mib}) {
		t.Fatalf("after expiry %+v, want GOGC restored and the app's limit kept", got)
	}
}

func TestDeleteReleasesNow(t *testing.T) {
	startAt(t, "120", "")
	a, _ := newTestAgent(t, WithToken(testToken))
	h := a.Handler()
	do(t, h, http.MethodPost, "/", post("400", "100663296", 600, "op-a"), testToken)
	if r := do(t, h, http.MethodDelete, "/?owner=op-b", "", testToken); r.status != http.StatusConflict {
		t.Fatalf("DELETE by another owner: %d %s", r.status, r.raw)
	}
	r := do(t, h, http.MethodDelete, "/?owner=op-a", "", testToken)
	if r.status != http.StatusOK || r.body["released"] != true {
		t.Fatalf("DELETE: %d %s", r.status, r.raw)
	}
	if integer(t, r.body, "previous.gogc") != 400 || integer(t, r.body, "new.gogc") != 120 ||
		integer(t, r.body, "new.memoryLimitBytes") != math.MaxInt64 {
		t.Errorf("DELETE body %s", r.raw)
	}
	if got := currentSettings(); got != (settings{120, math.MaxInt64}) {
		t.Fatalf("after DELETE %+v", got)
	}
	r = do(t, h, http.MethodDelete, "/", "", testToken)
	if r.status != http.StatusOK || r.body["released"] != false {
		t.Fatalf("second DELETE: %d %s", r.status, r.raw)
	}
}

func TestAnotherOwnerGetsConflictUntilExpiry(t *testing.T) {
	startAt(t, "100", "")
	a, clock := newTestAgent(t, AllowUnauthenticatedWrites())
	h := a.Handler()
	do(t, h, http.MethodPost, "/", post("200", "null", 20, "op-a"), "")
	r := do(t, h, http.MethodPost, "/", post("300", "null", 20, "op-b"), "")
	if r.status != http.StatusConflict || !strings.Contains(r.raw, "op-a") {
		t.Fatalf("second owner: %d %s", r.status, r.raw)
	}
	if g := currentGOGC(); g != 200 {
		t.Fatalf("conflicting write changed gogc to %d", g)
	}
	clock.Advance(20 * time.Second)
	if r := do(t, h, http.MethodPost, "/", post("300", "null", 20, "op-b"), ""); r.status != http.StatusOK {
		t.Fatalf("after expiry: %d %s", r.status, r.raw)
	}
}

func TestRejectedWritesChangeNothing(t *testing.T) {
	startAt(t, "100", "")
	a, _ := newTestAgent(t, WithToken(testToken), WithBounds(25, 400, 64*mib), WithMaxLease(time.Minute))
	h := a.Handler()
	tests := []struct {
		name    string
		ctype   string
		body    string
		status  int
		errPart string
	}{
		{"gogc below bound", "application/json", post("24", "null", 5, "op"), 422, "(minGOGC)"},
		{"gogc above bound", "application/json", post("401", "null", 5, "op"), 422, "(maxGOGC)"},
		{"limit below bound", "application/json", post("100", "1000", 5, "op"), 422, "(minMemoryLimitBytes)"},
		{"lease too long", "application/json", post("100", "null", 61, "op"), 422, "(maxLeaseSeconds)"},
		{"unknown field", "application/json", `{"gogc":100,"leaseSeconds":5,"owner":"op","x":1}`, 400, "unknown field"},
		{"not JSON content", "text/plain", post("100", "null", 5, "op"), 415, "application/json"},
		{"body too large", "application/json", `{"owner":"` + strings.Repeat("a", 8192) + `"}`, 413, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(http.MethodPost, tt.body, testToken)
			req.Header.Set("Content-Type", tt.ctype)
			r := serve(t, h, req)
			if r.status != tt.status || !strings.Contains(r.raw, tt.errPart) {
				t.Fatalf("got %d %s, want %d containing %q", r.status, r.raw, tt.status, tt.errPart)
			}
			if got := currentSettings(); got != (settings{100, math.MaxInt64}) {
				t.Fatalf("a rejected write changed the runtime: %+v", got)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	a, _ := newTestAgent(t)
	r := do(t, a.Handler(), http.MethodPut, "/", "", "")
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") == "" {
		t.Fatalf("PUT: %d %v", r.status, r.header)
	}
}

// Concurrent writers: every response's previous values are some other response's new values
// (or the startup values), each exactly once, and the final state is one request's pair. That
// only holds if reading the old pair and setting the new one is one atomic step.
func TestConcurrentWritesAreAtomic(t *testing.T) {
	startAt(t, "100", "")
	a, _ := newTestAgent(t, AllowUnauthenticatedWrites())
	h := a.Handler()
	// A setter that takes a random while widens the window in which an unserialised
	// implementation would interleave two requests.
	orig := setGCPercent
	setGCPercent = func(p int) int {
		prev := orig(p)
		time.Sleep(time.Duration(rand.Intn(500)) * time.Microsecond)
		return prev
	}
	defer func() { setGCPercent = orig }()
	const n = 40
	results := make([]response, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// GOGC and limit encode the same i, so a torn pair is visible.
			body := post(fmt.Sprint(100+i), fmt.Sprint(int64(64+i)*mib), 60, "op")
			results[i] = do(t, h, http.MethodPost, "/", body, "")
		}(i)
	}
	wg.Wait()
	prevs := map[settings]int{}
	news := map[settings]bool{{100, math.MaxInt64}: true}
	for i, r := range results {
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.raw)
		}
		prev := settings{int(integer(t, r.body, "previous.gogc")), integer(t, r.body, "previous.memoryLimitBytes")}
		prevs[prev]++
		news[settings{int(integer(t, r.body, "new.gogc")), integer(t, r.body, "new.memoryLimitBytes")}] = true
	}
	for p, count := range prevs {
		if !news[p] || count != 1 {
			t.Errorf("previous %+v seen %d times; torn or lost update", p, count)
		}
	}
	final := currentSettings()
	if i := final.GOGC - 100; final.MemoryLimitBytes != int64(64+i)*mib {
		t.Fatalf("final state %+v mixes two requests", final)
	}
}
