package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"sync"
	"time"
)

const mib = 1 << 20

// pod is one fake Go process. Its counters evolve with wall time the way a real service's do:
// requests at a slowly waving rate, a live heap that is flat or (for a few pods) leaking, GC
// cycles whose frequency follows allocation rate / (goal - live), so a GOGC written through the
// agent endpoint changes what the next samples show.
type pod struct {
	mu sync.Mutex

	idx        int
	start      time.Time // fake process start (before the simulator's own start: an old process)
	last       time.Time // counters are integrated up to here
	qps        float64
	wavePeriod float64
	liveBase   float64 // bytes
	slope      float64 // bytes per second of live-heap growth
	allocReq   float64 // bytes allocated per request
	roots      float64 // stacks + globals bytes
	nonHeap    float64

	startGOGC  int
	gogc       int
	startLimit int64
	limit      int64
	leaseOwner string
	leaseUntil time.Time

	requests  float64
	cycles    float64
	gcCPU     float64
	idleCPU   float64
	totalCPU  float64
	allocs    float64
	pauseRing [256]uint64
	pauseSum  float64
}

const noLimit = math.MaxInt64

func newPod(idx int, rng *rand.Rand, now time.Time) *pod {
	p := &pod{
		idx:        idx,
		start:      now.Add(-time.Duration(60+rng.Intn(3600)) * time.Second),
		qps:        20 + rng.Float64()*1500,
		wavePeriod: 120 + rng.Float64()*600,
		liveBase:   float64(30+rng.Intn(270)) * mib,
		allocReq:   float64(8<<10 + rng.Intn(120<<10)),
		roots:      float64(1+rng.Intn(8)) * mib,
		nonHeap:    float64(8+rng.Intn(24)) * mib,
		startGOGC:  100,
		gogc:       100,
		startLimit: noLimit,
		limit:      noLimit,
	}
	if rng.Float64() < 0.05 { // a few leak, which is what the fit has to find
		p.slope = (0.2 + rng.Float64()*2) * mib
	}
	p.last = now
	// Counters of an old process: as if it had run at its mean rate since p.start.
	up := now.Sub(p.start).Seconds()
	p.requests = p.qps * up
	p.integrateCycles(up)
	return p
}

func (p *pod) rate(t float64) float64 {
	return p.qps * (1 + 0.3*math.Sin(2*math.Pi*t/p.wavePeriod))
}

func (p *pod) live(now time.Time) float64 {
	t := now.Sub(p.start).Seconds()
	// A small sawtooth of in-flight request memory on top of the trend, like marked live heaps.
	return p.liveBase + p.slope*t + 0.02*p.liveBase*math.Sin(float64(p.idx)+t/7)
}

func (p *pod) goal(live float64) float64 {
	g := live + (live+p.roots)*float64(p.gogc)/100
	if p.limit != noLimit {
		g = math.Min(g, math.Max(live, float64(p.limit)-p.nonHeap))
	}
	return g
}

// integrateCycles advances the GC counters by dt seconds at the current settings.
func (p *pod) integrateCycles(dt float64) {
	live := p.live(p.last)
	alloc := p.allocReq * p.qps * dt
	room := math.Max(p.goal(live)-live, mib)
	n := alloc / room
	p.allocs += alloc
	p.cycles += n
	markCPU := live / (400 * mib) // seconds of CPU to mark the live heap once
	p.gcCPU += n * markCPU * 1.3
	p.idleCPU += n * markCPU * 0.3
	p.totalCPU += dt*p.qps*40e-6 + n*markCPU*1.3
	for i := 0; i < int(math.Min(n, 256)); i++ {
		p.pauseRing[(int(p.cycles)+i)%256] = uint64(50_000 + (p.idx*7919+i*104729)%400_000)
	}
	p.pauseSum += n * 150e-6
}

// advance brings every counter to `now`; callers hold p.mu.
func (p *pod) advance(now time.Time) {
	if p.leaseOwner != "" && !now.Before(p.leaseUntil) {
		p.gogc, p.limit, p.leaseOwner = p.startGOGC, p.startLimit, ""
	}
	dt := now.Sub(p.last).Seconds()
	if dt <= 0 {
		return
	}
	t0 := p.last.Sub(p.start).Seconds()
	p.requests += (p.rate(t0) + p.rate(t0+dt)) / 2 * dt
	p.integrateCycles(dt)
	p.last = now
}

// workRequests are the counts of the two http_requests_total{handler="work"} series of /metrics
// (code 200 and 500). The bench policy's qps.counter sums every series with handler="work", so
// the agent's requestsTotal is ok+failed; both pages derive them here so they cannot drift apart.
func (p *pod) workRequests() (ok, failed float64) {
	return math.Floor(p.requests), math.Floor(p.requests / 5000)
}

