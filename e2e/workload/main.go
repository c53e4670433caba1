// Command workload is gc-tuner's reference Go service: it allocates like a real request handler,
// keeps a live set, can leak, drives its own load, and exposes every source gc-tuner reads
// (the agent, expvar, Prometheus, gctrace on stderr). See README.md for its flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gctuner/gc-tuner/agent"
)

// defaultShutdownTimeout is the default of -shutdown-timeout. Stopping takes at most twice it
// (the driver's drain, then the server's), well inside Kubernetes' default 30 s grace period.
const defaultShutdownTimeout = 5 * time.Second

// tunerName and startTuner are replaced by the gctuner_bytedance build.
var (
	tunerName  = "none"
	startTuner = func(config, *slog.Logger) error { return nil }
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		exitOnConfigError(err)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	start := time.Now()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := startTuner(cfg, logger); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	addr := ln.Addr().(*net.TCPAddr)
	svc := newService(cfg)
	drv := newDriver(loadTarget(addr), cfg.LoadConcurrency, cfg.Load)
	drv.drain = cfg.ShutdownTimeout

	cache := newCacheControl(svc)
	srv := &http.Server{Handler: routes(cfg, svc, drv, cache, logger), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	printJSON(map[string]any{"event": "listening", "addr": addr.String(), "pid": os.Getpid()})

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var bg sync.WaitGroup
	peak := &peakMemory{}
	loops := []func(context.Context){drv.run, svc.leak, peak.run, cache.run}
	if svc.sessions != nil {
		loops = append(loops, svc.sessions.run)
	}
	for _, f := range loops {
		bg.Add(1)
		go func(f func(context.Context)) { defer bg.Done(); f(ctx) }(f)
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	// The driver stops first and waits for its requests in flight, so they count in the summary
	// and hold none of the server's connections during its shutdown.
	bg.Wait()
	if err := shutdown(srv, cfg.ShutdownTimeout, logger); err != nil {
		return err
	}
	printJSON(buildSummary(start, svc, peak, drv))
	return nil
}

// shutdown stops srv gracefully, giving open requests up to grace to finish, then closes the
// connections still open. A client that holds a slow request or an idle connection past the
// deadline is not a failure of the service: the exit stays clean and the summary is printed.
func shutdown(srv *http.Server, grace time.Duration, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	logger.Warn("requests still open after the shutdown timeout; closing their connections", "timeout", grace)
	// Close's error can only come from closing the listener again, which Shutdown already did.
	_ = srv.Close()
	return nil
}

// loadTarget is the workload's own /work: through the real listener, so the built-in load is
// counted and timed exactly as external load is.
func loadTarget(addr *net.TCPAddr) string {
	host := addr.IP
	if host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(host.String(), fmt.Sprint(addr.Port)) + "/work"
}

func routes(cfg config, svc *service, drv *driver, cache *cacheControl, logger *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		// MetricsAll adds every runtime/metrics name (go_gc_heap_live_bytes, go_gc_gogc_percent,
		// go_cpu_classes_gc_total_cpu_seconds_total, ...) next to the default go_memstats_*.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsAll)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "workload_load_target_qps",
			Help: "Rate the built-in load driver aims at now."},
			func() float64 { return math.Float64frombits(drv.targetQPS.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "workload_leaked_bytes",
			Help: "Bytes leaked on purpose so far (-leak-mib-per-sec)."},
			func() float64 { return float64(svc.leakedTotal.Load()) }),
	)
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total",
		Help: "HTTP requests served, by handler, method and status code."}, []string{"handler", "method", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by handler.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"handler", "method", "code"})
	reg.MustRegister(requests, latency)
	instrument := func(name string, h http.Handler) http.Handler {
		l := prometheus.Labels{"handler": name}
		return promhttp.InstrumentHandlerDuration(latency.MustCurryWith(l),
			promhttp.InstrumentHandlerCounter(requests.MustCurryWith(l), h))
	}

	// The agent reports the same number as http_requests_total{handler="work"} (summed over method
	// and code), so gc-tuner's QPS is the same whichever of the two it reads. svc.requests would not
	// do: it leaves out the requests /work refuses.
	var workRequests atomic.Uint64
	opts := []agent.Option{
		agent.WithBounds(cfg.MinGOGC, cfg.MaxGOGC, cfg.MinMemoryLimitBytes),
		agent.WithMaxLease(cfg.MaxLease),
		agent.WithLogger(logger),
	}
	if cfg.RequestCounter {
		opts = append(opts, agent.WithRequestCounter(workRequests.Load))
	}
	switch {
	case cfg.TokenFile != "":
		opts = append(opts, agent.WithTokenFile(cfg.TokenFile))
	case cfg.Token != "":
		opts = append(opts, agent.WithToken(cfg.Token))
	}
	if cfg.AllowUnauthWrites {
		opts = append(opts, agent.AllowUnauthenticatedWrites())
	}

	if expvar.Get("workload") == nil { // Publish panics on a second registration (tests build routes twice)
		expvar.Publish("workload", expvar.Func(func() any {
			return map[string]any{"requests": svc.requests.Load(), "leakedBytes": svc.leakedTotal.Load(),
				"loadTargetQPS": math.Float64frombits(drv.targetQPS.Load()), "tuner": tunerName}
		}))
	}

	mux := http.NewServeMux()
	mux.Handle("/work", instrument("work", counted(&workRequests, svc)))
	mux.Handle("/load", drv)
	mux.Handle("/cache", cache)
	if cfg.Agent {
		mux.Handle("/debug/gctuner", agent.New(opts...).Handler())
	}
	mux.Handle("/debug/vars", expvar.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// counted counts at the point promhttp.InstrumentHandlerCounter does, once h has returned, so a
// request that panics is left out of both.
func counted(n *atomic.Uint64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		n.Add(1)
	})
}

func printJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are printed
	}
	fmt.Fprintln(os.Stdout, string(b))
}
