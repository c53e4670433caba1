package agent

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuthorization(t *testing.T) {
	startAt(t, "100", "")
	body := post("100", "null", 5, "op")
	tests := []struct {
		name   string
		opts   []Option
		method string
		header string // Authorization header; empty: none
		status int
	}{
		{"no token: read open", nil, http.MethodGet, "", 200},
		{"no token: write refused", nil, http.MethodPost, "", 403},
		{"no token: delete refused", nil, http.MethodDelete, "", 403},
		{"no token, opted in: write allowed", []Option{AllowUnauthenticatedWrites()}, http.MethodPost, "", 200},
		{"empty token counts as none", []Option{WithToken("")}, http.MethodPost, "", 403},
		{"token: read without header", []Option{WithToken(testToken)}, http.MethodGet, "", 401},
		{"token: write without header", []Option{WithToken(testToken)}, http.MethodPost, "", 401},
		{"token: not a bearer scheme", []Option{WithToken(testToken)}, http.MethodPost, "Basic " + testToken, 401},
		{"token: empty bearer", []Option{WithToken(testToken)}, http.MethodPost, "Bearer ", 401},
		{"token: wrong", []Option{WithToken(testToken)}, http.MethodPost, "Bearer nope", 403},
		{"token: prefix of the right one", []Option{WithToken(testToken)}, http.MethodPost, "Bearer s3cret", 403},
		{"token: wrong read", []Option{WithToken(testToken)}, http.MethodGet, "Bearer nope", 403},
		{"token: right", []Option{WithToken(testToken)}, http.MethodPost, "Bearer " + testToken, 200},
		{"token: scheme is case-insensitive", []Option{WithToken(testToken)}, http.MethodGet, "bearer " + testToken, 200},
		{"token wins over opt-in", []Option{WithToken(testToken), AllowUnauthenticatedWrites()}, http.MethodPost, "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newTestAgent(t, tt.opts...)
			b := ""
			if tt.method == http.MethodPost {
				b = body
			}
			req := newRequest(tt.method, b, "")
			req.Header.Set("Content-Type", "application/json")
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			r := serve(t, a.Handler(), req)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %v", r.header)
			}
			if tt.status >= 400 && r.body["error"] == "" {
				t.Errorf("error response without a message: %s", r.raw)
			}
		})
	}
}

