// Command etcdload drives an etcd server with puts and ranges through etcd's own clientv3, at a
// set rate, for gc-tuner's tuning-quality benchmark (bench/quality, the foreign scenario).
//
// It keeps -keys keys of -value-bytes each: every request is a put of a random key (a new value,
// so the server's MVCC history and its in-memory index keep turning over) with probability
// -put-fraction, otherwise a range read of -range-keys keys from a random start. Requests are
// paced open-loop at -qps with at most -concurrency in flight (a tick with every slot busy is
// dropped and counted). Once a second it prints the latency histogram so far as one JSON line
// ({"event":"latency",...}, cumulative: a reader diffs two lines for a window); on SIGTERM, SIGINT
// or after -duration it prints a summary line and exits 0.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

type config struct {
	endpoints   string
	qps         float64
	concurrency int
	keys        int
	valueBytes  int
	putFraction float64
	rangeKeys   int64
	duration    time.Duration
	timeout     time.Duration
}

func parse(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("etcdload", flag.ContinueOnError)
	fs.StringVar(&c.endpoints, "endpoints", "127.0.0.1:2379", "comma-separated etcd client URLs or host:port")
	fs.Float64Var(&c.qps, "qps", 500, "requests per second")
	fs.IntVar(&c.concurrency, "concurrency", 32, "most requests in flight; ticks beyond are dropped")
	fs.IntVar(&c.keys, "keys", 20000, "size of the key space")
	fs.IntVar(&c.valueBytes, "value-bytes", 1024, "bytes per value")
	fs.Float64Var(&c.putFraction, "put-fraction", 0.5, "share of requests that are puts (the rest are ranges)")
	fs.Int64Var(&c.rangeKeys, "range-keys", 20, "keys per range read")
	fs.DurationVar(&c.duration, "duration", 0, "stop after this long (0: until SIGTERM)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "per-request timeout")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case c.qps <= 0 || math.IsInf(c.qps, 0) || math.IsNaN(c.qps):
		return c, fmt.Errorf("-qps must be > 0")
	case c.concurrency < 1 || c.keys < 1 || c.valueBytes < 0 || c.rangeKeys < 1:
		return c, fmt.Errorf("-concurrency, -keys and -range-keys must be >= 1, -value-bytes >= 0")
	case c.putFraction < 0 || c.putFraction > 1:
		return c, fmt.Errorf("-put-fraction must be in 0..1")
	}
	return c, nil
}

func main() {
	cfg, err := parse(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "etcdload:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "etcdload:", err)
		os.Exit(1)
	}
}

// histogram has log-spaced buckets 5% wide from 1 µs, as the reference workload's, so the
// benchmark reads both with one parser.
type histogram struct{ counts [421]atomic.Int64 }

const (
	latMin    = 1e-6
	latGrowth = 1.05
)

func (h *histogram) observe(d time.Duration) {
	i := 0
	if s := d.Seconds(); s > latMin {
		i = min(len(h.counts)-1, int(math.Log(s/latMin)/math.Log(latGrowth))+1)
	}
	h.counts[i].Add(1)
}

func (h *histogram) snapshot() map[string]int64 {
	out := map[string]int64{}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			out[strconv.Itoa(i)] = c
		}
	}
	return out
}

type stats struct {
	sent, failed, dropped atomic.Int64
	latency               histogram
}

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func (s *stats) line(event string, start time.Time) map[string]any {
	return map[string]any{
		"event": event, "t": time.Since(start).Seconds(), "sent": s.sent.Load(), "failed": s.failed.Load(),
		"dropped": s.dropped.Load(), "minSeconds": latMin, "growth": latGrowth, "counts": s.latency.snapshot(),
	}
}

func run(cfg config) error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: strings.Split(cfg.endpoints, ","), DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	start := time.Now()
	var st stats
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				emit(st.line("latency", start))
			}
		}
	}()
	pace(ctx, cfg, cli, &st)
	emit(st.line("summary", start))
	return nil
}

// pace sends requests open-loop at cfg.qps until ctx ends, then waits for those in flight.
func pace(ctx context.Context, cfg config, cli *clientv3.Client, st *stats) {
	slots := make(chan struct{}, cfg.concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	rng := rand.New(rand.NewSource(1))
	value := make([]byte, cfg.valueBytes)
	every := time.Duration(float64(time.Second) / cfg.qps)
	next := time.Now()
	for {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			return
		}
		if -time.Until(next) > time.Second {
			next = time.Now() // fell far behind: do not catch up in a rush
		}
		next = next.Add(every)
		key := fmt.Sprintf("k%08d", rng.Intn(cfg.keys))
		put := rng.Float64() < cfg.putFraction
		rng.Read(value)
		val := string(value)
		select {
		case slots <- struct{}{}:
		default:
			st.dropped.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			st.sent.Add(1)
			rctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
			defer cancel()
			t0 := time.Now()
			var err error
			if put {
				_, err = cli.Put(rctx, key, val)
			} else {
				_, err = cli.Get(rctx, key, clientv3.WithRange(clientv3.GetPrefixRangeEnd("k")), clientv3.WithLimit(cfg.rangeKeys))
			}
			if err != nil {
				st.failed.Add(1)
				return
			}
			st.latency.observe(time.Since(t0))
		}()
	}
}
