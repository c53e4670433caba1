package agent

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		status  int    // 0: accepted
		errPart string // substring of the error message
		check   func(t *testing.T, r writeRequest)
	}{
		{name: "both knobs", body: `{"gogc":150,"memoryLimitBytes":268435456,"leaseSeconds":60,"owner":"op"}`,
			check: func(t *testing.T, r writeRequest) {
				if *r.GOGC != 150 || *r.MemoryLimitBytes != 268435456 || *r.LeaseSeconds != 60 || *r.Owner != "op" {
					t.Errorf("decoded %+v", r)
				}
			}},
		{name: "nulls leave knobs alone", body: `{"gogc":null,"memoryLimitBytes":null,"leaseSeconds":5,"owner":"op"}`,
			check: func(t *testing.T, r writeRequest) {
				if r.GOGC != nil || r.MemoryLimitBytes != nil {
					t.Errorf("want nil knobs, got %+v", r)
				}
			}},
		{name: "absent knobs", body: `{"leaseSeconds":5,"owner":"op"}`},
		{name: "trailing whitespace is fine", body: "{\"leaseSeconds\":5,\"owner\":\"op\"}\n\t "},
		{name: "unknown field", body: `{"gogc":100,"leaseSeconds":5,"owner":"op","extra":1}`, status: 400, errPart: `unknown field "extra"`},
		{name: "field name in another case", body: `{"GOGC":100,"leaseSeconds":5,"owner":"op"}`, status: 400, errPart: `unknown field "GOGC"`},
		{name: "trailing object", body: `{"leaseSeconds":5,"owner":"op"}{}`, status: 400, errPart: "trailing data"},
		{name: "trailing garbage", body: `{"leaseSeconds":5,"owner":"op"} x`, status: 400, errPart: "trailing data"},
		{name: "not an object", body: `[1,2]`, status: 400, errPart: "invalid JSON"},
		{name: "null body", body: `null`, status: 400, errPart: "got null"},
		{name: "empty body", body: ``, status: 400, errPart: "invalid JSON"},
		{name: "truncated", body: `{"gogc":1`, status: 400, errPart: "invalid JSON"},
		{name: "float gogc", body: `{"gogc":1.5,"leaseSeconds":5,"owner":"op"}`, status: 400, errPart: "gogc"},
		{name: "string gogc", body: `{"gogc":"100","leaseSeconds":5,"owner":"op"}`, status: 400, errPart: "gogc"},
		{name: "exponent gogc", body: `{"gogc":1e2,"leaseSeconds":5,"owner":"op"}`, status: 400, errPart: "gogc"},
		{name: "limit overflows int64", body: `{"memoryLimitBytes":9223372036854775808,"leaseSeconds":5,"owner":"op"}`, status: 400, errPart: "memoryLimitBytes"},
		{name: "missing lease", body: `{"gogc":100,"owner":"op"}`, status: 400, errPart: "leaseSeconds is required"},
		{name: "null lease", body: `{"gogc":100,"leaseSeconds":null,"owner":"op"}`, status: 400, errPart: "leaseSeconds is required"},
		{name: "missing owner", body: `{"gogc":100,"leaseSeconds":5}`, status: 400, errPart: "owner is required"},
		{name: "too large", body: `{"owner":"` + strings.Repeat("a", maxBodyBytes) + `","leaseSeconds":5}`, status: 413, errPart: "exceeds"},
		// Owners are vetted as the client wrote them: encoding/json would turn each of these
		// into U+FFFD (or a control character), so two different owners would become one.
		{name: "owner invalid UTF-8", body: "{\"leaseSeconds\":5,\"owner\":\"op\xff\"}", status: 400, errPart: "owner is not valid UTF-8"},
		{name: "owner truncated UTF-8 sequence", body: "{\"leaseSeconds\":5,\"owner\":\"op\xc3\"}", status: 400, errPart: "owner is not valid UTF-8"},
		{name: "owner UTF-8-encoded surrogate", body: "{\"leaseSeconds\":5,\"owner\":\"\xed\xa0\x80\"}", status: 400, errPart: "owner is not valid UTF-8"},
		{name: "owner lone high surrogate", body: `{"leaseSeconds":5,"owner":"\ud800"}`, status: 400, errPart: `lone surrogate \ud800`},
		{name: "owner lone low surrogate", body: `{"leaseSeconds":5,"owner":"\udfff"}`, status: 400, errPart: `lone surrogate \udfff`},
		{name: "owner high surrogate at the end", body: `{"leaseSeconds":5,"owner":"op\uD83D"}`, status: 400, errPart: "lone surrogate"},
		{name: "owner high surrogate then a letter", body: `{"leaseSeconds":5,"owner":"\ud800\u0041"}`, status: 400, errPart: "lone surrogate"},
		{name: "owner surrogates in the wrong order", body: `{"leaseSeconds":5,"owner":"\ude00\ud83d"}`, status: 400, errPart: "lone surrogate"},
		{name: "owner escaped newline", body: `{"leaseSeconds":5,"owner":"op\nforged"}`, status: 400, errPart: "control character U+000A"},
		{name: "owner escaped NUL", body: `{"leaseSeconds":5,"owner":"\u0000"}`, status: 400, errPart: "control character U+0000"},
		{name: "owner raw DEL", body: "{\"leaseSeconds\":5,\"owner\":\"op\x7f\"}", status: 400, errPart: "control character U+007F"},
		{name: "owner escaped C1 control", body: `{"leaseSeconds":5,"owner":"op\u0085"}`, status: 400, errPart: "control character U+0085"},
		{name: "owner raw C1 control", body: "{\"leaseSeconds\":5,\"owner\":\"op\xc2\x9b\"}", status: 400, errPart: "control character U+009B"},
		{name: "owner surrogate pair", body: `{"leaseSeconds":5,"owner":"op-\ud83d\ude00"}`,
			check: func(t *testing.T, r writeRequest) {
				if *r.Owner != "op-\U0001F600" {
					t.Errorf("owner %q", *r.Owner)
				}
			}},
		{name: "owner U+FFFD written out is a character like any other", body: "{\"leaseSeconds\":5,\"owner\":\"\\ufffd\xef\xbf\xbd\"}",
			check: func(t *testing.T, r writeRequest) {
				if *r.Owner != "\ufffd\ufffd" {
					t.Errorf("owner %q", *r.Owner)
				}
			}},
		{name: "owner escapes of printable characters", body: `{"leaseSeconds":5,"owner":"gc-tuner\/default\u002fcheck\u006Fut\""}`,
			check: func(t *testing.T, r writeRequest) {
				if *r.Owner != `gc-tuner/default/checkout"` {
					t.Errorf("owner %q", *r.Owner)
				}
			}},
		{name: "owner not a string", body: `{"leaseSeconds":5,"owner":7}`, status: 400, errPart: "owner"},
		{name: "null owner", body: `{"leaseSeconds":5,"owner":null}`, status: 400, errPart: "owner is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := decodeRequest(http.MaxBytesReader(nil, readCloser(tt.body), maxBodyBytes))
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if tt.check != nil {
					tt.check(t, req)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %+v, want %d", req, tt.status)
			}
			if err.status != tt.status || !strings.Contains(err.msg, tt.errPart) {
				t.Fatalf("got %d %q, want %d containing %q", err.status, err.msg, tt.status, tt.errPart)
			}
		})
	}
}