type settings struct {
	GOGC             int   `json:"gogc"`
	MemoryLimitBytes int64 `json:"memoryLimitBytes"`
}

type leaseView struct {
	Owner            string    `json:"owner"`
	ExpiresAt        time.Time `json:"expiresAt"`
	RemainingSeconds float64   `json:"remainingSeconds"`
}

func (p *pod) leaseView(now time.Time) *leaseView {
	if p.leaseOwner == "" {
		return nil
	}
	return &leaseView{p.leaseOwner, p.leaseUntil.UTC(), p.leaseUntil.Sub(now).Seconds()}
}

// heapAt advances the simulation to now and returns the live heap, the heap goal and the heap in
// use (live plus part of the garbage allocated since the last cycle). The caller holds p.mu.
func (p *pod) heapAt(now time.Time) (live, goal, heap float64) {
	p.advance(now)
	live = p.live(now)
	goal = p.goal(live)
	return live, goal, live + (goal-live)*0.6
}

// agentJSON is the agent's GET body (agent/README.md), built from the simulated state.
func (p *pod) agentJSON(now time.Time) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	live, goal, heap := p.heapAt(now)
	p99 := 0.0004 + float64(p.idx%10)*0.0001
	ok, failed := p.workRequests()
	doc := map[string]any{
		"goVersion":        "go1.26.8",
		"gomaxprocs":       2,
		"gogc":             p.gogc,
		"memoryLimitBytes": p.limit,
		"startup":          settings{p.startGOGC, p.startLimit},
		"lease":            p.leaseView(now),
		"bounds": map[string]any{"minGOGC": 10, "maxGOGC": 1000, "minMemoryLimitBytes": 32 * mib,
			"maxLeaseSeconds": 1800},
		"writesEnabled": true,
		"requestsTotal": uint64(ok + failed),
		"metrics": map[string]any{
			"/gc/heap/live:bytes":                   uint64(live),
			"/gc/heap/goal:bytes":                   uint64(goal),
			"/gc/heap/allocs:bytes":                 uint64(p.allocs),
			"/gc/cycles/total:gc-cycles":            uint64(p.cycles),
			"/gc/cycles/forced:gc-cycles":           0,
			"/gc/gogc:percent":                      p.gogc,
			"/gc/gomemlimit:bytes":                  p.limit,
			"/gc/limiter/last-enabled:gc-cycle":     0,
			"/gc/scan/stack:bytes":                  uint64(p.roots / 4),
			"/gc/scan/globals:bytes":                uint64(p.roots * 3 / 4),
			"/cpu/classes/gc/total:cpu-seconds":     p.gcCPU,
			"/cpu/classes/gc/mark/idle:cpu-seconds": p.idleCPU,
			"/cpu/classes/total:cpu-seconds":        p.totalCPU + p.gcCPU,
			"/memory/classes/total:bytes":           uint64(goal*1.05 + p.nonHeap),
			"/memory/classes/heap/objects:bytes":    uint64(heap),
			"/memory/classes/heap/released:bytes":   uint64(goal * 0.02),
		},
		"pauses": map[string]any{"count": uint64(p.cycles) * 2, "p50Seconds": 0.00006, "p99Seconds": p99,
			"maxSeconds": p99 * 2},
	}
	b, _ := json.Marshal(doc)
	return b
}

