// Command promexpo prints, on stdout, what a Prometheus server scraping a Go service with
// client_golang would receive: the text exposition of a registry holding the default Go and process
// collectors and a labelled request counter. With -runtime-metrics the Go collector also exports the
// runtime/metrics GC series (go_gc_heap_live_bytes, go_cpu_classes_gc_total_cpu_seconds_total, ...).
//
// The counter's values come from flags so the parser tests know the expected sums:
// -requests 'method=GET,code=200:5;method=POST,code=500:2'.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var sink [][]byte

func main() {
	runtimeMetrics := flag.Bool("runtime-metrics", false, "export the runtime/metrics GC series")
	requests := flag.String("requests", "", "series of http_requests_total: labels:value;...")
	gcs := flag.Int("gcs", 3, "runtime.GC() calls before the scrape")
	flag.Parse()

	reg := prometheus.NewRegistry()
	if *runtimeMetrics {
		reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsAll)))
	} else {
		reg.MustRegister(collectors.NewGoCollector())
	}
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	counter := prometheus.NewCounterVec(
		prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests served."},
		[]string{"method", "code"},
	)
	reg.MustRegister(counter)
	if err := addRequests(counter, *requests); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	for i := 0; i < 64; i++ {
		sink = append(sink, make([]byte, 256<<10))
	}
	for i := 0; i < *gcs; i++ {
		runtime.GC()
	}

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		fmt.Fprintln(os.Stderr, "scrape failed:", rec.Code)
		os.Exit(1)
	}
	_, _ = os.Stdout.Write(rec.Body.Bytes())
	runtime.KeepAlive(sink)
}

func addRequests(c *prometheus.CounterVec, spec string) error {
	for _, series := range strings.Split(spec, ";") {
		if series == "" {
			continue
		}
		labelPart, valuePart, ok := strings.Cut(series, ":")
		if !ok {
			return fmt.Errorf("series %q: want labels:value", series)
		}
		v, err := strconv.ParseFloat(valuePart, 64)
		if err != nil {
			return fmt.Errorf("series %q: %w", series, err)
		}
		labels := prometheus.Labels{}
		for _, kv := range strings.Split(labelPart, ",") {
			k, val, _ := strings.Cut(kv, "=")
			labels[k] = val
		}
		c.With(labels).Add(v)
	}
	return nil
}
