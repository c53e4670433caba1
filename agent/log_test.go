package agent

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestLogValue(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"op-a", `"op-a"`},
		{"line\nforged=1", `"line\nforged=1"`},
		{"\x1b[31mred", `"\x1b[31mred"`},
		{strings.Repeat("a", 64), `"` + strings.Repeat("a", 64) + `"`},
		{strings.Repeat("a", 65), `"` + strings.Repeat("a", 64) + `"...(65 bytes)`},
		{strings.Repeat("a", 500<<10), `"` + strings.Repeat("a", 64) + `"...(512000 bytes)`},
		// The cut never splits a character: 63 ASCII bytes and a 2-byte é keep 63 bytes.
		{strings.Repeat("a", 63) + "éé", `"` + strings.Repeat("a", 63) + `"...(67 bytes)`},
		{strings.Repeat("a", 63) + "\xff\xff", `"` + strings.Repeat("a", 63) + `\xff"...(65 bytes)`},
	}
	for _, tt := range tests {
		if got := logValue(tt.in); got != tt.want {
			t.Errorf("logValue(%.80q) = %.120s, want %.120s", tt.in, got, tt.want)
		}
	}
}

// Whatever a client sends reaches the log quoted and cut to its first 64 bytes, so a huge value
// cannot flood the log and a newline cannot forge a record, even through a naive log handler.
func TestLoggedClientValuesAreCappedAndQuoted(t *testing.T) {
	long := strings.Repeat("A", maxOwnerBytes)
	other := strings.Repeat("A", maxOwnerBytes-1) + "B"
	clipped := `"` + strings.Repeat("A", 64) + fmt.Sprintf(`"...(%d bytes)`, maxOwnerBytes)
	tests := []struct {
		name   string
		holder string // owner of a lease taken first; "" none
		method string
		target string
		body   string
		expire bool // advance the clock past the lease afterwards
		status int
		want   []string // substrings of the log
	}{
		{"DELETE with a 500 KB owner", "op-a", http.MethodDelete, "/?owner=" + strings.Repeat("A", 500<<10), "", false, 400,
			[]string{"owner is 512000 bytes"}},
		{"DELETE owner with a newline", "op-a", http.MethodDelete, "/?owner=op%0Aforged=1", "", false, 400, nil},
		{"DELETE conflict, long owners", long, http.MethodDelete, "/?owner=" + other, "", false, 409,
			[]string{"lease held by " + clipped + ", not \"" + strings.Repeat("A", 64) + fmt.Sprintf(`"...(%d bytes)`, maxOwnerBytes)}},
		{"POST conflict, long owners", long, http.MethodPost, "/", post("150", "null", 60, other), false, 409,
			[]string{"lease held by " + clipped + " until "}},
		{"POST applied, long owner", "", http.MethodPost, "/", post("150", "null", 60, long), false, 200,
			[]string{"owner=" + clipped}},
		{"lease of a long owner expires", "", http.MethodPost, "/", post("150", "null", 60, long), true, 200,
			[]string{"lease expired", "owner=" + clipped}},
		{"owner of 600 bytes", "", http.MethodPost, "/", post("150", "null", 60, strings.Repeat("A", 600)), false, 422,
			[]string{"owner is 600 bytes, above the maximum 512"}},
		{"unknown field of 3000 bytes", "", http.MethodPost, "/", `{"` + strings.Repeat("A", 3000) + `":1}`, false, 400,
			[]string{`unknown field "` + strings.Repeat("A", 64) + `"...(3000 bytes)`}},
		{"integer of 3000 digits", "", http.MethodPost, "/", `{"gogc":1` + strings.Repeat("0", 3000) + `,"leaseSeconds":5,"owner":"op"}`, false, 400,
			[]string{"...(3008 bytes)"}},
		{"method of 4000 bytes", "", strings.Repeat("A", 4000), "/", "", false, 405,
			[]string{`method "` + strings.Repeat("A", 64) + `"...(4000 bytes) is not allowed`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			startAt(t, "100", "")
			log := &lineLog{}
			a, clock := newTestAgent(t, WithToken(testToken))
			h := a.Handler()
			if tt.holder != "" {
				if r := do(t, h, http.MethodPost, "/", post("120", "null", 60, tt.holder), testToken); r.status != 200 {
					t.Fatalf("holder POST: %d %s", r.status, r.raw)
				}
			}
			a.cfg.logger = slog.New(log) // only what the request under test logs
			if r := do(t, h, tt.method, tt.target, tt.body, testToken); r.status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tt.status, r.raw)
			}
			if tt.expire {
				clock.Advance(time.Minute)
			}
			got := log.String()
			for _, line := range log.lines(t) {
				if len(line) > 600 {
					t.Errorf("a %d-byte log line: %.300q", len(line), line)
				}
			}
			if run := longestRun(got, '0'); run > 64 {
				t.Errorf("%d digits of the client's number logged", run)
			}
			if run := longestRun(got, 'A'); run > 64 {
				t.Errorf("%d bytes of a client value logged: %.300q", run, got)
			}
			if strings.Contains(got, "\nforged") {
				t.Errorf("a client value forged a log line: %q", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("log lacks %.200q:\n%.2000s", w, got)
				}
			}
		})
	}
}

func longestRun(s string, c byte) int {
	best, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}
