package main

import (
	"context"
	"encoding/json"
	"math/rand"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// entry is one cache element: a chain of small records linked by pointers, so the collector
// has to trace the live set object by object as it would a real cache of parsed records (a
// pointer-free []byte would be marked in one step and make GC look unrealistically cheap).
type entry struct {
	key   int
	items []*item
}

type item struct {
	link    *item
	payload [56]byte // with link: 64 bytes, one size class
}

const itemBytes = 64

// service is what /work does: allocate garbage, churn a fixed-size live set, optionally wait.
type service struct {
	cfg config

	mu    sync.Mutex
	cache []*entry
	rng   *rand.Rand

	leakMu      sync.Mutex
	leaked      [][]byte
	leakedTotal atomic.Int64

	sessions *sessions // nil without -session-ttl

	requests atomic.Int64
	latency  *latencyHistogram
	sink     atomic.Pointer[[]byte] // keeps the compiler from dropping allocations
}

func newService(cfg config) *service {
	s := &service{cfg: cfg, rng: rand.New(rand.NewSource(1)), latency: newLatencyHistogram()}
	if cfg.SessionBytes > 0 {
		s.sessions = newSessions(cfg.SessionTTL)
	}
	n := cfg.LiveMiB << 20 / cfg.LiveObjectBytes
	s.cache = make([]*entry, n)
	for i := range s.cache {
		s.cache[i] = s.newEntry(i)
	}
	return s
}

func (s *service) newEntry(key int) *entry {
	return newChain(key, s.cfg.LiveObjectBytes)
}

// newChain is an entry of about `bytes` bytes: bytes/64 records linked by pointers.
func newChain(key, bytes int) *entry {
	e := &entry{key: key, items: make([]*item, max(1, bytes/itemBytes))}
	var prev *item
	for i := range e.items {
		it := &item{link: prev}
		it.payload[0] = byte(key + i)
		e.items[i] = it
		prev = it
	}
	return e
}

// ServeHTTP is /work. Query parameters override the configured garbage per request (bytes=N)
// and add a wait (delay_ms=N), so a test can hold a request open.
func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	garbage := s.cfg.GarbageBytes
	delay := s.cfg.WorkDelay
	q := r.URL.Query()
	if v := q.Get("bytes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<30 {
			http.Error(w, "bytes must be an integer in 0..2^30", http.StatusBadRequest)
			return
		}
		garbage = n
	}
	if v := q.Get("delay_ms"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 600_000 {
			http.Error(w, "delay_ms must be an integer in 0..600000", http.StatusBadRequest)
			return
		}
		delay = time.Duration(n) * time.Millisecond
	}
	sum := s.allocate(garbage)
	s.churn()
	if s.sessions != nil {
		s.sessions.add(newChain(sum, s.cfg.SessionBytes))
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
	s.requests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int{"allocated": garbage, "checksum": sum})
	s.latency.observe(time.Since(start))
}

// allocate makes n bytes of objects of the configured sizes, all alive until it returns, as the
// temporaries of a real request are.
func (s *service) allocate(n int) int {
	sizes := s.cfg.ObjectSizes
	objs := make([][]byte, 0, n/sizes[0]+1)
	sum := 0
	for i := 0; n > 0; i++ {
		size := min(sizes[i%len(sizes)], n)
		b := make([]byte, size)
		b[0], b[size-1] = byte(i), byte(size)
		sum += int(b[size-1])
		objs = append(objs, b)
		n -= size
	}
	if len(objs) > 0 {
		s.sink.Store(&objs[len(objs)-1])
	}
	return sum
}

// churn replaces cache entries: the live set stays the same size while the replaced entries
// become garbage the collector must find.
func (s *service) churn() {
	if len(s.cache) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < s.cfg.CacheChurn; i++ {
		k := s.rng.Intn(len(s.cache))
		s.cache[k] = s.newEntry(k)
	}
}

// leak grows memory that stays reachable forever at the configured rate.
func (s *service) leak(ctx context.Context) {
	if s.cfg.LeakMiBPerSec <= 0 {
		return
	}
	const tick = 100 * time.Millisecond
	perTick := s.cfg.LeakMiBPerSec * float64(1<<20) * tick.Seconds()
	limit := int64(s.cfg.LeakMaxMiB * float64(1<<20))
	t := time.NewTicker(tick)
	defer t.Stop()
	var owed float64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		owed += perTick
		n := int(owed)
		owed -= float64(n)
		if done := s.leakedTotal.Load(); limit > 0 && done+int64(n) > limit {
			n = int(max(0, limit-done))
		}
		if n == 0 {
			continue
		}
		b := make([]byte, n)
		for i := 0; i < n; i += 4096 {
			b[i] = 1
		}
		s.leakMu.Lock()
		s.leaked = append(s.leaked, b)
		s.leakMu.Unlock()
		s.leakedTotal.Add(int64(n))
	}
}