func TestValidateRequestNamesTheBound(t *testing.T) {
	cfg := defaultConfig()
	WithBounds(20, 500, 64<<20).apply(&cfg)
	WithMaxLease(10 * time.Minute).apply(&cfg)
	i := func(v int) *int { return &v }
	i64 := func(v int64) *int64 { return &v }
	s := func(v string) *string { return &v }
	tests := []struct {
		name    string
		req     writeRequest
		errPart string // empty: valid
	}{
		{"inside", writeRequest{GOGC: i(20), MemoryLimitBytes: i64(64 << 20), LeaseSeconds: i64(600), Owner: s("op")}, ""},
		{"no limit is allowed", writeRequest{MemoryLimitBytes: i64(1<<63 - 1), LeaseSeconds: i64(1), Owner: s("op")}, ""},
		{"gogc low", writeRequest{GOGC: i(19), LeaseSeconds: i64(5), Owner: s("op")}, "gogc 19 is below the minimum 20 (minGOGC)"},
		{"gogc off", writeRequest{GOGC: i(-1), LeaseSeconds: i64(5), Owner: s("op")}, "(minGOGC)"},
		{"gogc high", writeRequest{GOGC: i(501), LeaseSeconds: i64(5), Owner: s("op")}, "gogc 501 is above the maximum 500 (maxGOGC)"},
		{"limit low", writeRequest{MemoryLimitBytes: i64(64<<20 - 1), LeaseSeconds: i64(5), Owner: s("op")}, "(minMemoryLimitBytes)"},
		{"limit negative", writeRequest{MemoryLimitBytes: i64(-1), LeaseSeconds: i64(5), Owner: s("op")}, "(minMemoryLimitBytes)"},
		{"lease zero", writeRequest{LeaseSeconds: i64(0), Owner: s("op")}, "leaseSeconds 0 is below the minimum 1"},
		{"lease long", writeRequest{LeaseSeconds: i64(601), Owner: s("op")}, "leaseSeconds 601 is above the maximum 600 (maxLeaseSeconds)"},
		{"owner empty", writeRequest{LeaseSeconds: i64(5), Owner: s("")}, "owner must not be empty"},
		{"owner long", writeRequest{LeaseSeconds: i64(5), Owner: s(strings.Repeat("o", 513))}, "above the maximum 512"},
		// The longest owner gc-tuner writes: "gc-tuner/" + a 63-byte namespace + "/" + a 253-byte name.
		{"operator's longest owner", writeRequest{LeaseSeconds: i64(5), Owner: s("gc-tuner/" + strings.Repeat("n", 63) + "/" + strings.Repeat("p", 253))}, ""},
		{"owner control char", writeRequest{LeaseSeconds: i64(5), Owner: s("op\n")}, "non-printable"},
		{"owner bad utf8", writeRequest{LeaseSeconds: i64(5), Owner: s("op\xff")}, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cfg.validateRequest(tt.req)
			if tt.errPart == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil || err.status != http.StatusUnprocessableEntity || !strings.Contains(err.msg, tt.errPart) {
				t.Fatalf("got %v, want 422 containing %q", err, tt.errPart)
			}
		})
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func readCloser(s string) nopCloser { return nopCloser{bytes.NewReader([]byte(s))} }

// FuzzDecodeRequest: decoding never panics, accepts only bodies that are one JSON object with
// the documented fields, never lets the decoder replace part of an owner (so two owners cannot
// decode to the same one), and whatever it accepts survives a round trip unchanged. The second
// input is a configured token: trimming it (WithToken, WithTokenFile) and the client's
// "Bearer <token>" header must agree, or a token with stray whitespace locks everyone out.
func FuzzDecodeRequest(f *testing.F) {
	huge := strings.Repeat("o", 3000)
	for _, seed := range []struct{ body, token string }{
		{`{"gogc":150,"memoryLimitBytes":268435456,"leaseSeconds":60,"owner":"op"}`, testToken},
		{`{"gogc":null,"leaseSeconds":1,"owner":"x"}`, testToken + "\n"},
		{`{"leaseSeconds":5,"owner":"op"}{}`, " \t" + testToken + "\r\n"},
		{`{"GOGC":1,"leaseSeconds":5,"owner":"op"}`, "\n"},
		{`{"gogc":1e2}`, ""},
		{`null`, "  "}, {`[]`, "\u00a0tok\u0085"}, {`{}`, "a b"}, {``, "\x00"}, {`{"owner":"\u0000"}`, "\xff"},
		// Owners encoding/json would alter: invalid UTF-8, lone or misordered surrogates, controls.
		{"{\"leaseSeconds\":5,\"owner\":\"op\xff\"}", testToken},
		{"{\"leaseSeconds\":5,\"owner\":\"\xed\xa0\x80\"}", testToken},
		{`{"leaseSeconds":5,"owner":"\ud800"}`, testToken},
		{`{"leaseSeconds":5,"owner":"\udfff"}`, testToken},
		{`{"leaseSeconds":5,"owner":"\ud800\u0041"}`, testToken},
		{`{"leaseSeconds":5,"owner":"\ude00\ud83d"}`, testToken},
		{`{"leaseSeconds":5,"owner":"\ud83d\ude00"}`, testToken},
		{`{"leaseSeconds":5,"owner":"\ufffd"}`, testToken},
		{`{"leaseSeconds":5,"owner":"op\n"}`, testToken},
		{`{"leaseSeconds":5,"owner":"op\u0085"}`, testToken},
		{`{"leaseSeconds":5,"owner":"a","owner":"\ud800"}`, testToken},
		// Huge owners: over the owner bound but inside the body cap, and over the body cap.
		{`{"leaseSeconds":5,"owner":"` + huge + `"}`, testToken},
		{`{"leaseSeconds":5,"owner":"` + huge + huge + `"}`, testToken},
	} {
		f.Add([]byte(seed.body), seed.token)
	}
	cfg := defaultConfig()
	f.Fuzz(func(t *testing.T, body []byte, token string) {
		checkTokenTrimming(t, token)
		req, err := decodeRequest(http.MaxBytesReader(nil, readCloser(string(body)), maxBodyBytes))
		if err != nil {
			if err.status != http.StatusBadRequest && err.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("decode failed with status %d: %v", err.status, err)
			}
			return
		}
		if len(body) > maxBodyBytes {
			t.Fatalf("accepted a %d-byte body", len(body))
		}
		if req.LeaseSeconds == nil || req.Owner == nil {
			t.Fatalf("accepted without required fields: %q", body)
		}
		var keys map[string]json.RawMessage
		if json.Unmarshal(body, &keys) != nil {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		for k := range keys {
			if !knownFields[k] {
				t.Fatalf("accepted unknown field %q", k)
			}
		}
		owner := *req.Owner
		if !utf8.ValidString(owner) {
			t.Fatalf("accepted an owner that is not valid UTF-8: %q", owner)
		}
		for _, r := range owner {
			if unicode.IsControl(r) {
				t.Fatalf("accepted an owner with the control character %U: %q", r, owner)
			}
		}
		// A U+FFFD in the owner must have been written by the client, never put there by the
		// decoder in place of something else.
		if strings.ContainsRune(owner, utf8.RuneError) && !bytes.Contains(body, []byte("\uFFFD")) &&
			!bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			t.Fatalf("the decoder replaced part of the owner: %q decoded to %q", body, owner)
		}
		again, merr := json.Marshal(req)
		if merr != nil {
			t.Fatal(merr)
		}
		req2, err2 := decodeRequest(http.MaxBytesReader(nil, readCloser(string(again)), maxBodyBytes))
		if err2 != nil && err2.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("re-encoded request %s rejected: %v", again, err2)
		}
		if err2 == nil {
			b1, _ := json.Marshal(req2)
			if !bytes.Equal(b1, again) {
				t.Fatalf("round trip changed %s into %s", again, b1)
			}
		}
		_ = cfg.validateRequest(req) // must not panic on any decoded value
	})
}

// checkTokenTrimming: a configured token is either refused at startup (nothing left after
// trimming) or matches what a client sends for it, with or without the surrounding whitespace.
func checkTokenTrimming(t *testing.T, token string) {
	t.Helper()
	cfg := defaultConfig()
	WithToken(token).apply(&cfg)
	verr := cfg.validate()
	want := cleanToken(token)
	switch {
	case token == "":
		if verr != nil {
			t.Fatalf("WithToken(\"\") (no token) refused: %v", verr)
		}
		return
	case want == "":
		if verr == nil {
			t.Fatalf("WithToken(%q) is only whitespace and was accepted", token)
		}
		return
	case verr != nil:
		t.Fatalf("WithToken(%q) refused: %v", token, verr)
	}
	if want != strings.TrimSpace(want) || cleanToken(want) != want {
		t.Fatalf("cleanToken(%q) = %q still has surrounding whitespace or is not stable", token, want)
	}
	for _, sent := range []string{token, want} {
		got, ok := bearer("Bearer " + sent)
		if !ok || !tokensEqual(got, want) {
			t.Fatalf("configured %q: a client sending %q is not recognised (got %q, %v)", token, sent, got, ok)
		}
	}
}
