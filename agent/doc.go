// Package agent lets a Go service have its garbage collector tuned live, without a restart.
//
// The service mounts the agent's handler on its own mux:
//
//	a := agent.New(agent.WithTokenFile("/var/run/secrets/gc-tuner/token"))
//	mux.Handle("/debug/gctuner", a.Handler())
//
// GET reports the runtime's GC state (current and startup GOGC and memory limit, the lease, a
// runtime/metrics snapshot) and, with WithRequestCounter, the service's request count. POST
// sets GOGC and/or the memory limit under a lease; when the lease expires without renewal, or on
// DELETE, the startup values (from the GOGC and GOMEMLIMIT environment variables, else the
// runtime defaults) are restored. The JSON shapes are documented in README.md.
//
// The handler bounds the time a request body may take (WithReadTimeout), but headers and idle
// keep-alive connections are bounded only by the application's http.Server: set its
// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout (README.md suggests values).
//
// Reading never changes anything: GOGC is read from the /gc/gogc:percent runtime metric, never via
// debug.SetGCPercent(-1), which would switch the collector off.
package agent
