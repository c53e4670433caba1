package agent

import (
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