// num prints a sample value exactly (shortest round-trip form), as client_golang does; %g would
// cut a large counter to six digits and turn a steady rate into steps.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// metricsText is a /metrics page like client_golang's default Go collector plus the service's
// own request counter: what the QPS counter source and the Prometheus source read.
func (p *pod) metricsText(now time.Time) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	live, goal, heap := p.heapAt(now)
	var b []byte
	add := func(help, typ, name string, v float64) {
		b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, typ, name, num(v))
	}
	b = append(b, "# HELP go_gc_duration_seconds A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.\n# TYPE go_gc_duration_seconds summary\n"...)
	for _, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		b = fmt.Appendf(b, "go_gc_duration_seconds{quantile=%q} %s\n", q, num(0.00003+0.0001*float64(len(q))))
	}
	b = fmt.Appendf(b, "go_gc_duration_seconds_sum %s\ngo_gc_duration_seconds_count %d\n", num(p.pauseSum), uint64(p.cycles))
	b = append(b, "# HELP go_info Information about the Go environment.\n# TYPE go_info gauge\ngo_info{version=\"go1.26.8\"} 1\n"...)
	add("Number of goroutines that currently exist.", "gauge", "go_goroutines", 40)
	add("The current runtime.GOMAXPROCS setting.", "gauge", "go_sched_gomaxprocs_threads", 2)
	add("The sum of all goroutine stacks scanned.", "gauge", "go_gc_scan_stack_bytes", p.roots/4)
	add("The total amount of global variable space that is scannable.", "gauge", "go_gc_scan_globals_bytes", p.roots*3/4)
	add("Number of OS threads created.", "gauge", "go_threads", 9)
	add("Heap size target percentage configured by the user, otherwise 100.", "gauge", "go_gc_gogc_percent", float64(p.gogc))
	add("Go runtime memory limit configured by the user, otherwise math.MaxInt64.", "gauge", "go_gc_gomemlimit_bytes", float64(p.limit))
	add("Heap memory occupied by live objects that were marked by the previous GC.", "gauge", "go_gc_heap_live_bytes", live)
	add("Heap size target for the end of the GC cycle.", "gauge", "go_gc_heap_goal_bytes", goal)
	add("Count of completed GC cycles generated by the Go runtime.", "counter", "go_gc_cycles_total_gc_cycles_total", math.Floor(p.cycles))
	add("Estimated total CPU time spent performing GC tasks.", "counter", "go_cpu_classes_gc_total_cpu_seconds_total", p.gcCPU)
	add("Estimated total CPU time spent performing GC tasks on processors that would otherwise be idle.", "counter", "go_cpu_classes_gc_mark_idle_cpu_seconds_total", p.idleCPU)
	add("Estimated total available CPU time for user Go code or the Go runtime.", "counter", "go_cpu_classes_total_cpu_seconds_total", p.totalCPU+p.gcCPU)
	add("Number of heap bytes allocated and still in use.", "gauge", "go_memstats_heap_alloc_bytes", heap)
	add("Number of heap bytes that are in use.", "gauge", "go_memstats_heap_inuse_bytes", heap*1.1)
	add("Number of heap bytes when next garbage collection will take place.", "gauge", "go_memstats_next_gc_bytes", goal)
	add("Number of bytes obtained from system.", "gauge", "go_memstats_sys_bytes", goal*1.05+p.nonHeap)
	add("Total number of bytes allocated, even if freed.", "counter", "go_memstats_alloc_bytes_total", p.allocs)
	add("Number of seconds since 1970 of last garbage collection.", "gauge", "go_memstats_last_gc_time_seconds", float64(now.UnixNano())/1e9-0.3)
	add("Total user and system CPU time spent in seconds.", "counter", "process_cpu_seconds_total", p.totalCPU+p.gcCPU)
	add("Resident memory size in bytes.", "gauge", "process_resident_memory_bytes", goal*1.05+p.nonHeap)
	add("Start time of the process since unix epoch in seconds.", "gauge", "process_start_time_seconds", float64(p.start.Unix()))
	b = append(b, "# HELP http_requests_total HTTP requests served, by handler, method and status code.\n# TYPE http_requests_total counter\n"...)
	ok, failed := p.workRequests()
	b = fmt.Appendf(b, "http_requests_total{code=\"200\",handler=\"work\",method=\"get\"} %s\n", num(ok))
	b = fmt.Appendf(b, "http_requests_total{code=\"500\",handler=\"work\",method=\"get\"} %s\n", num(failed))
	b = fmt.Appendf(b, "http_requests_total{code=\"200\",handler=\"metrics\",method=\"get\"} %d\n", 10+int(now.Sub(p.start).Seconds()/15))
	return b
}

// expvarJSON is /debug/vars: cmdline and the whole MemStats, as the expvar package serves them.
func (p *pod) expvarJSON(now time.Time) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	live, goal, heap := p.heapAt(now)
	n := uint64(p.cycles)
	ms := map[string]any{
		"Alloc": uint64(heap), "TotalAlloc": uint64(p.allocs), "Sys": uint64(goal*1.05 + p.nonHeap),
		"Mallocs": uint64(p.allocs / 512), "Frees": uint64(p.allocs/512 - live/512), "HeapAlloc": uint64(heap),
		"HeapSys": uint64(goal * 1.05), "HeapIdle": uint64(goal * 0.3), "HeapInuse": uint64(heap * 1.1),
		"HeapReleased": uint64(goal * 0.02), "HeapObjects": uint64(heap / 512), "StackInuse": uint64(p.roots / 4),
		"StackSys": uint64(p.roots / 4), "NextGC": uint64(goal), "LastGC": uint64(now.UnixNano()) - 300_000_000,
		"PauseTotalNs": uint64(p.pauseSum * 1e9), "PauseNs": p.pauseRing, "NumGC": n, "NumForcedGC": 0,
		"GCCPUFraction": p.gcCPU / math.Max(p.totalCPU+p.gcCPU, 1e-9), "EnableGC": true, "DebugGC": false,
	}
	b, _ := json.Marshal(map[string]any{"cmdline": []string{"/app/server"}, "memstats": ms})
	return b
}
