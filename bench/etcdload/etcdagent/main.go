// Command etcdagent is etcd's own main (go.etcd.io/etcd/server/v3/etcdmain, the module and version
// e2e/cluster/build.py builds the e2e etcd from) with the gc-tuner agent linked in, as an
// application links it to be tuned through gc-tuner's Endpoint rollout. With GC_TUNER_AGENT_LISTEN
// set (host:port) it also serves, on that address, the agent at /debug/gctuner (bearer token from
// GC_TUNER_TOKEN) and etcd's Prometheus registry at /metrics (grpc_server_handled_total is the
// request counter gc-tuner reads QPS from). Everything else is etcd, flags included.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.etcd.io/etcd/server/v3/etcdmain"

	"github.com/gctuner/gc-tuner/agent"
)

func main() {
	if addr := os.Getenv("GC_TUNER_AGENT_LISTEN"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcdagent: GC_TUNER_AGENT_LISTEN:", err)
			os.Exit(2)
		}
		mux := http.NewServeMux()
		mux.Handle("/debug/gctuner", agent.New(agent.WithToken(os.Getenv("GC_TUNER_TOKEN"))).Handler())
		mux.Handle("/metrics", promhttp.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
	}
	etcdmain.Main(os.Args)
}
