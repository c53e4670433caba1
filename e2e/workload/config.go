package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is everything the workload can be told. Each field has a flag and an environment
// variable (the flag wins), so a Kubernetes manifest can set all of it through env.
type config struct {
	Listen string

	GarbageBytes    int
	ObjectSizes     []int
	LiveMiB         int
	LiveObjectBytes int
	CacheChurn      int
	LeakMiBPerSec   float64
	LeakMaxMiB      float64
	WorkDelay       time.Duration
	SessionBytes    int
	SessionTTL      time.Duration

	Load            schedule
	LoadConcurrency int
	Duration        time.Duration
	ShutdownTimeout time.Duration

	Token               string
	TokenFile           string
	AllowUnauthWrites   bool
	MinGOGC, MaxGOGC    int
	MinMemoryLimitBytes int64
	MaxLease            time.Duration
	RequestCounter      bool
	Agent               bool

	BytedanceLimit     string
	BytedanceThreshold float64
}

// envFlag is one flag with its environment variable; registered in order for the help text.
type envFlag struct {
	name, env, usage string
	set              func(string) error
	def              string
}

func intVar(p *int) func(string) error {
	return func(s string) error {
		v, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("not an integer")
		}
		*p = v
		return nil
	}
}

func floatVar(p *float64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return errors.New("not a number")
		}
		*p = v
		return nil
	}
}

func durationVar(p *time.Duration) func(string) error {
	return func(s string) error {
		v, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("not a duration (e.g. 500ms, 20s, 2m)")
		}
		*p = v
		return nil
	}
}

func stringVar(p *string) func(string) error {
	return func(s string) error { *p = s; return nil }
}

func boolVar(p *bool) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("not a boolean (true/false/1/0)")
		}
		*p = v
		return nil
	}
}

func sizesVar(p *[]int) func(string) error {
	return func(s string) error {
		var out []int
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v <= 0 {
				return fmt.Errorf("%q is not a positive integer", f)
			}
			out = append(out, v)
		}
		*p = out
		return nil
	}
}

func (c *config) flags() []envFlag {
	l := &c.Load
	return []envFlag{
		{"listen", "WORKLOAD_LISTEN", "address to serve on (host:port; port 0 picks one)", stringVar(&c.Listen), "127.0.0.1:8080"},
		{"garbage-bytes", "WORKLOAD_GARBAGE_BYTES", "bytes of short-lived garbage each /work request allocates", intVar(&c.GarbageBytes), "65536"},
		{"object-sizes", "WORKLOAD_OBJECT_SIZES", "comma-separated sizes (bytes) the garbage is cut into, used in turn", sizesVar(&c.ObjectSizes), "64,512,4096"},
		{"live-mib", "WORKLOAD_LIVE_MIB", "live set: MiB held in an in-memory cache for the process's lifetime", intVar(&c.LiveMiB), "32"},
		{"live-object-bytes", "WORKLOAD_LIVE_OBJECT_BYTES", "size of one cache entry (a chain of 64-byte records linked by pointers)", intVar(&c.LiveObjectBytes), "4096"},
		{"cache-churn", "WORKLOAD_CACHE_CHURN", "cache entries replaced per /work request (the old ones become garbage)", intVar(&c.CacheChurn), "1"},
		{"leak-mib-per-sec", "WORKLOAD_LEAK_MIB_PER_SEC", "memory leaked (kept reachable forever) per second", floatVar(&c.LeakMiBPerSec), "0"},
		{"leak-max-mib", "WORKLOAD_LEAK_MAX_MIB", "stop leaking after this many MiB (0: never stop)", floatVar(&c.LeakMaxMiB), "0"},
		{"session-bytes", "WORKLOAD_SESSION_BYTES", "bytes each /work request keeps alive for -session-ttl (a live set proportional to QPS)", intVar(&c.SessionBytes), "0"},
		{"session-ttl", "WORKLOAD_SESSION_TTL", "how long each request's -session-bytes stay alive", durationVar(&c.SessionTTL), "10s"},
		{"work-delay", "WORKLOAD_WORK_DELAY", "simulated I/O wait inside each /work request", durationVar(&c.WorkDelay), "0s"},
		{"load", "WORKLOAD_LOAD", "built-in load schedule: off, steady, burst or ramp", stringVar(&l.Kind), "steady"},
		{"qps", "WORKLOAD_QPS", "steady rate; the low rate of burst; the start rate of ramp", floatVar(&l.QPS), "50"},
		{"burst-qps", "WORKLOAD_BURST_QPS", "burst: the high rate of the square wave (default 4 x qps)", floatVar(&l.BurstQPS), "0"},
		{"burst-period", "WORKLOAD_BURST_PERIOD", "burst: length of one low+high cycle", durationVar(&l.BurstPeriod), "20s"},
		{"burst-duty", "WORKLOAD_BURST_DUTY", "burst: fraction of each period at the high rate (0..1)", floatVar(&l.BurstDuty), "0.5"},
		{"ramp-to-qps", "WORKLOAD_RAMP_TO_QPS", "ramp: the rate reached at the end of the ramp (default 4 x qps)", floatVar(&l.RampToQPS), "0"},
		{"ramp-duration", "WORKLOAD_RAMP_DURATION", "ramp: time to go linearly from qps to ramp-to-qps, then hold", durationVar(&l.RampDuration), "60s"},
		{"load-concurrency", "WORKLOAD_LOAD_CONCURRENCY", "most /work requests the built-in driver has in flight (excess ticks are dropped)", intVar(&c.LoadConcurrency), "16"},
		{"duration", "WORKLOAD_DURATION", "exit by itself (with the summary) after this long; 0 runs until SIGTERM", durationVar(&c.Duration), "0s"},
		{"shutdown-timeout", "WORKLOAD_SHUTDOWN_TIMEOUT", "on SIGTERM, how long the built-in load's requests, then the server's open requests, may take to finish before their connections are closed", durationVar(&c.ShutdownTimeout), defaultShutdownTimeout.String()},
		{"gctuner-token", "GC_TUNER_TOKEN", "bearer token the agent at /debug/gctuner requires", stringVar(&c.Token), ""},
		{"gctuner-token-file", "GC_TUNER_TOKEN_FILE", "file holding that token (re-read when it changes); overrides -gctuner-token", stringVar(&c.TokenFile), ""},
		{"gctuner-allow-unauthenticated-writes", "GC_TUNER_ALLOW_UNAUTHENTICATED_WRITES", "let the agent accept writes without a token when none is configured", boolVar(&c.AllowUnauthWrites), "false"},
		{"gctuner-min-gogc", "GC_TUNER_MIN_GOGC", "lowest GOGC the agent accepts", intVar(&c.MinGOGC), "10"},
		{"gctuner-max-gogc", "GC_TUNER_MAX_GOGC", "highest GOGC the agent accepts", intVar(&c.MaxGOGC), "1000"},
		{"gctuner-min-memory-limit", "GC_TUNER_MIN_MEMORY_LIMIT", "lowest memory limit the agent accepts (GOMEMLIMIT syntax, e.g. 64MiB)", byteCountVar(&c.MinMemoryLimitBytes), "32MiB"},
		{"gctuner-max-lease", "GC_TUNER_MAX_LEASE", "longest lease the agent grants", durationVar(&c.MaxLease), "30m"},
		{"gctuner-request-counter", "GC_TUNER_REQUEST_COUNTER", "register the /work request counter with the agent (its GET then reports requestsTotal)", boolVar(&c.RequestCounter), "true"},
		{"gctuner-agent", "GC_TUNER_AGENT", "serve the gc-tuner agent at /debug/gctuner (false: a service without it, tuned through its env alone)", boolVar(&c.Agent), "true"},
		{"bytedance-limit", "WORKLOAD_BYTEDANCE_LIMIT", "gctuner_bytedance builds: the memory limit the 70% threshold is taken of (GOMEMLIMIT syntax; default: cgroup limit, else GOMEMLIMIT)", stringVar(&c.BytedanceLimit), ""},
		{"bytedance-threshold", "WORKLOAD_BYTEDANCE_THRESHOLD", "gctuner_bytedance builds: threshold as a fraction of that limit", floatVar(&c.BytedanceThreshold), "0.7"},
	}
}