func TestTokenFileIsReReadWhenItChanges(t *testing.T) {
	startAt(t, "100", "")
	path := filepath.Join(t.TempDir(), "token")
	write := func(s string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		// Explicit mtimes: two writes within the filesystem's timestamp granularity must still
		// differ (the size alone would not tell "aaaa" from "bbbb").
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour)
	write("first-token\n", t0)
	a, _ := newTestAgent(t, WithTokenFile(path))
	h := a.Handler()
	get := func(tok string) int { return do(t, h, http.MethodGet, "/", "", tok).status }

	if s := get("first-token"); s != 200 {
		t.Fatalf("first token (trailing newline trimmed): %d", s)
	}
	write("other-token", t0.Add(time.Second)) // same length as "first-token"
	if s := get("first-token"); s != 403 {
		t.Fatalf("old token after rotation: %d", s)
	}
	if s := get("other-token"); s != 200 {
		t.Fatalf("rotated token: %d", s)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if r := do(t, h, http.MethodGet, "/", "", "other-token"); r.status != 503 || !strings.Contains(r.raw, "token file") {
		t.Fatalf("missing token file: %d %s", r.status, r.raw)
	}
	write("  \n", t0.Add(2*time.Second))
	if s := get(""); s != 503 {
		t.Fatalf("empty token file must refuse everything, got %d", s)
	}
	write("third", t0.Add(3*time.Second))
	if s := get("third"); s != 200 {
		t.Fatalf("token file recreated: %d", s)
	}
}

func TestTokensEqual(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{{"abc", "abc", true}, {"abc", "abd", false}, {"abc", "ab", false}, {"", "", true}, {"a", "", false}} {
		if got := tokensEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("tokensEqual(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

// The comparison must be crypto/subtle's, never ==, bytes.Equal or strings.Compare, whose time
// depends on the first differing byte.
func TestTokenComparisonIsConstantTime(t *testing.T) {
	src, err := os.ReadFile("auth.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	if !strings.Contains(s, "subtle.ConstantTimeCompare") {
		t.Fatal("auth.go does not use subtle.ConstantTimeCompare")
	}
	for _, bad := range []string{"got == want", "want == got", "bytes.Equal", "strings.Compare", "got != want"} {
		if strings.Contains(s, bad) {
			t.Errorf("auth.go compares tokens with %s", bad)
		}
	}
}

// A token with surrounding whitespace (a Secret or variable written with echo ends in a newline)
// is trimmed on every path, as the token file always was: otherwise the client's
// "Bearer <token>" could never match it and every request would get 403.
func TestConfiguredTokenIsTrimmedOnEveryPath(t *testing.T) {
	startAt(t, "100", "")
	tests := []struct {
		name       string
		via        string // "option", "env" (the service passes an environment variable to WithToken) or "file"
		configured string
		sent       string // what the client puts after "Bearer "
		status     int
	}{
		{"option, trailing newline", "option", testToken + "\n", testToken, 200},
		{"option, CRLF and spaces around", "option", "  " + testToken + " \r\n", testToken, 200},
		{"option, leading tab", "option", "\t" + testToken, testToken, 200},
		{"option, inner space is part of the token", "option", "s3cret token\n", "s3cret token", 200},
		{"option, trimmed token still required", "option", testToken + "\n", "nope", 403},
		{"env, trailing newline", "env", testToken + "\n", testToken, 200},
		{"env, CRLF", "env", testToken + "\r\n", testToken, 200},
		{"file, trailing newline", "file", testToken + "\n", testToken, 200},
		{"file, CRLF and spaces around", "file", "  " + testToken + " \r\n", testToken, 200},
		{"file, trimmed token still required", "file", testToken + "\n", "nope", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opt Option
			switch tt.via {
			case "option":
				opt = WithToken(tt.configured)
			case "env":
				t.Setenv("GC_TUNER_TOKEN", tt.configured)
				opt = WithToken(os.Getenv("GC_TUNER_TOKEN"))
			case "file":
				path := filepath.Join(t.TempDir(), "token")
				if err := os.WriteFile(path, []byte(tt.configured), 0o600); err != nil {
					t.Fatal(err)
				}
				opt = WithTokenFile(path)
			}
			a, _ := newTestAgent(t, opt)
			h := a.Handler()
			if r := do(t, h, http.MethodGet, "/", "", tt.sent); r.status != tt.status {
				t.Fatalf("GET: status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.status != 200 {
				return
			}
			if r := do(t, h, http.MethodPost, "/", post("150", "null", 5, "op"), tt.sent); r.status != 200 {
				t.Fatalf("POST: status %d: %s", r.status, r.raw)
			}
		})
	}
}

// A token that is only whitespace was meant to be a token (the service asked for one), so New
// refuses it instead of silently running without authentication. An empty string still means
// "no token", as documented: that is how a service says it configured none.
func TestWhitespaceOnlyTokenIsRefusedAtStartup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	tests := []struct {
		name   string
		opts   func(t *testing.T) []Option
		panics string // substring of the panic message; empty: New must not panic
	}{
		{"newline only", func(*testing.T) []Option { return []Option{WithToken("\n")} }, "WithToken: the token is only whitespace"},
		{"spaces and tabs", func(*testing.T) []Option { return []Option{WithToken(" \t ")} }, "only whitespace"},
		{"from an environment variable", func(t *testing.T) []Option {
			t.Setenv("GC_TUNER_TOKEN", "\r\n")
			return []Option{WithToken(os.Getenv("GC_TUNER_TOKEN"))}
		}, "only whitespace"},
		{"next to unauthenticated writes", func(*testing.T) []Option {
			return []Option{AllowUnauthenticatedWrites(), WithToken("  ")}
		}, "only whitespace"},
		{"empty means no token", func(*testing.T) []Option { return []Option{WithToken("")} }, ""},
		{"a later WithTokenFile replaces it", func(*testing.T) []Option { return []Option{WithToken("\n"), WithTokenFile(path)} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts(t)
			var got string
			func() {
				defer func() {
					if r := recover(); r != nil {
						got = fmt.Sprint(r)
					}
				}()
				New(opts...)
			}()
			switch {
			case tt.panics == "" && got != "":
				t.Fatalf("New panicked: %s", got)
			case tt.panics != "" && !strings.Contains(got, tt.panics):
				t.Fatalf("New: panic %q, want one containing %q", got, tt.panics)
			}
		})
	}
}

// The client of a refused request learns that the token file is unavailable, never where it
// is: the path (and the reason) go to the agent's log only.
func TestTokenFileProblemsDoNotRevealThePath(t *testing.T) {
	startAt(t, "100", "")
	tests := []struct {
		name   string
		setup  func(t *testing.T, path string)
		reason string // in the log, next to the path
	}{
		{"missing", func(*testing.T, string) {}, "no such file"},
		{"empty", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(" \n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is empty"},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "secret-mount")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "gctuner-token")
			tt.setup(t, path)
			log := &lineLog{}
			a, _ := newTestAgent(t, WithTokenFile(path), WithLogger(slog.New(log)))
			for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
				r := do(t, a.Handler(), method, "/", "", testToken)
				if r.status != http.StatusServiceUnavailable {
					t.Fatalf("%s: status %d, want 503: %s", method, r.status, r.raw)
				}
				if r.body["error"] != "token file unavailable" {
					t.Errorf("%s: error %q, want the generic %q", method, r.body["error"], "token file unavailable")
				}
				for _, leak := range []string{dir, "secret-mount", "gctuner-token", tt.reason} {
					if strings.Contains(r.raw, leak) {
						t.Errorf("%s: the response reveals %q: %s", method, leak, r.raw)
					}
				}
			}
			if got := log.String(); !strings.Contains(got, path) || !strings.Contains(got, tt.reason) {
				t.Errorf("the log lacks the path and the reason (%q):\n%s", tt.reason, got)
			}
		})
	}
}
