// Command fleetsim serves N fake Go pods for gc-tuner's fleet-scale cost benchmark: one process,
// one listener per pod on its own loopback address (127.1.x.y), each answering like the reference
// workload: the gc-tuner agent (GET/POST/DELETE /debug/gctuner), expvar (/debug/vars) and
// Prometheus (/metrics), with values that evolve and react to the GOGC written to the agent.
//
// A control listener reports what the pods saw (/stats: request counts and every agent write, with
// its arrival time), so the benchmark can time a rollout from the pods' side.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type write struct {
	Pod        int    `json:"pod"`
	UnixNano   int64  `json:"unixNano"`
	Method     string `json:"method"`
	GOGC       *int   `json:"gogc"`
	LimitBytes *int64 `json:"memoryLimitBytes"`
}

type fleet struct {
	pods   []*pod
	gets   atomic.Int64
	errors atomic.Int64

	mu     sync.Mutex
	writes []write
}

const maxWrites = 200_000

func (f *fleet) record(w write) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.writes) < maxWrites {
		f.writes = append(f.writes, w)
	}
}

// addr is pod i's loopback address: 127.1.0.1, 127.1.0.2, ... skipping .0 and .255.
func addr(i int) string {
	return fmt.Sprintf("127.%d.%d.%d", 1+i/(254*256), (i/254)%256, i%254+1)
}

func (f *fleet) handler(p *pod) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/gctuner", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			f.gets.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(p.agentJSON(time.Now()))
		case http.MethodPost:
			f.post(p, w, r)
		case http.MethodDelete:
			f.release(p, w, r)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		f.gets.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(p.metricsText(time.Now()))
	})
	mux.HandleFunc("/debug/vars", func(w http.ResponseWriter, _ *http.Request) {
		f.gets.Add(1)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(p.expvarJSON(time.Now()))
	})
	return mux
}

type writeRequest struct {
	GOGC             *int    `json:"gogc"`
	MemoryLimitBytes *int64  `json:"memoryLimitBytes"`
	LeaseSeconds     *int64  `json:"leaseSeconds"`
	Owner            *string `json:"owner"`
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// post follows the real agent: strict body, bounds 10..1000 and >= 32 MiB, a lease per owner.
func (f *fleet) post(p *pod, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		jsonError(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	var req writeRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	switch {
	case req.LeaseSeconds == nil || req.Owner == nil || *req.Owner == "":
		jsonError(w, http.StatusBadRequest, "leaseSeconds and owner are required")
		return
	case *req.LeaseSeconds < 1 || *req.LeaseSeconds > 1800:
		jsonError(w, http.StatusUnprocessableEntity, "leaseSeconds must be within 1..1800")
		return
	case req.GOGC != nil && (*req.GOGC < 10 || *req.GOGC > 1000):
		jsonError(w, http.StatusUnprocessableEntity, "gogc must be within 10..1000")
		return
	case req.MemoryLimitBytes != nil && *req.MemoryLimitBytes < 32*mib:
		jsonError(w, http.StatusUnprocessableEntity, "memoryLimitBytes must be >= 33554432")
		return
	}
	now := time.Now()
	p.mu.Lock()
	p.advance(now)
	if p.leaseOwner != "" && p.leaseOwner != *req.Owner {
		owner := p.leaseOwner
		p.mu.Unlock()
		jsonError(w, http.StatusConflict, "lease held by "+owner)
		return
	}
	prev := settings{p.gogc, p.limit}
	if req.GOGC != nil {
		p.gogc = *req.GOGC
	}
	if req.MemoryLimitBytes != nil {
		p.limit = *req.MemoryLimitBytes
	}
	p.leaseOwner = *req.Owner
	p.leaseUntil = now.Add(time.Duration(*req.LeaseSeconds) * time.Second)
	res := map[string]any{"previous": prev, "new": settings{p.gogc, p.limit}, "lease": p.leaseView(now),
		"released": false}
	p.mu.Unlock()
	f.record(write{p.idx, now.UnixNano(), "POST", req.GOGC, req.MemoryLimitBytes})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

func (f *fleet) release(p *pod, w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	p.mu.Lock()
	p.advance(now)
	prev := settings{p.gogc, p.limit}
	owner := r.URL.Query().Get("owner")
	if p.leaseOwner != "" && owner != "" && owner != p.leaseOwner {
		held := p.leaseOwner
		p.mu.Unlock()
		jsonError(w, http.StatusConflict, "lease held by "+held)
		return
	}
	released := p.leaseOwner != ""
	p.gogc, p.limit, p.leaseOwner = p.startGOGC, p.startLimit, ""
	res := map[string]any{"previous": prev, "new": settings{p.gogc, p.limit}, "lease": nil, "released": released}
	p.mu.Unlock()
	f.record(write{p.idx, now.UnixNano(), "DELETE", nil, nil})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// stats is the control endpoint: counts, and the agent writes since ?since=<index>.
func (f *fleet) stats(w http.ResponseWriter, r *http.Request) {
	since, _ := strconv.Atoi(r.URL.Query().Get("since"))
	f.mu.Lock()
	since = max(0, min(since, len(f.writes)))
	ws := append([]write(nil), f.writes[since:]...)
	total := len(f.writes)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"pods": len(f.pods), "gets": f.gets.Load(),
		"errors": f.errors.Load(), "writesTotal": total, "writes": ws})
}

func main() {
	n := flag.Int("n", 100, "number of fake pods")
	port := flag.Int("port", 8080, "port every pod listens on (each on its own address)")
	control := flag.String("control", "127.0.0.1:0", "address of the control endpoint (/stats)")
	seed := flag.Int64("seed", 1, "random seed of the pods' shapes")
	flag.Parse()
	if *n < 1 || *n > 60000 {
		fmt.Fprintln(os.Stderr, "fleetsim: -n must be within 1..60000")
		os.Exit(2)
	}
	rng := rand.New(rand.NewSource(*seed))
	now := time.Now()
	f := &fleet{pods: make([]*pod, *n)}
	var servers []*http.Server
	for i := range f.pods {
		f.pods[i] = newPod(i, rng, now)
		ln, err := net.Listen("tcp", net.JoinHostPort(addr(i), strconv.Itoa(*port)))
		if err != nil {
			fmt.Fprintf(os.Stderr, "fleetsim: listen for pod %d: %v\n", i, err)
			os.Exit(1)
		}
		srv := &http.Server{Handler: f.handler(f.pods[i]), ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: 120 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				f.errors.Add(1)
			}
		}()
	}
	cln, err := net.Listen("tcp", *control)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim: control listener:", err)
		os.Exit(1)
	}
	cmux := http.NewServeMux()
	cmux.HandleFunc("/stats", f.stats)
	go func() { _ = http.Serve(cln, cmux) }()
	out, _ := json.Marshal(map[string]any{"event": "listening", "pods": *n, "port": *port,
		"first": addr(0), "last": addr(*n - 1), "control": cln.Addr().String(), "pid": os.Getpid()})
	fmt.Println(string(out))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	for _, s := range servers {
		_ = s.Close()
	}
	out, _ = json.Marshal(map[string]any{"event": "summary", "gets": f.gets.Load(), "writes": len(f.writes)})
	fmt.Println(string(out))
}
