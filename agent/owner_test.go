package agent

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// ownerBody is a POST body with the owner written as raw JSON (quotes and escapes included), so a
// test can send what encoding/json would alter while decoding.
func ownerBody(gogc int, rawOwner string) string {
	return fmt.Sprintf(`{"gogc":%d,"leaseSeconds":60,"owner":%s}`, gogc, rawOwner)
}

// Owners that decode to the same string are the same owner: if the decoder turned invalid UTF-8
// or a lone surrogate into U+FFFD, a second client could renew (hence take over) a lease that is
// not its own. Such owners are refused before decoding (400) and the holder keeps its lease.
func TestOwnerThatDecodingWouldAlterCannotTakeOverALease(t *testing.T) {
	tests := []struct {
		name        string
		holder      string // raw JSON string
		holderCode  int
		holderOwner string // the lease owner GET reports afterwards; "" means no lease
		second      string // raw JSON string
		secondCode  int
	}{
		{"U+FFFD holder, lone surrogate second", `"\ufffd"`, 200, "\ufffd", `"\ud800"`, 400},
		{"U+FFFD holder, invalid UTF-8 second", `"op-\ufffd"`, 200, "op-\ufffd", "\"op-\xff\"", 400},
		{"U+FFFD holder, UTF-8-encoded surrogate second", `"\ufffd"`, 200, "\ufffd", "\"\xed\xa0\x80\"", 400},
		{"lone surrogates on both sides", `"\ud800"`, 400, "", `"\udfff"`, 400},
		{"invalid UTF-8 on both sides", "\"op\xfe\"", 400, "", "\"op\xff\"", 400},
		{"holder with a control character", `"op\u0007"`, 400, "", `"op"`, 200},
		{"a valid pair is its own owner", `"op-\ud83d\ude00"`, 200, "op-\U0001F600", `"op-\ud83d\ude01"`, 409},
		{"the same owner escaped differently renews", `"op-\u00e9"`, 200, "op-\u00e9", "\"op-\xc3\xa9\"", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			startAt(t, "100", "")
			a, _ := newTestAgent(t, WithToken(testToken))
			h := a.Handler()
			r := do(t, h, http.MethodPost, "/", ownerBody(150, tt.holder), testToken)
			if r.status != tt.holderCode {
				t.Fatalf("holder POST: %d, want %d: %s", r.status, tt.holderCode, r.raw)
			}
			r = do(t, h, http.MethodPost, "/", ownerBody(300, tt.second), testToken)
			if r.status != tt.secondCode {
				t.Fatalf("second POST: %d, want %d: %s", r.status, tt.secondCode, r.raw)
			}
			if r.status == http.StatusBadRequest && !strings.Contains(r.body["error"].(string), "owner") {
				t.Errorf("400 without a message naming the owner: %s", r.raw)
			}
			if tt.holderOwner == "" || tt.secondCode == 200 {
				return
			}
			g := do(t, h, http.MethodGet, "/", "", testToken)
			if got := lookup(t, g.body, "lease.owner"); got != tt.holderOwner {
				t.Errorf("lease owner %q, want the holder %q", got, tt.holderOwner)
			}
			if got := integer(t, g.body, "gogc"); got != 150 {
				t.Errorf("gogc %d: the refused owner changed it", got)
			}
		})
	}
}

// DELETE ?owner= is checked like a POST owner (400 with a JSON error), and a query the agent
// cannot read exactly (malformed escapes, the owner given twice) is refused rather than read as
// "no owner", which would release anyone's lease.
func TestDeleteOwnerQueryIsValidated(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		status  int
		errPart string
	}{
		{"invalid UTF-8", "owner=op-a%FF", 400, "owner is not valid UTF-8"},
		{"UTF-8-encoded surrogate", "owner=%ED%A0%80", 400, "owner is not valid UTF-8"},
		{"newline", "owner=op-a%0Aforged", 400, "non-printable character U+000A"},
		{"NUL", "owner=%00", 400, "non-printable character U+0000"},
		{"one byte over the bound", "owner=" + strings.Repeat("o", maxOwnerBytes+1), 400, "above the maximum 512"},
		{"500 KB", "owner=" + strings.Repeat("o", 500<<10), 400, "owner is 512000 bytes"},
		{"malformed escape", "owner=%zz", 400, "malformed query"},
		{"malformed escape in another parameter", "x=%zz&owner=op-a", 400, "malformed query"},
		{"owner twice, holder second", "owner=op-b&owner=op-a", 400, "owner given 2 times"},
		{"owner twice, holder first", "owner=op-a&owner=op-b", 400, "owner given 2 times"},
		{"another owner", "owner=op-b", 409, "lease held by op-a, not op-b"},
		{"the holder", "owner=op-a", 200, ""},
		{"the holder, escaped", "owner=op%2Da", 200, ""},
		{"no owner", "", 200, ""},
		{"empty owner means none", "owner=", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			startAt(t, "100", "")
			a, _ := newTestAgent(t, WithToken(testToken))
			h := a.Handler()
			if r := do(t, h, http.MethodPost, "/", post("150", "null", 60, "op-a"), testToken); r.status != 200 {
				t.Fatalf("POST: %d %s", r.status, r.raw)
			}
			r := do(t, h, http.MethodDelete, "/?"+tt.query, "", testToken)
			if r.status != tt.status {
				t.Fatalf("DELETE: %d, want %d: %.300s", r.status, tt.status, r.raw)
			}
			if tt.status == 200 {
				if r.body["released"] != true || currentGOGC() != 100 {
					t.Fatalf("not released: %s", r.raw)
				}
				return
			}
			if msg, _ := r.body["error"].(string); !strings.Contains(msg, tt.errPart) || len(msg) > 200 {
				t.Errorf("error %.300q, want a short message containing %q", msg, tt.errPart)
			}
			if currentGOGC() != 150 || lookup(t, do(t, h, http.MethodGet, "/", "", testToken).body, "lease.owner") != "op-a" {
				t.Errorf("a refused DELETE released the lease")
			}
		})
	}
}