func byteCountVar(p *int64) func(string) error {
	return func(s string) error {
		v, ok := parseByteCount(s)
		if !ok {
			return errors.New("not a byte count (digits with an optional B, KiB, MiB, GiB or TiB suffix)")
		}
		*p = v
		return nil
	}
}

// parseConfig applies defaults, then environment variables, then flags.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("workload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	specs := c.flags()
	for _, f := range specs {
		if err := f.set(f.def); err != nil {
			panic(fmt.Sprintf("default of -%s: %v", f.name, err))
		}
	}
	for _, f := range specs {
		if v, ok := lookupEnv(getenv, f.env); ok {
			if err := f.set(v); err != nil {
				return c, fmt.Errorf("%s=%q: %v", f.env, v, err)
			}
		}
	}
	for _, f := range specs {
		f := f
		fs.Func(f.name, f.usage+" (env "+f.env+", default "+strconv.Quote(f.def)+")", f.set)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, c.validate()
}

func lookupEnv(getenv func(string) string, k string) (string, bool) {
	v := getenv(k)
	return v, v != ""
}

func (c *config) validate() error {
	switch {
	case c.GarbageBytes < 0:
		return errors.New("-garbage-bytes must be >= 0")
	case c.LiveMiB < 0:
		return errors.New("-live-mib must be >= 0")
	case c.LiveObjectBytes <= 0:
		return errors.New("-live-object-bytes must be > 0")
	case c.CacheChurn < 0:
		return errors.New("-cache-churn must be >= 0")
	case c.LeakMiBPerSec < 0 || c.LeakMaxMiB < 0:
		return errors.New("-leak-mib-per-sec and -leak-max-mib must be >= 0")
	case c.SessionBytes < 0 || (c.SessionBytes > 0 && c.SessionTTL < sessionTick):
		return errors.New("-session-bytes must be >= 0, and -session-ttl at least 100ms when it is set")
	case c.LoadConcurrency < 1:
		return errors.New("-load-concurrency must be >= 1")
	case c.ShutdownTimeout <= 0:
		return errors.New("-shutdown-timeout must be > 0")
	case c.MinGOGC < 0 || c.MaxGOGC < c.MinGOGC:
		return errors.New("need 0 <= -gctuner-min-gogc <= -gctuner-max-gogc")
	case c.MaxLease < time.Second:
		return errors.New("-gctuner-max-lease must be at least 1s")
	case c.BytedanceThreshold <= 0 || c.BytedanceThreshold > 1:
		return errors.New("-bytedance-threshold must be in (0, 1]")
	}
	return c.Load.normalize()
}

// parseByteCount reads GOMEMLIMIT syntax: digits with an optional B, KiB, MiB, GiB or TiB suffix.
func parseByteCount(s string) (int64, bool) {
	mult := int64(1)
	digits := s
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) && len(s) > len(u.suffix) {
			mult, digits = u.mult, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult || digits[0] == '+' {
		return 0, false
	}
	return n * mult, true
}

// usageError marks configuration errors (exit status 2, like flag's).
func exitOnConfigError(err error) {
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "workload:", err)
	os.Exit(2)
}
