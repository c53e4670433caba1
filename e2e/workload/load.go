package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// schedule is the built-in load driver's QPS over time.
type schedule struct {
	Kind         string        `json:"schedule"` // off | steady | burst | ramp
	QPS          float64       `json:"qps"`
	BurstQPS     float64       `json:"burstQPS"`
	BurstPeriod  time.Duration `json:"-"`
	BurstDuty    float64       `json:"burstDuty"`
	RampToQPS    float64       `json:"rampToQPS"`
	RampDuration time.Duration `json:"-"`
}

func (s *schedule) normalize() error {
	switch s.Kind {
	case "off", "steady", "burst", "ramp":
	default:
		return fmt.Errorf("load schedule %q: want off, steady, burst or ramp", s.Kind)
	}
	if s.QPS < 0 || s.BurstQPS < 0 || s.RampToQPS < 0 {
		return errors.New("load rates must be >= 0")
	}
	if s.BurstQPS == 0 {
		s.BurstQPS = 4 * s.QPS
	}
	if s.RampToQPS == 0 {
		s.RampToQPS = 4 * s.QPS
	}
	if s.Kind == "burst" && (s.BurstPeriod <= 0 || s.BurstDuty < 0 || s.BurstDuty > 1) {
		return errors.New("burst needs a positive period and a duty in 0..1")
	}
	if s.Kind == "ramp" && s.RampDuration <= 0 {
		return errors.New("ramp needs a positive duration")
	}
	return nil
}

// rate is the target QPS at elapsed time t since the schedule started.
func (s *schedule) rate(t time.Duration) float64 {
	switch s.Kind {
	case "steady":
		return s.QPS
	case "burst": // low first, then high for duty*period
		phase := float64(t%s.BurstPeriod) / float64(s.BurstPeriod)
		if phase >= 1-s.BurstDuty {
			return s.BurstQPS
		}
		return s.QPS
	case "ramp":
		f := math.Min(1, float64(t)/float64(s.RampDuration))
		return s.QPS + f*(s.RampToQPS-s.QPS)
	}
	return 0
}

// MarshalJSON shows durations as Go duration strings.
func (s schedule) MarshalJSON() ([]byte, error) {
	type plain schedule
	return json.Marshal(struct {
		plain
		BurstPeriod  string `json:"burstPeriod"`
		RampDuration string `json:"rampDuration"`
	}{plain(s), s.BurstPeriod.String(), s.RampDuration.String()})
}

// driver sends /work requests to the workload itself at the schedule's rate.
type driver struct {
	target string
	client *http.Client
	slots  chan struct{}
	// drain bounds how long run waits, once stopped, for its requests in flight; past it they
	// are aborted (and counted as failed), so a saturated or stalled service cannot hold up exit.
	drain time.Duration
	abort context.Context
	stop  context.CancelFunc

	mu      sync.Mutex
	sched   schedule
	started time.Time
	changed chan struct{} // closed and replaced on every schedule change

	sent, failed, dropped atomic.Int64
	targetQPS             atomic.Uint64 // float64 bits, for the gauge
	// latency is the client's view of each successful request (send to last body byte): what a
	// caller waits, queueing in the server and GC pauses included.
	latency *latencyHistogram
}

func newDriver(target string, concurrency int, s schedule) *driver {
	abort, stop := context.WithCancel(context.Background())
	return &driver{
		target: target,
		drain:  defaultShutdownTimeout,
		abort:  abort,
		stop:   stop,
		client: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency},
		},
		slots:   make(chan struct{}, concurrency),
		latency: newLatencyHistogram(),
		sched:   s,
		started: time.Now(),
		changed: make(chan struct{}),
	}
}

func (d *driver) current() (schedule, time.Time, chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sched, d.started, d.changed
}

func (d *driver) set(s schedule) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sched, d.started = s, time.Now()
	close(d.changed)
	d.changed = make(chan struct{})
}

// run paces requests until ctx ends, then waits for those in flight (at most d.drain, then
// aborts them) and closes its connections, so the server's graceful shutdown that follows finds
// none of the driver's connections open: neither busy ones nor ones it dialed and never used,
// which http.Server.Shutdown would otherwise wait 5 s for (it treats a connection that has not
// sent a request yet as active until then).
func (d *driver) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer d.finish(&wg)
	next := time.Now()
	for {
		s, started, changed := d.current()
		now := time.Now()
		r := s.rate(now.Sub(started))
		d.targetQPS.Store(math.Float64bits(r))
		if r <= 0 {
			select { // idle: wake on a schedule change, or re-check (ramp from 0)
			case <-ctx.Done():
				return
			case <-changed:
			case <-time.After(100 * time.Millisecond):
			}
			next = time.Now()
			continue
		}
		if lag := now.Sub(next); lag > time.Second {
			next = now // fell far behind (a pause, a stopped process): do not catch up in a rush
		}
		if wait := next.Sub(now); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				next = time.Now()
				continue
			case <-time.After(wait):
			}
		}
		next = next.Add(time.Duration(float64(time.Second) / r))
		select {
		case d.slots <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-d.slots }()
				d.fire()
			}()
		default:
			d.dropped.Add(1) // all slots busy: the service is saturated; an open-loop driver would queue
		}
	}
}

// finish waits for the requests in flight, aborting them once d.drain has passed.
func (d *driver) finish(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(d.drain)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		d.stop()
		<-done
	}
	d.client.CloseIdleConnections()
}

// fire sends one request. It is not cancelled when the driver stops: requests already sent
// finish within the drain time, so the summary's counts agree; past it they are aborted.
func (d *driver) fire() {
	d.sent.Add(1)
	start := time.Now()
	req, err := http.NewRequestWithContext(d.abort, http.MethodGet, d.target, nil)
	if err != nil {
		d.failed.Add(1)
		return
	}
	resp, err := d.client.Do(req)
	if err != nil {
		d.failed.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.failed.Add(1)
		return
	}
	d.latency.observe(time.Since(start))
}

// ServeHTTP is /load: GET shows the schedule; POST replaces it from query parameters
// (schedule, qps, burst_qps, burst_period, burst_duty, ramp_to_qps, ramp_duration), keeping
// the current value of any parameter not given, and restarts the schedule's clock. Both answer
// with the client-side latency histogram so far (cumulative: a reader takes the difference of
// two answers for a window).
func (d *driver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost, http.MethodPut:
		s, _, _ := d.current()
		if err := applyQuery(&s, r.URL.Query()); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d.set(s)
	default:
		w.Header().Set("Allow", "GET, POST, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s, started, _ := d.current()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"schedule":   s,
		"targetQPS":  s.rate(time.Since(started)),
		"sent":       d.sent.Load(),
		"failed":     d.failed.Load(),
		"dropped":    d.dropped.Load(),
		"inFlight":   len(d.slots),
		"concurrent": cap(d.slots),
		"latency":    d.latency.snapshot(),
	})
}

func applyQuery(s *schedule, q url.Values) error {
	floats := map[string]*float64{"qps": &s.QPS, "burst_qps": &s.BurstQPS, "burst_duty": &s.BurstDuty, "ramp_to_qps": &s.RampToQPS}
	durs := map[string]*time.Duration{"burst_period": &s.BurstPeriod, "ramp_duration": &s.RampDuration}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch {
		case k == "schedule":
			s.Kind = v
		case floats[k] != nil:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("%s=%q is not a number", k, v)
			}
			*floats[k] = f
		case durs[k] != nil:
			dur, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s=%q is not a duration", k, v)
			}
			*durs[k] = dur
		default:
			return fmt.Errorf("unknown parameter %q", k)
		}
	}
	return s.normalize()
}
