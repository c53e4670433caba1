package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The live set can change while the process runs, in two ways a real service's does:
//   - POST /cache?live_mib=N&over=D resizes the cache to N MiB, linearly over D (a cache warming
//     up over a day, or dropped at once with over=0), independently of the request rate;
//   - -session-bytes and -session-ttl keep per-request state (a session) alive for a while, so
//     that part of the live set is proportional to QPS, as in a service holding per-user state.

// resizeStep is how often a resize in progress moves the cache toward its target.
const resizeStep = 100 * time.Millisecond

// resizeChunk bounds the entries built per lock hold, so /work requests are not held up long.
const resizeChunk = 256

// resize is one cache resize in progress.
type resize struct {
	from, to int // entries
	start    time.Time
	over     time.Duration
}

// entriesAt is how many entries the resize wants at time now: linear from `from` to `to`.
func (r resize) entriesAt(now time.Time) int {
	if r.over <= 0 || !now.Before(r.start.Add(r.over)) {
		return r.to
	}
	f := float64(now.Sub(r.start)) / float64(r.over)
	return r.from + int(f*float64(r.to-r.from))
}

type cacheControl struct {
	svc *service

	mu      sync.Mutex
	pending *resize
	wake    chan struct{}
}

func newCacheControl(svc *service) *cacheControl {
	return &cacheControl{svc: svc, wake: make(chan struct{}, 1)}
}

func (s *service) entries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cache)
}

// setEntries grows or shrinks the cache to n entries. Growing builds entries in chunks outside
// the lock; shrinking drops the tail, which becomes garbage.
func (s *service) setEntries(n int) {
	for {
		s.mu.Lock()
		have := len(s.cache)
		if n <= have {
			clear(s.cache[n:])
			s.cache = s.cache[:n]
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		chunk := make([]*entry, 0, min(resizeChunk, n-have))
		for i := 0; i < cap(chunk); i++ {
			chunk = append(chunk, s.newEntry(have+i))
		}
		s.mu.Lock()
		if len(s.cache) == have { // nobody resized meanwhile; otherwise loop and re-measure
			s.cache = append(s.cache, chunk...)
		}
		s.mu.Unlock()
	}
}

// run applies pending resizes every resizeStep until ctx ends.
func (c *cacheControl) run(ctx context.Context) {
	t := time.NewTicker(resizeStep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
		}
		c.mu.Lock()
		p := c.pending
		c.mu.Unlock()
		if p == nil {
			continue
		}
		now := time.Now()
		c.svc.setEntries(p.entriesAt(now))
		if p.entriesAt(now) == p.to {
			c.mu.Lock()
			if c.pending == p {
				c.pending = nil
			}
			c.mu.Unlock()
		}
	}
}

// ServeHTTP is /cache: GET shows the cache; POST live_mib=N [over=D] starts a resize.
func (c *cacheControl) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost, http.MethodPut:
		p, err := c.parse(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.pending = p
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	default:
		w.Header().Set("Allow", "GET, POST, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	n := c.svc.entries()
	c.mu.Lock()
	target := n
	if c.pending != nil {
		target = c.pending.to
	}
	c.mu.Unlock()
	per := c.svc.cfg.LiveObjectBytes
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"entries": n, "liveMiB": float64(n*per) / (1 << 20),
		"targetEntries": target, "targetLiveMiB": float64(target*per) / (1 << 20),
	})
}

func (c *cacheControl) parse(r *http.Request) (*resize, error) {
	q := r.URL.Query()
	for k := range q {
		if k != "live_mib" && k != "over" {
			return nil, fmt.Errorf("unknown parameter %q (want live_mib, over)", k)
		}
	}
	mib, err := strconv.ParseFloat(q.Get("live_mib"), 64)
	if err != nil || mib < 0 || mib > 1<<20 {
		return nil, fmt.Errorf("live_mib=%q: want a number of MiB in 0..1048576", q.Get("live_mib"))
	}
	var over time.Duration
	if v := q.Get("over"); v != "" {
		if over, err = time.ParseDuration(v); err != nil || over < 0 {
			return nil, fmt.Errorf("over=%q: want a duration >= 0 (e.g. 30s)", v)
		}
	}
	to := int(mib * (1 << 20) / float64(c.svc.cfg.LiveObjectBytes))
	return &resize{from: c.svc.entries(), to: to, start: time.Now(), over: over}, nil
}

// sessions keeps what each request leaves behind for -session-ttl, in buckets of sessionTick,
// so the live set it holds is QPS × TTL × -session-bytes.
type sessions struct {
	ttl, tick time.Duration
	mu        sync.Mutex
	buckets   [][]*entry // ring, oldest dropped each tick
	cur       int
}

const sessionTick = 100 * time.Millisecond

func newSessions(ttl time.Duration) *sessions {
	if ttl <= 0 {
		return nil
	}
	n := int(ttl/sessionTick) + 1
	return &sessions{ttl: ttl, tick: sessionTick, buckets: make([][]*entry, n)}
}

func (s *sessions) add(e *entry) {
	s.mu.Lock()
	s.buckets[s.cur] = append(s.buckets[s.cur], e)
	s.mu.Unlock()
}

// run rotates the ring every tick: the oldest bucket's sessions expire.
func (s *sessions) run(ctx context.Context) {
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.rotate()
	}
}

func (s *sessions) rotate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = (s.cur + 1) % len(s.buckets)
	s.buckets[s.cur] = nil
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.buckets {
		n += len(b)
	}
	return n
}
