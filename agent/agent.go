package agent

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// Agent serves a service's GC state and applies leased GOGC / memory limit writes.
// Create it with New; it is safe for concurrent use.
type Agent struct {
	cfg     config
	tokens  *tokenSource
	startup settings

	// Injected so tests can drive lease expiry without sleeping; New sets the real ones.
	now       func() time.Time
	afterFunc func(time.Duration, func()) stopper

	// mu serialises every write and lease transition: read-modify-write of two runtime knobs
	// must look atomic to concurrent requests.
	mu    sync.Mutex
	lease *lease
	gen   uint64 // bumped on every lease change; a timer that fires for an old gen does nothing
}

type stopper interface{ Stop() bool }

type lease struct {
	owner     string
	expiresAt time.Time
	timer     stopper
	gen       uint64
	// Which knobs the lease changed: expiry restores only those, so a lease that set only GOGC
	// leaves a memory limit the application set itself alone.
	setGOGC, setLimit bool
}

// New returns an Agent configured by opts. It reads the startup GOGC and GOMEMLIMIT from the
// environment (as the runtime does) to know what to restore. It panics on contradictory options
// (see WithBounds and WithMaxLease).
func New(opts ...Option) *Agent {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		panic(err.Error())
	}
	return &Agent{
		cfg:     cfg,
		tokens:  &tokenSource{static: cleanToken(cfg.token), path: cfg.tokenFile},
		startup: startupSettings(os.Getenv),
		now:     time.Now,
		afterFunc: func(d time.Duration, f func()) stopper {
			return time.AfterFunc(d, f)
		},
	}
}

// Handler serves GET (state), POST (leased write) and DELETE (release now) on whatever path the
// application mounts it; /debug/gctuner is the path gc-tuner looks for by default.
func (a *Agent) Handler() http.Handler {
	return http.HandlerFunc(a.serveHTTP)
}

func (a *Agent) serveHTTP(w http.ResponseWriter, r *http.Request) {
	a.boundBodyRead(w, r)
	write := r.Method == http.MethodPost || r.Method == http.MethodDelete
	if !write && r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
		a.fail(w, r, http.StatusMethodNotAllowed, "method "+logValue(r.Method)+" is not allowed", "")
		return
	}
	if err := a.authorize(r, write); err != nil {
		if err.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gc-tuner"`)
		}
		a.fail(w, r, err.status, err.msg, err.detail)
		return
	}
	switch r.Method {
	case http.MethodPost:
		a.servePost(w, r)
	case http.MethodDelete:
		a.serveDelete(w, r)
	default:
		writeJSON(w, http.StatusOK, a.status())
	}
}

// boundBodyRead gives a request with a body WithReadTimeout to deliver it. The application's
// server may have no ReadTimeout, and then a client (even one with a valid token) that stalls its
// body would hold the connection forever: in our io.ReadAll for a POST, or, for a body the agent
// does not read, in the server's discarding of it after the handler. A bodyless request has
// nothing left to read, and its connection may already have the server's background read
// pending, so it is left alone. Headers and idle keep-alives are the server's to bound (its
// ReadHeaderTimeout and IdleTimeout, see README.md); net/http resets the deadline before the
// next request on the connection.
func (a *Agent) boundBodyRead(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.cfg.readTimeout))
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		a.cfg.logger.Warn("gc-tuner agent: cannot bound the request body read", "error", err)
	}
	// ErrNotSupported: a ResponseWriter wrapper without Unwrap (or a test recorder); the body is
	// still capped at maxBodyBytes, and the server's own timeouts are all that bound its time.
}

func (a *Agent) servePost(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		a.fail(w, r, http.StatusUnsupportedMediaType, "Content-Type must be application/json", "")
		return
	}
	req, rerr := decodeRequest(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if rerr == nil {
		rerr = a.cfg.validateRequest(req)
	}
	if rerr != nil {
		a.fail(w, r, rerr.status, rerr.msg, rerr.logMsg)
		return
	}
	res, c := a.apply(req)
	if c != nil {
		a.fail(w, r, http.StatusConflict, c.message(identity), c.message(logValue))
		return
	}
	a.cfg.logger.Info("gc-tuner agent: applied", "owner", logValue(*req.Owner),
		"gogc", res.New.GOGC, "memoryLimitBytes", res.New.MemoryLimitBytes,
		"previousGOGC", res.Previous.GOGC, "previousMemoryLimitBytes", res.Previous.MemoryLimitBytes,
		"leaseSeconds", *req.LeaseSeconds)
	writeJSON(w, http.StatusOK, res)
}

