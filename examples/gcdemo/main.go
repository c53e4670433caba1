// Command gcdemo is a small allocator whose GC trace is worth reading: a live set that grows at a
// fixed rate (a slow "leak"), short-lived garbage on top, and an occasional runtime.GC().
//
// Run it with GODEBUG=gctrace=1 and feed its stderr to `gc-tuner analyze -`:
//
//	GODEBUG=gctrace=1 go run . -duration 4s 2>&1 >/dev/null | gc-tuner analyze -
//
// At exit it prints what the runtime reports about itself (runtime/metrics) as one JSON line on
// stdout, so tests can compare the parsed trace with the program's own view.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// sink keeps each garbage chunk reachable until the next one replaces it, so the compiler cannot
// stack-allocate it and the GC really has to collect it.
var sink []byte

// node makes a pointer-rich live set: marking it costs real CPU, unlike pointer-free []byte.
type node struct {
	next *node
	pad  [6]*node
}

func main() {
	duration := flag.Duration("duration", 4*time.Second, "how long to run")
	growMiB := flag.Float64("grow", 4, "live-set growth in MiB/s (the leak)")
	garbageMiB := flag.Float64("garbage", 150, "short-lived allocation rate in MiB/s")
	maxLiveMiB := flag.Int("max-live", 96, "stop growing the live set at this many MiB")
	forceEvery := flag.Duration("force-every", time.Second, "call runtime.GC() this often (0: never)")
	chatty := flag.Bool("chatty", false, "write application lines to stderr, interleaving with gctrace")
	pointers := flag.Bool("pointers", false, "grow the live set as linked nodes (expensive to mark)")
	spin := flag.Bool("spin", false, "allocate without sleeping (no idle time: marking must compete)")
	flag.Parse()

	const chunk = 64 << 10
	var live [][]byte
	var nodes *node
	liveBytes := 0
	start := time.Now()
	lastForce := start
	tick := 5 * time.Millisecond
	var grown, garbage float64
	prev := start
	for now := start; now.Sub(start) < *duration; now = time.Now() {
		// The live set follows the clock, not the loop: on a busy machine a sleep overruns its tick,
		// and growth counted per tick would slow and stall with it. The trace's timestamps are wall
		// time, so only growth by elapsed time keeps the live heap a straight line in them.
		grown += *growMiB * now.Sub(prev).Seconds() * (1 << 20)
		prev = now
		for grown >= chunk && liveBytes < *maxLiveMiB<<20 {
			if *pointers {
				for i := 0; i < chunk/64; i++ { // a node is 56 bytes, in a 64-byte size class
					nodes = &node{next: nodes}
				}
			} else {
				live = append(live, make([]byte, chunk))
			}
			liveBytes += chunk
			grown -= chunk
		}
		garbage += *garbageMiB * tick.Seconds() * (1 << 20)
		for garbage >= chunk {
			sink = make([]byte, chunk)
			garbage -= chunk
		}
		if *forceEvery > 0 && now.Sub(lastForce) >= *forceEvery {
			runtime.GC()
			lastForce = now
		}
		if *chatty {
			fmt.Fprintf(os.Stderr, "app: live=%d MiB\n", liveBytes>>20)
		}
		if *spin {
			for t := time.Now(); time.Since(t) < tick; {
				sink = make([]byte, 4096)
			}
		} else {
			time.Sleep(tick)
		}
	}
	runtime.KeepAlive(live)
	runtime.KeepAlive(nodes)
	report()
}

// report prints the runtime's own view (cycle counts, GOGC, limit, live heap) as JSON on stdout.
func report() {
	names := []string{
		"/gc/cycles/total:gc-cycles",
		"/gc/cycles/forced:gc-cycles",
		"/gc/gogc:percent",
		"/gc/gomemlimit:bytes",
		"/gc/heap/live:bytes",
		"/gc/heap/goal:bytes",
	}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	counts := []metrics.Sample{{Name: names[0]}, {Name: names[1]}}
	var ms runtime.MemStats
	metrics.Read(samples) // the settings and heap as the program ran

	// Then no new cycle may start: with a binding memory limit the heap stays above the goal, so any
	// allocation here would start one, and the process could exit before that cycle's gctrace line
	// is out. SetGCPercent(-1) waits for a cycle in flight to finish marking; its line is printed at
	// the end of mark termination while the runtime still holds the world semaphore, and
	// ReadMemStats stops the world, so it waits for that line. After it the cycle counts below match
	// the trace exactly, even on a loaded machine.
	debug.SetMemoryLimit(math.MaxInt64)
	debug.SetGCPercent(-1)
	runtime.ReadMemStats(&ms)
	metrics.Read(counts)
	copy(samples, counts)

	out := map[string]uint64{}
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			out[s.Name] = s.Value.Uint64()
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
