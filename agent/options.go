package agent

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of the options. They are documented on each option and in README.md.
const (
	defaultMinGOGC             = 10
	defaultMaxGOGC             = 1000
	defaultMinMemoryLimitBytes = 32 << 20
	defaultMaxLease            = 30 * time.Minute
	// A write body is under 200 bytes: 10 s is ample on any network and longer than gc-tuner's
	// own 5 s request timeout, yet short enough that stalled clients cannot pile up connections.
	defaultReadTimeout = 10 * time.Second
)

// An Option configures an Agent. Options are sealed: only this package can implement them.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	token               string
	tokenFile           string
	minGOGC             int
	maxGOGC             int
	minMemoryLimitBytes int64
	maxLease            time.Duration
	logger              *slog.Logger
	unauthenticated     bool
	requestCounter      func() uint64
	readTimeout         time.Duration
}

func defaultConfig() config {
	return config{
		minGOGC:             defaultMinGOGC,
		maxGOGC:             defaultMaxGOGC,
		minMemoryLimitBytes: defaultMinMemoryLimitBytes,
		maxLease:            defaultMaxLease,
		readTimeout:         defaultReadTimeout,
		logger:              slog.New(discardHandler{}),
	}
}

// validate reports option values that cannot make sense; New panics on them because they are
// programming errors of the embedding service, like a bad regexp passed to regexp.MustCompile.
func (c *config) validate() error {
	if c.minGOGC < 0 || c.maxGOGC < c.minGOGC {
		return fmt.Errorf("agent: WithBounds: need 0 <= minGOGC <= maxGOGC, got %d..%d", c.minGOGC, c.maxGOGC)
	}
	if c.minMemoryLimitBytes < 0 {
		return fmt.Errorf("agent: WithBounds: minMemoryLimitBytes %d is negative", c.minMemoryLimitBytes)
	}
	if c.maxLease < time.Second {
		return fmt.Errorf("agent: WithMaxLease: %v is shorter than one second", c.maxLease)
	}
	if c.readTimeout <= 0 {
		return fmt.Errorf("agent: WithReadTimeout: %v is not positive", c.readTimeout)
	}
	// The service asked for a token (WithToken was given something) but nothing is left of it
	// after trimming: running without authentication instead would be a silent downgrade.
	if c.token != "" && cleanToken(c.token) == "" {
		return fmt.Errorf("agent: WithToken: the token is only whitespace (%d bytes); "+
			"give a real token, or none for no authentication", len(c.token))
	}
	return nil
}

// WithToken requires every request (reads included) to carry "Authorization: Bearer <token>".
// Surrounding whitespace is trimmed, as for WithTokenFile, so a token read from an environment
// variable or a file with a trailing newline works. Default: no token, in which case reads are
// open and writes are refused (see AllowUnauthenticatedWrites). An empty token means no token;
// New panics on a token that is only whitespace. WithToken and WithTokenFile are exclusive: the
// last one given wins.
func WithToken(token string) Option {
	return optionFunc(func(c *config) { c.token, c.tokenFile = token, "" })
}

// WithTokenFile is WithToken with the token read from a file (surrounding whitespace trimmed),
// such as a mounted Kubernetes Secret. The file is stat'ed on every request and re-read when its
// modification time or size changes, so a rotated token takes effect without a restart. While the
// file is missing, unreadable or empty, every request is refused with 503. Default: none.
func WithTokenFile(path string) Option {
	return optionFunc(func(c *config) { c.tokenFile, c.token = path, "" })
}

// WithBounds limits what a write may set: minGOGC <= gogc <= maxGOGC and
// memoryLimitBytes >= minMemoryLimitBytes. A value outside gets 422 naming the bound.
// Defaults: GOGC 10..1000, memory limit at least 32 MiB. GOGC "off" can never be set through the
// agent. New panics unless 0 <= minGOGC <= maxGOGC and minMemoryLimitBytes >= 0.
func WithBounds(minGOGC, maxGOGC int, minMemoryLimitBytes int64) Option {
	return optionFunc(func(c *config) {
		c.minGOGC, c.maxGOGC, c.minMemoryLimitBytes = minGOGC, maxGOGC, minMemoryLimitBytes
	})
}

// WithMaxLease caps the lease a write may ask for (leaseSeconds). Default: 30 minutes.
// New panics if it is shorter than one second.
func WithMaxLease(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxLease = d })
}

// WithLogger receives one record per applied write, lease expiry and refused request.
// Default: silent. A nil logger keeps the default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// AllowUnauthenticatedWrites lets POST and DELETE through when no token is configured. Without
// it (the default) such writes get 403. It has no effect when a token is configured.
func AllowUnauthenticatedWrites() Option {
	return optionFunc(func(c *config) { c.unauthenticated = true })
}

// WithReadTimeout bounds how long a request to the agent may take to deliver its body, counted
// from when the handler starts (the headers are in by then): past it the read fails, a POST gets
// 408 and the connection is closed. The agent is a handler on the application's server, which
// may have no ReadTimeout at all; without this bound a client with a valid token could hold a
// connection forever by stalling its body. The agent sets the deadline through
// http.ResponseController.SetReadDeadline, for requests that have a body only, and it replaces
// the server's ReadTimeout deadline for that request; a ResponseWriter that cannot set deadlines
// (a middleware wrapper without Unwrap) leaves only the server's own timeouts. Headers and idle
// keep-alive connections are the server's to bound: README.md lists the http.Server timeouts to
// set. Default: 10 s. New panics unless d > 0.
func WithReadTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.readTimeout = d })
}

// WithRequestCounter adds the service's request count to every GET as "requestsTotal", so
// gc-tuner can derive QPS from the same request as the GC figures instead of also scraping
// /metrics. f returns the cumulative number of requests the service has handled since the
// process started; it must never go down. It is called once per GET, concurrently with the
// service and with other GETs, so it must be cheap and safe for concurrent use: an
// atomic.Uint64's Load method is ideal. Default, and with a nil f: none, and GET omits the
// field.
func WithRequestCounter(f func() uint64) Option {
	return optionFunc(func(c *config) { c.requestCounter = f })
}