// serveDelete releases the lease now. ?owner= (optional) must match the holder.
func (a *Agent) serveDelete(w http.ResponseWriter, r *http.Request) {
	owner, rerr := deleteOwner(r)
	if rerr != nil {
		a.fail(w, r, rerr.status, rerr.msg, rerr.logMsg)
		return
	}
	res, c := a.release(owner)
	if c != nil {
		a.fail(w, r, http.StatusConflict, c.message(identity), c.message(logValue))
		return
	}
	a.cfg.logger.Info("gc-tuner agent: released", "released", res.Released,
		"gogc", res.New.GOGC, "memoryLimitBytes", res.New.MemoryLimitBytes)
	writeJSON(w, http.StatusOK, res)
}

// writeResult is the body of a successful POST or DELETE.
type writeResult struct {
	Previous settings   `json:"previous"`
	New      settings   `json:"new"`
	Lease    *leaseView `json:"lease"`
	Released bool       `json:"released"` // DELETE only: whether a lease was held
}

type leaseView struct {
	Owner            string    `json:"owner"`
	ExpiresAt        time.Time `json:"expiresAt"`
	RemainingSeconds float64   `json:"remainingSeconds"`
}

// conflict is a write refused because another owner holds the lease. Both owners came from
// clients, so the message is rendered twice: whole for the client (the owners are validated and
// at most maxOwnerBytes), through logValue for the log.
type conflict struct {
	holder string
	until  time.Time // POST
	asked  string    // DELETE: the ?owner= that did not match
}

func (c *conflict) message(show func(string) string) string {
	if c.asked != "" {
		return "lease held by " + show(c.holder) + ", not " + show(c.asked)
	}
	return "lease held by " + show(c.holder) + " until " + c.until.Format(time.RFC3339)
}

func identity(s string) string { return s }

// apply sets the requested knobs and (re)starts the lease. It returns a conflict when another
// owner holds an unexpired lease.
func (a *Agent) apply(req writeRequest) (writeResult, *conflict) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.expireIfDueLocked(now)
	if a.lease != nil && a.lease.owner != *req.Owner {
		return writeResult{}, &conflict{holder: a.lease.owner, until: a.lease.expiresAt}
	}
	prev := currentSettings()
	next := prev
	if req.GOGC != nil {
		prev.GOGC = setGCPercent(*req.GOGC)
		next.GOGC = *req.GOGC
	}
	if req.MemoryLimitBytes != nil {
		prev.MemoryLimitBytes = debug.SetMemoryLimit(*req.MemoryLimitBytes)
		next.MemoryLimitBytes = *req.MemoryLimitBytes
	}
	l := a.lease
	if l == nil {
		l = &lease{owner: *req.Owner}
	} else {
		l.timer.Stop()
	}
	a.gen++
	d := time.Duration(*req.LeaseSeconds) * time.Second
	gen := a.gen
	l.gen, l.expiresAt = gen, now.Add(d)
	l.setGOGC = l.setGOGC || req.GOGC != nil
	l.setLimit = l.setLimit || req.MemoryLimitBytes != nil
	l.timer = a.afterFunc(d, func() { a.expire(gen) })
	a.lease = l
	return writeResult{Previous: prev, New: next, Lease: a.leaseViewLocked(now)}, nil
}

func (a *Agent) release(owner string) (writeResult, *conflict) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireIfDueLocked(a.now())
	if a.lease == nil {
		cur := currentSettings()
		return writeResult{Previous: cur, New: cur}, nil
	}
	if owner != "" && owner != a.lease.owner {
		return writeResult{}, &conflict{holder: a.lease.owner, asked: owner}
	}
	prev, next := a.restoreLocked()
	return writeResult{Previous: prev, New: next, Released: true}, nil
}

func (a *Agent) expire(gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lease != nil && a.lease.gen == gen {
		a.expireLocked()
	}
}

// expireIfDueLocked covers a timer that has not run yet although the lease is over (a busy
// process, or a test clock), so no request ever sees an expired lease as held.
func (a *Agent) expireIfDueLocked(now time.Time) {
	if a.lease != nil && !now.Before(a.lease.expiresAt) {
		a.expireLocked()
	}
}

