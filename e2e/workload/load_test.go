package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

func TestScheduleRate(t *testing.T) {
	s := time.Second
	steady := schedule{Kind: "steady", QPS: 50}
	burst := schedule{Kind: "burst", QPS: 10, BurstQPS: 100, BurstPeriod: 10 * s, BurstDuty: 0.3}
	ramp := schedule{Kind: "ramp", QPS: 20, RampToQPS: 220, RampDuration: 100 * s}
	off := schedule{Kind: "off", QPS: 50}
	for _, tt := range []struct {
		name string
		s    schedule
		at   time.Duration
		want float64
	}{
		{"steady", steady, 0, 50}, {"steady later", steady, 1000 * s, 50},
		{"burst low phase", burst, 0, 10}, {"burst end of low", burst, 6999 * time.Millisecond, 10},
		{"burst high phase", burst, 7 * s, 100}, {"burst next period", burst, 10 * s, 10}, {"burst high again", burst, 19 * s, 100},
		{"ramp start", ramp, 0, 20}, {"ramp middle", ramp, 50 * s, 120}, {"ramp end", ramp, 100 * s, 220}, {"ramp holds", ramp, 500 * s, 220},
		{"off", off, 10 * s, 0},
	} {
		if got := tt.s.rate(tt.at); got != tt.want {
			t.Errorf("%s at %v: %v, want %v", tt.name, tt.at, got, tt.want)
		}
	}
}

func TestApplyQuery(t *testing.T) {
	s := schedule{Kind: "steady", QPS: 50, BurstPeriod: time.Second, BurstDuty: 0.5, RampDuration: time.Second}
	if err := applyQuery(&s, url.Values{"schedule": {"burst"}, "burst_qps": {"300"}, "burst_period": {"2s"}}); err != nil {
		t.Fatal(err)
	}
	if s.Kind != "burst" || s.BurstQPS != 300 || s.BurstPeriod != 2*time.Second || s.QPS != 50 {
		t.Fatalf("got %+v", s)
	}
	for _, bad := range []url.Values{{"qps": {"x"}}, {"schedule": {"sine"}}, {"burst_period": {"2"}}, {"color": {"red"}}} {
		c := s
		if err := applyQuery(&c, bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// The driver sends requests while a schedule is on and none once it is switched off.
func TestDriverStartsAndStops(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	d := newDriver(srv.URL, 4, schedule{Kind: "steady", QPS: 200})
	done := make(chan struct{})
	ctx, cancel := contextWithCancel()
	go func() { d.run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for hits.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests in 5 s at 200 QPS", hits.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	off := schedule{Kind: "off"}
	d.set(off)
	time.Sleep(200 * time.Millisecond) // let requests in flight land
	n := hits.Load()
	time.Sleep(300 * time.Millisecond)
	if m := hits.Load(); m != n {
		t.Fatalf("%d requests after the schedule was switched off", m-n)
	}
	cancel()
	<-done
	if d.sent.Load() != hits.Load() || d.failed.Load() != 0 {
		t.Fatalf("sent %d, server saw %d, failed %d", d.sent.Load(), hits.Load(), d.failed.Load())
	}
}
