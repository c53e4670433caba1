package agent

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenSource yields the configured bearer token. A file-backed token is re-read when the file's
// mtime or size changes: a stat per request is cheap next to the JSON work, and a rotated Secret
// then takes effect on the next request.
type tokenSource struct {
	static string
	path   string

	mu      sync.Mutex
	loaded  bool
	modTime time.Time
	size    int64
	cached  string
	err     error
}

// errTokenUnavailable wraps the reason a token file cannot be used. The wrapped error names the
// file; it goes to the agent's log only, the client gets tokenUnavailableMsg.
var errTokenUnavailable = errors.New("token file unavailable")

// tokenUnavailableMsg is all a client learns about a token file problem: its path and the
// reason (missing, a directory, empty) describe the pod's layout to whoever asks, token or not.
const tokenUnavailableMsg = "token file unavailable"

// cleanToken is the one normalisation every configured token goes through, whichever way it
// came in: WithToken (so also an environment variable the service passes to it) and
// WithTokenFile. It trims surrounding whitespace. Trimming is the cleaner choice over refusing
// such a token: the token a client sends is trimmed too (bearer below, and HTTP strips a header
// value's surrounding blanks), so an untrimmed token with whitespace could never match and
// would only lock every client out; the token file has always been trimmed, because a Secret
// or variable written with echo ends in a newline. One rule for all three paths. A token that
// is nothing but whitespace is still refused, at New (WithToken) or with 503 (a token file).
func cleanToken(s string) string { return strings.TrimSpace(s) }

// configured reports whether requests must authenticate.
func (t *tokenSource) configured() bool { return t.static != "" || t.path != "" }

func (t *tokenSource) current() (string, error) {
	if t.path == "" {
		return t.static, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.path)
	if err != nil {
		t.loaded = false
		return "", fmt.Errorf("%w: %v", errTokenUnavailable, err)
	}
	if t.loaded && fi.ModTime().Equal(t.modTime) && fi.Size() == t.size {
		return t.cached, t.err
	}
	data, err := os.ReadFile(t.path)
	t.loaded, t.modTime, t.size = true, fi.ModTime(), fi.Size()
	t.cached, t.err = cleanToken(string(data)), nil
	if err != nil {
		t.cached, t.err = "", fmt.Errorf("%w: %v", errTokenUnavailable, err)
	} else if t.cached == "" {
		t.err = fmt.Errorf("%w: %s is empty", errTokenUnavailable, t.path)
	}
	return t.cached, t.err
}

// authError carries the status a refused request gets.
type authError struct {
	status int
	msg    string // for the client
	detail string // for the log, when it says more than msg
}

func (e *authError) Error() string { return e.msg }

// authorize decides whether r may proceed. Writes need a token unless the app opted into
// unauthenticated writes; reads need one only when a token is configured.
func (a *Agent) authorize(r *http.Request, write bool) *authError {
	if !a.tokens.configured() {
		if write && !a.cfg.unauthenticated {
			return &authError{status: http.StatusForbidden,
				msg: "writes are disabled: no token is configured and unauthenticated writes are not allowed"}
		}
		return nil
	}
	want, err := a.tokens.current()
	if err != nil {
		return &authError{status: http.StatusServiceUnavailable, msg: tokenUnavailableMsg, detail: err.Error()}
	}
	got, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return &authError{status: http.StatusUnauthorized, msg: "missing bearer token"}
	}
	if !tokensEqual(got, want) {
		return &authError{status: http.StatusForbidden, msg: "wrong bearer token"}
	}
	return nil
}

func bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(prefix):])
	return tok, tok != ""
}

// tokensEqual compares in constant time. Hashing first makes the time independent of the lengths
// too, which subtle.ConstantTimeCompare alone does not hide.
func tokensEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