func (a *Agent) expireLocked() {
	owner := a.lease.owner
	_, next := a.restoreLocked()
	a.cfg.logger.Warn("gc-tuner agent: lease expired, startup values restored", "owner", logValue(owner),
		"gogc", next.GOGC, "memoryLimitBytes", next.MemoryLimitBytes)
}

// restoreLocked puts back the startup value of each knob the lease changed and drops the lease.
func (a *Agent) restoreLocked() (prev, next settings) {
	prev = currentSettings()
	next = prev
	l := a.lease
	l.timer.Stop()
	if l.setGOGC {
		setGCPercent(a.startup.GOGC)
		next.GOGC = a.startup.GOGC
	}
	if l.setLimit {
		debug.SetMemoryLimit(a.startup.MemoryLimitBytes)
		next.MemoryLimitBytes = a.startup.MemoryLimitBytes
	}
	a.lease = nil
	a.gen++
	return prev, next
}

func (a *Agent) leaseViewLocked(now time.Time) *leaseView {
	if a.lease == nil {
		return nil
	}
	return &leaseView{
		Owner:            a.lease.owner,
		ExpiresAt:        a.lease.expiresAt.UTC(),
		RemainingSeconds: a.lease.expiresAt.Sub(now).Seconds(),
	}
}

// statusView is the GET body; README.md documents it field by field.
type statusView struct {
	GoVersion        string         `json:"goVersion"`
	GOMAXPROCS       int            `json:"gomaxprocs"`
	GOGC             int            `json:"gogc"`
	MemoryLimitBytes int64          `json:"memoryLimitBytes"`
	Startup          settings       `json:"startup"`
	Lease            *leaseView     `json:"lease"`
	Bounds           boundsView     `json:"bounds"`
	WritesEnabled    bool           `json:"writesEnabled"`
	RequestsTotal    *uint64        `json:"requestsTotal,omitempty"`
	Metrics          map[string]any `json:"metrics"`
	Pauses           pauseSummary   `json:"pauses"`
}

type boundsView struct {
	MinGOGC             int   `json:"minGOGC"`
	MaxGOGC             int   `json:"maxGOGC"`
	MinMemoryLimitBytes int64 `json:"minMemoryLimitBytes"`
	MaxLeaseSeconds     int64 `json:"maxLeaseSeconds"`
}

func (a *Agent) status() statusView {
	a.mu.Lock()
	now := a.now()
	a.expireIfDueLocked(now)
	cur := currentSettings()
	lv := a.leaseViewLocked(now)
	a.mu.Unlock()
	goVersion, procs := runtimeInfo()
	m, pauses := readMetrics()
	// Called outside a.mu: it is the application's code, and a slow one must not hold up writes.
	var requests *uint64
	if f := a.cfg.requestCounter; f != nil {
		n := f()
		requests = &n
	}
	return statusView{
		GoVersion:        goVersion,
		GOMAXPROCS:       procs,
		GOGC:             cur.GOGC,
		MemoryLimitBytes: cur.MemoryLimitBytes,
		Startup:          a.startup,
		Lease:            lv,
		Bounds: boundsView{
			MinGOGC:             a.cfg.minGOGC,
			MaxGOGC:             a.cfg.maxGOGC,
			MinMemoryLimitBytes: a.cfg.minMemoryLimitBytes,
			MaxLeaseSeconds:     int64(a.cfg.maxLease.Seconds()),
		},
		WritesEnabled: a.tokens.configured() || a.cfg.unauthenticated,
		RequestsTotal: requests,
		Metrics:       m,
		Pauses:        pauses,
	}
}

type errorView struct {
	Error string `json:"error"`
}

// fail answers {"error": msg}. The log records logMsg instead when it is set: a version of msg
// with client-supplied values cut by logValue, or (a token file problem) one with details the
// client must not see.
func (a *Agent) fail(w http.ResponseWriter, r *http.Request, status int, msg, logMsg string) {
	if logMsg == "" {
		logMsg = msg
	}
	a.cfg.logger.Warn("gc-tuner agent: refused", "method", logValue(r.Method), "status", status, "error", logMsg)
	writeJSON(w, status, errorView{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing useful to do with the error
}
