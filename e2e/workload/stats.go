package main

import (
	"bufio"
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// latencyHistogram has log-spaced buckets (5% wide, 1 µs to ~10 min), so the summary's p99 is
// exact to within 5% without keeping every observation.
type latencyHistogram struct {
	counts []atomic.Int64
}

const (
	latMin    = float64(time.Microsecond)
	latGrowth = 1.05
	latBucket = 420 // 1µs * 1.05^420 ≈ 800 s
)

func newLatencyHistogram() *latencyHistogram {
	return &latencyHistogram{counts: make([]atomic.Int64, latBucket+1)}
}

func (h *latencyHistogram) observe(d time.Duration) {
	i := 0
	if f := float64(d); f > latMin {
		i = min(latBucket, int(math.Log(f/latMin)/math.Log(latGrowth))+1)
	}
	h.counts[i].Add(1)
}

// quantile returns the upper bound of the bucket holding the q-th observation, or 0 when empty.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	var total int64
	snap := make([]int64, len(h.counts))
	for i := range h.counts {
		snap[i] = h.counts[i].Load()
		total += snap[i]
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i, c := range snap {
		seen += c
		if seen >= max(rank, 1) {
			return time.Duration(latMin * math.Pow(latGrowth, float64(i)))
		}
	}
	return time.Duration(latMin * math.Pow(latGrowth, latBucket))
}

// histogramSnapshot is a latencyHistogram's counts as JSON: bucket i holds observations up to
// minSeconds × growth^i (bucket 0: up to minSeconds); empty buckets are left out.
type histogramSnapshot struct {
	MinSeconds float64          `json:"minSeconds"`
	Growth     float64          `json:"growth"`
	Counts     map[string]int64 `json:"counts"`
}

func (h *latencyHistogram) snapshot() histogramSnapshot {
	out := histogramSnapshot{MinSeconds: latMin / 1e9, Growth: latGrowth, Counts: map[string]int64{}}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			out.Counts[strconv.Itoa(i)] = c
		}
	}
	return out
}

// peakMemory samples /memory/classes/total:bytes (all memory the Go runtime has mapped) every
// 100 ms and keeps the highest value.
type peakMemory struct{ peak atomic.Uint64 }

func (p *peakMemory) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		p.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *peakMemory) sample() {
	v := readMetrics("/memory/classes/total:bytes")[0].Value.Uint64()
	for {
		cur := p.peak.Load()
		if v <= cur || p.peak.CompareAndSwap(cur, v) {
			return
		}
	}
}

func readMetrics(names ...string) []metrics.Sample {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	return s
}

// summary is the one line of JSON printed on exit (see README.md).
type summary struct {
	Event             string  `json:"event"`
	UptimeSeconds     float64 `json:"uptime_seconds"`
	GCCPUSeconds      float64 `json:"gc_cpu_seconds"`
	ProcessCPUSeconds float64 `json:"process_cpu_seconds"`
	Cycles            uint64  `json:"cycles"`
	ForcedCycles      uint64  `json:"forced_cycles"`
	PeakGoMemoryBytes uint64  `json:"peak_go_memory_bytes"`
	PeakRSSBytes      *int64  `json:"peak_rss_bytes"`
	Requests          int64   `json:"requests"`
	P50LatencyMS      float64 `json:"p50_latency_ms"`
	P99LatencyMS      float64 `json:"p99_latency_ms"`
	LoadP50LatencyMS  float64 `json:"load_p50_latency_ms"`
	LoadP99LatencyMS  float64 `json:"load_p99_latency_ms"`
	GOGC              int64   `json:"gogc"`
	MemoryLimitBytes  int64   `json:"memory_limit_bytes"`
	LeakedBytes       int64   `json:"leaked_bytes"`
	LoadSent          int64   `json:"load_sent"`
	LoadFailed        int64   `json:"load_failed"`
	LoadDropped       int64   `json:"load_dropped"`
	Tuner             string  `json:"tuner"`
}

func buildSummary(start time.Time, svc *service, peak *peakMemory, d *driver) summary {
	peak.sample()
	m := readMetrics(
		"/cpu/classes/gc/total:cpu-seconds",
		"/cpu/classes/gc/mark/idle:cpu-seconds",
		"/gc/cycles/total:gc-cycles",
		"/gc/cycles/forced:gc-cycles",
		"/gc/gogc:percent",
	)
	gogc := int64(-1)
	if v := m[4].Value.Uint64(); v <= math.MaxInt32 {
		gogc = int64(v)
	}
	return summary{
		Event:         "summary",
		UptimeSeconds: time.Since(start).Seconds(),
		// Idle marking runs only on otherwise idle Ps, so it is left out like gctrace's P% does.
		GCCPUSeconds:      m[0].Value.Float64() - m[1].Value.Float64(),
		ProcessCPUSeconds: processCPUSeconds(),
		Cycles:            m[2].Value.Uint64(),
		ForcedCycles:      m[3].Value.Uint64(),
		PeakGoMemoryBytes: peak.peak.Load(),
		PeakRSSBytes:      vmHWM(),
		Requests:          svc.requests.Load(),
		P50LatencyMS:      float64(svc.latency.quantile(0.50)) / 1e6,
		P99LatencyMS:      float64(svc.latency.quantile(0.99)) / 1e6,
		LoadP50LatencyMS:  float64(d.latency.quantile(0.50)) / 1e6,
		LoadP99LatencyMS:  float64(d.latency.quantile(0.99)) / 1e6,
		GOGC:              gogc,
		MemoryLimitBytes:  debug.SetMemoryLimit(-1),
		LeakedBytes:       svc.leakedTotal.Load(),
		LoadSent:          d.sent.Load(),
		LoadFailed:        d.failed.Load(),
		LoadDropped:       d.dropped.Load(),
		Tuner:             tunerName,
	}
}

func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// vmHWM is the peak resident set size the kernel recorded (Linux only; nil elsewhere).
func vmHWM() *int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fields := strings.Fields(rest) // "123456 kB"
			if len(fields) == 2 && fields[1] == "kB" {
				if kb, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
					b := kb << 10
					return &b
				}
			}
		}
	}
	return nil
}
