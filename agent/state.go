package agent

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
)

// setGCPercent is the only reference to debug.SetGCPercent in the package (a test checks this),
// so tests can record every call. Reads never go through it: see currentGOGC.
var setGCPercent = debug.SetGCPercent

// settings are the two knobs the agent controls. GOGC < 0 means off; a memory limit of
// math.MaxInt64 means no limit, both as the runtime reports them.
type settings struct {
	GOGC             int   `json:"gogc"`
	MemoryLimitBytes int64 `json:"memoryLimitBytes"`
}

// startupSettings reads GOGC and GOMEMLIMIT the way the runtime does at start (Go 1.26's
// readGOGC/readGOMEMLIMIT), so a lease can restore what the process was started with.
func startupSettings(getenv func(string) string) settings {
	return settings{GOGC: parseGOGC(getenv("GOGC")), MemoryLimitBytes: parseGOMEMLIMIT(getenv("GOMEMLIMIT"))}
}

// parseGOGC: "off" or a decimal int32; a negative value also means off; anything else is 100.
func parseGOGC(s string) int {
	if s == "off" {
		return -1
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 100
	}
	if n < 0 {
		return -1
	}
	return int(n)
}

// parseGOMEMLIMIT: "" or "off" is no limit; otherwise digits with an optional B, KiB, MiB, GiB
// or TiB suffix. The runtime dies at startup on anything else, so a malformed value cannot reach
// a running process; it maps to no limit here only to keep this function total.
func parseGOMEMLIMIT(s string) int64 {
	if s == "" || s == "off" {
		return math.MaxInt64
	}
	n, ok := parseByteCount(s)
	if !ok {
		return math.MaxInt64
	}
	return n
}

func parseByteCount(s string) (int64, bool) {
	mult := int64(1)
	digits := s
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if len(s) > len(u.suffix) && s[len(s)-len(u.suffix):] == u.suffix {
			mult, digits = u.mult, s[:len(s)-len(u.suffix)]
			break
		}
	}
	if digits == "" || digits[len(digits)-1] < '0' || digits[len(digits)-1] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, false
	}
	return n * mult, true
}

// currentSettings reads both knobs without changing either: GOGC from the /gc/gogc:percent metric
// (debug.SetGCPercent has no query form; SetGCPercent(-1) would switch GC off) and the limit from
// debug.SetMemoryLimit with a negative argument, which is documented as a pure query.
func currentSettings() settings {
	return settings{GOGC: currentGOGC(), MemoryLimitBytes: debug.SetMemoryLimit(-1)}
}

func currentGOGC() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100 // Go < 1.21 lacks the metric; unreachable with the go directive of this module
	}
	v := s[0].Value.Uint64()
	if v > math.MaxInt32 { // GOGC=off reads as MaxUint64
		return -1
	}
	return int(v)
}

// snapshotMetrics are the runtime/metrics a GET reports, keyed by their full names.
var snapshotMetrics = []string{
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/gc/heap/allocs:bytes",
	"/gc/cycles/total:gc-cycles",
	"/gc/cycles/forced:gc-cycles",
	"/gc/gogc:percent",
	"/gc/gomemlimit:bytes",
	"/gc/limiter/last-enabled:gc-cycle",
	"/gc/scan/stack:bytes",
	"/gc/scan/globals:bytes",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/gc/mark/idle:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/released:bytes",
}

const pauseMetric = "/sched/pauses/total/gc:seconds"

// pauseSummary condenses the GC pause histogram (since process start). Quantiles are bucket
// bounds, the runtime's resolution; they are nil while there has been no pause. Buckets holds the
// non-empty buckets as [bound, count] (bound as bucketValue gives it, ascending), so a reader can
// tell which pauses happened between two reads: the histogram itself only ever grows.
type pauseSummary struct {
	Count      uint64       `json:"count"`
	P50Seconds *float64     `json:"p50Seconds"`
	P99Seconds *float64     `json:"p99Seconds"`
	MaxSeconds *float64     `json:"maxSeconds"`
	Buckets    [][2]float64 `json:"buckets,omitempty"`
}

// maxPauseBuckets bounds the document: pauses cluster in a few buckets, and when they do not, the
// longest ones are kept (a guard asks for the longest pause between two reads).
const maxPauseBuckets = 128

// readMetrics returns the snapshot; metrics this Go version does not know are left out.
func readMetrics() (map[string]any, pauseSummary) {
	samples := make([]metrics.Sample, len(snapshotMetrics)+1)
	for i, name := range snapshotMetrics {
		samples[i].Name = name
	}
	samples[len(snapshotMetrics)].Name = pauseMetric
	metrics.Read(samples)
	out := make(map[string]any, len(snapshotMetrics))
	var pauses pauseSummary
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			out[s.Name] = s.Value.Uint64()
		case metrics.KindFloat64:
			if f := s.Value.Float64(); !math.IsNaN(f) && !math.IsInf(f, 0) {
				out[s.Name] = f
			}
		case metrics.KindFloat64Histogram:
			pauses = summarize(s.Value.Float64Histogram())
		}
	}
	return out, pauses
}

func summarize(h *metrics.Float64Histogram) pauseSummary {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	ps := pauseSummary{Count: total}
	if total == 0 {
		return ps
	}
	ps.P50Seconds = quantile(h, total, 0.50)
	ps.P99Seconds = quantile(h, total, 0.99)
	ps.Buckets = nonEmpty(h, maxPauseBuckets)
	for i := len(h.Counts) - 1; i >= 0; i-- {
		if h.Counts[i] > 0 {
			ps.MaxSeconds = bucketValue(h, i)
			break
		}
	}
	return ps
}

// nonEmpty returns the last (longest) at most max non-empty buckets as [bound, count], ascending.
func nonEmpty(h *metrics.Float64Histogram, max int) [][2]float64 {
	var out [][2]float64
	for i, c := range h.Counts {
		if c > 0 {
			out = append(out, [2]float64{*bucketValue(h, i), float64(c)})
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}

// quantile returns the bound of the bucket holding the q-th observation.
func quantile(h *metrics.Float64Histogram, total uint64, q float64) *float64 {
	rank := uint64(math.Ceil(q * float64(total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			return bucketValue(h, i)
		}
	}
	return bucketValue(h, len(h.Counts)-1)
}

// bucketValue is bucket i's upper bound, or its lower bound for the +Inf overflow bucket; JSON
// cannot carry infinities.
func bucketValue(h *metrics.Float64Histogram, i int) *float64 {
	v := h.Buckets[i+1]
	if math.IsInf(v, 0) {
		v = h.Buckets[i]
	}
	if math.IsInf(v, 0) {
		v = 0
	}
	return &v
}

// runtimeInfo are the static facts a GET reports.
func runtimeInfo() (goVersion string, gomaxprocs int) {
	return runtime.Version(), runtime.GOMAXPROCS(0) // 0 queries without changing
}
