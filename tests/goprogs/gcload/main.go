// Command gcload drives the Go GC in a known way and reports, on stdout, what the runtime says about
// itself through runtime/metrics. The gctrace parser tests run it with GODEBUG=gctrace=1 and compare
// the parsed stderr with that self-report.
//
// It keeps a steady live set, churns garbage through it, optionally calls runtime.GC() (forced
// cycles), optionally asks for a goroutine-leak GC (Go 1.26+), and optionally writes application
// noise to stderr in small writes while the GC prints. It stops every writer and allocator, forces a
// last cycle, waits until the runtime has printed its line and only then reads runtime/metrics, so
// the final gctrace line and the metrics describe the same moment.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

var sink []byte

func main() {
	liveMiB := flag.Int("live-mib", 32, "steady live set")
	churnMiB := flag.Int("churn-mib", 1024, "garbage to allocate in total")
	forced := flag.Int("forced", 0, "runtime.GC() calls spread over the run")
	noise := flag.Bool("noise", false, "write application output to stderr in small writes")
	leakGC := flag.Bool("leak-gc", false, "request a goroutine-leak GC (Go 1.26+ with the experiment)")
	flag.Parse()

	var stop atomic.Bool
	var wg sync.WaitGroup
	if *noise {
		// An unfinished application line: the first gc line starts in the middle of it.
		_, _ = os.Stderr.WriteString("app: starting ")
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeNoise(&stop)
		}()
	}

	// The live set: 64 KiB chunks, replaced round-robin so the live heap stays constant while
	// garbage (the replaced chunks) flows through.
	const chunk = 64 << 10
	live := make([][]byte, *liveMiB*(1<<20)/chunk)
	for i := range live {
		live[i] = make([]byte, chunk)
	}
	total := *churnMiB * (1 << 20) / chunk
	every := 0
	if *forced > 0 {
		every = total / (*forced + 1)
	}
	userGCs := 0
	for i := 0; i < total; i++ {
		live[i%len(live)] = make([]byte, chunk)
		if i%16 == 15 {
			// Let the mark workers run: a tight loop of pointer-free allocations outruns them on a
			// busy machine, and everything allocated during mark counts as live.
			time.Sleep(20 * time.Microsecond)
		}
		if every > 0 && userGCs < *forced && (i+1)%every == 0 {
			runtime.GC()
			userGCs++
		}
	}
	leakGCs := 0
	if *leakGC {
		if p := pprof.Lookup("goroutineleak"); p != nil {
			_ = p.WriteTo(io.Discard, 0)
			leakGCs = 1
		}
	}

	stop.Store(true)
	wg.Wait()
	runtime.GC() // the last cycle: nothing allocates after it, so metrics read below describe it
	userGCs++
	report(len(live)*chunk, userGCs, leakGCs)
	runtime.KeepAlive(live)
}

func writeNoise(stop *atomic.Bool) {
	// Small writes, several per line, so they land inside gctrace lines. Each write holds a letter:
	// a write of bare digits next to a number of a gc line would be indistinguishable from it.
	parts := []string{"app ", "tick-42 ", "ok", "\n"}
	for i := 0; !stop.Load(); i++ {
		_, _ = os.Stderr.WriteString(parts[i%len(parts)])
		if i%64 == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	_, _ = os.Stderr.WriteString("\n")
}

func report(liveBytes, userGCs, leakGCs int) {
	names := []string{
		"/gc/cycles/total:gc-cycles",
		"/gc/cycles/forced:gc-cycles",
		"/gc/heap/live:bytes",
		"/gc/heap/goal:bytes",
		"/gc/gogc:percent",
		"/gc/gomemlimit:bytes",
		"/gc/scan/globals:bytes",
		"/gc/scan/stack:bytes",
	}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	// runtime.GC() can return before the cycle's gctrace line is printed: the runtime prints it at
	// the end of mark termination, while still holding the world semaphore, and releases it after.
	// ReadMemStats stops the world, so it waits for that release: after it, the line is out.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	metrics.Read(samples)
	out := map[string]any{
		"go_version":         runtime.Version(),
		"gomaxprocs":         runtime.GOMAXPROCS(0),
		"program_live_bytes": liveBytes,
		"user_gc_calls":      userGCs,
		"leak_gc_calls":      leakGCs,
	}
	m := map[string]any{}
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			m[s.Name] = s.Value.Uint64()
		case metrics.KindFloat64:
			m[s.Name] = s.Value.Float64()
		default:
			m[s.Name] = nil // unsupported by this Go version
		}
	}
	out["metrics"] = m
	enc, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(enc))
}
