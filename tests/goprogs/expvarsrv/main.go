// Command expvarsrv serves a real expvar document for the expvar parser tests.
//
// It listens on 127.0.0.1 (port from -addr, default any free port), prints its address on stdout
// and serves:
//
//	GET /debug/vars   the standard expvar handler (cmdline, memstats)
//	GET /gc?n=N       runs runtime.GC() N times, then answers
//	GET /truth        the runtime/metrics view of the same state, as JSON
//
// It keeps a live set of -live-mib MiB so the heap goal is far above the runtime's 4 MiB minimum.
package main

import (
	"encoding/json"
	"expvar"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
)

var live [][]byte

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	liveMiB := flag.Int("live-mib", 32, "live set to keep")
	flag.Parse()
	for i := 0; i < *liveMiB*16; i++ {
		live = append(live, make([]byte, 64<<10))
	}
	runtime.GC()

	http.HandleFunc("/gc", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 {
			http.Error(w, "n: want a non-negative integer", http.StatusBadRequest)
			return
		}
		for i := 0; i < n; i++ {
			runtime.GC()
		}
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/truth", truth)
	_ = expvar.Get("memstats") // the expvar package registers /debug/vars on import

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func truth(w http.ResponseWriter, _ *http.Request) {
	names := []string{
		"/gc/cycles/total:gc-cycles",
		"/gc/cycles/forced:gc-cycles",
		"/gc/heap/live:bytes",
		"/gc/heap/goal:bytes",
		"/gc/gogc:percent",
		"/gc/scan/globals:bytes",
		"/gc/scan/stack:bytes",
	}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	metrics.Read(samples)
	out := map[string]uint64{}
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			out[s.Name] = s.Value.Uint64()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
	runtime.KeepAlive(live)
}
