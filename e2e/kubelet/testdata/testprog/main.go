// testprog is the test kubelet's own probe program: a tiny HTTP server whose behaviour the pod spec
// controls, so kubelet features (env, restarts, termination, logs) can be checked with a real process.
//
//	TESTPROG_LISTEN        host:port to serve on (the kubelet sets it to <podIP>:<first containerPort>)
//	--exit-after=D         exit after duration D with --exit-code (default: run until signalled)
//	--ignore-sigterm       keep running on SIGTERM (the kubelet must SIGKILL after the grace period)
//	--print=LINE           print LINE to stdout at start (repeatable), then "tick N" every --tick
//
// GET /env returns the process environment as JSON; GET /healthz returns 200.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type lines []string

func (l *lines) String() string     { return strings.Join(*l, ",") }
func (l *lines) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: never)")
	exitCode := flag.Int("exit-code", 0, "exit code used by --exit-after")
	ignoreTerm := flag.Bool("ignore-sigterm", false, "ignore SIGTERM")
	tick := flag.Duration("tick", time.Second, "interval of the tick lines")
	var prints lines
	flag.Var(&prints, "print", "line to print at start (repeatable)")
	flag.Parse()

	for _, p := range prints {
		fmt.Println(p)
	}
	fmt.Fprintf(os.Stderr, "testprog pid %d args %q\n", os.Getpid(), os.Args[1:])

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		for range sigs {
			if *ignoreTerm {
				fmt.Println("SIGTERM ignored")
				continue
			}
			fmt.Println("SIGTERM: exiting")
			os.Exit(0)
		}
	}()

	if addr := os.Getenv("TESTPROG_LISTEN"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "listen:", err)
			os.Exit(1)
		}
		fmt.Println("listening on", ln.Addr())
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/env", func(w http.ResponseWriter, _ *http.Request) {
			env := map[string]string{}
			for _, kv := range os.Environ() {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(env)
		})
		go func() { _ = http.Serve(ln, mux) }()
	}

	var exit <-chan time.Time
	if *exitAfter > 0 {
		exit = time.After(*exitAfter)
	}
	t := time.NewTicker(*tick)
	for n := 1; ; n++ {
		select {
		case <-exit:
			fmt.Printf("exiting with %d\n", *exitCode)
			os.Exit(*exitCode)
		case <-t.C:
			fmt.Printf("tick %d\n", n)
		}
	}
}
