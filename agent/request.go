package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxBodyBytes caps a write's body; a valid one is well under 200 bytes.
const maxBodyBytes = 4 << 10

// maxOwnerBytes caps the lease owner (after decoding), which is echoed in every GET. gc-tuner's
// owner is "gc-tuner/<namespace>/<policy>": up to 9 + 63 + 1 + 253 = 326 bytes, so the cap leaves
// room for the longest namespace and policy names Kubernetes allows.
const maxOwnerBytes = 512

// writeRequest is the POST body. A nil gogc or memoryLimitBytes (absent or null) leaves that
// setting as it is.
type writeRequest struct {
	GOGC             *int    `json:"gogc"`
	MemoryLimitBytes *int64  `json:"memoryLimitBytes"`
	LeaseSeconds     *int64  `json:"leaseSeconds"`
	Owner            *string `json:"owner"`
}

var knownFields = map[string]bool{"gogc": true, "memoryLimitBytes": true, "leaseSeconds": true, "owner": true}

// requestError is a rejected request; status is 400, 408, 413 or 422.
type requestError struct {
	status int
	msg    string
	// logMsg, when set, is what the log records instead of msg: msg may echo a client value in
	// full to that client, the log keeps only a bounded, quoted part of it (logValue).
	logMsg string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func unprocessable(format string, args ...any) *requestError {
	return &requestError{status: http.StatusUnprocessableEntity, msg: fmt.Sprintf(format, args...)}
}

// decodeRequest parses a write body strictly: one JSON object, no unknown fields, no trailing
// data, leaseSeconds and owner present. body should be capped by http.MaxBytesReader.
func decodeRequest(body io.Reader) (writeRequest, *requestError) {
	var req writeRequest
	data, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, &requestError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("body exceeds %d bytes", tooBig.Limit)}
		}
		// The read deadline the handler sets (WithReadTimeout) passed: a slow or stalled client.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return req, &requestError{status: http.StatusRequestTimeout,
				msg: "the request body did not arrive in time"}
		}
		return req, badRequest("reading body: %v", err)
	}
	// First pass: exact key names. encoding/json matches struct fields case-insensitively, so
	// DisallowUnknownFields alone would accept {"GOGC": 50}; a strict API names its fields once.
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return req, badRequest("invalid JSON body: %v", err)
	}
	// A second value (or garbage) after the object means the client sent something else than it
	// thinks; refusing it beats applying half of it.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, badRequest("invalid JSON body: trailing data after the object")
	}
	if raw == nil {
		return req, badRequest("invalid JSON body: want an object, got null")
	}
	for k := range raw {
		if !knownFields[k] {
			return req, badRequest("invalid JSON body: unknown field %s", logValue(k))
		}
	}
	// Before encoding/json decodes the owner: it would replace invalid UTF-8 and lone surrogate
	// escapes with U+FFFD, after which "\ud800" and "\udfff" are the same owner and one client
	// could renew, hence take over, another's lease. (With duplicate keys both decoders keep the
	// last value, so this checks the owner that is used.)
	if o, ok := raw["owner"]; ok {
		if msg := rawOwnerProblem(o); msg != "" {
			return req, badRequest("%s", msg)
		}
	}
	typed := json.NewDecoder(bytes.NewReader(data))
	typed.DisallowUnknownFields()
	if err := typed.Decode(&req); err != nil {
		e := badRequest("invalid JSON body: %v", err)
		// The type error quotes the offending literal (a number may be 4 KiB of digits): the
		// client gets it whole, the log a bounded part.
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			clipped := *typeErr
			clipped.Value = logValue(typeErr.Value)
			e.logMsg = "invalid JSON body: " + clipped.Error()
		}
		return writeRequest{}, e
	}
	if req.LeaseSeconds == nil {
		return writeRequest{}, badRequest("leaseSeconds is required")
	}
	if req.Owner == nil {
		return writeRequest{}, badRequest("owner is required")
	}
	return req, nil
}

// validate checks req against the agent's bounds; every message names the bound it broke.
func (c *config) validateRequest(req writeRequest) *requestError {
	if g := req.GOGC; g != nil {
		if *g < c.minGOGC {
			return unprocessable("gogc %d is below the minimum %d (minGOGC)", *g, c.minGOGC)
		}
		if *g > c.maxGOGC {
			return unprocessable("gogc %d is above the maximum %d (maxGOGC)", *g, c.maxGOGC)
		}
	}
	if m := req.MemoryLimitBytes; m != nil && *m < c.minMemoryLimitBytes {
		return unprocessable("memoryLimitBytes %d is below the minimum %d (minMemoryLimitBytes)",
			*m, c.minMemoryLimitBytes)
	}
	maxLease := int64(c.maxLease.Seconds())
	if l := *req.LeaseSeconds; l < 1 {
		return unprocessable("leaseSeconds %d is below the minimum 1", l)
	} else if l > maxLease {
		return unprocessable("leaseSeconds %d is above the maximum %d (maxLeaseSeconds)", l, maxLease)
	}
	return validateOwner(*req.Owner)
}

func validateOwner(owner string) *requestError {
	if msg := ownerProblem(owner); msg != "" {
		return unprocessable("%s", msg)
	}
	return nil
}

// ownerProblem checks a decoded owner (a POST's, or DELETE's ?owner=): 1..maxOwnerBytes bytes of
// printable UTF-8. The message never echoes the owner, which may be huge or hold control
// characters.
func ownerProblem(owner string) string {
	if owner == "" {
		return "owner must not be empty"
	}
	if len(owner) > maxOwnerBytes {
		return fmt.Sprintf("owner is %d bytes, above the maximum %d", len(owner), maxOwnerBytes)
	}
	if !utf8.ValidString(owner) {
		return "owner is not valid UTF-8"
	}
	for _, r := range owner {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("owner contains the non-printable character %U", r)
		}
	}
	return ""
}

// rawOwnerProblem checks the owner as the client wrote it in JSON, escapes included, for what
// decoding would hide: invalid UTF-8 and lone surrogate escapes (both become U+FFFD) and control
// characters, raw or escaped (\n, \u0000, \u0085: they would reach logs and GET answers). A U+FFFD
// the client wrote itself, raw or as \ufffd, is an ordinary character. A value that is not a
// string is left to the typed decoder, which refuses it.
func rawOwnerProblem(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return ""
	}
	s := raw[1 : len(raw)-1]
	control := func(r rune) string {
		return fmt.Sprintf("owner contains the control character %U", r)
	}
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return fmt.Sprintf("owner is not valid UTF-8 (byte %d of the string)", i)
			}
			if unicode.IsControl(r) {
				return control(r)
			}
			i += size
			continue
		}
		if i+1 >= len(s) { // cannot happen in JSON the decoder accepted
			return "owner has a malformed escape"
		}
		switch s[i+1] {
		case 'b':
			return control('\b')
		case 'f':
			return control('\f')
		case 'n':
			return control('\n')
		case 'r':
			return control('\r')
		case 't':
			return control('\t')
		case 'u':
			r, ok := hex4(s[i+2:])
			if !ok {
				return "owner has a malformed escape"
			}
			i += 6
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by an escaped low one is a character.
				lo, ok := rune(0), false
				if r < 0xdc00 && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					lo, ok = hex4(s[i+2:])
					ok = ok && 0xdc00 <= lo && lo <= 0xdfff
				}
				if !ok {
					return fmt.Sprintf("owner contains a lone surrogate \\u%04x; owners must be valid UTF-8", r)
				}
				r = utf16.DecodeRune(r, lo)
				i += 6
			}
			if unicode.IsControl(r) {
				return control(r)
			}
		default: // \" \\ \/
			i += 2
		}
	}
	return ""
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// deleteOwner reads DELETE's optional ?owner=. A query that cannot be read exactly is refused:
// url.Values.Get would drop a malformed pair and read "no owner", and with the owner given twice
// it is unclear which one the client meant; either way the wrong lease could be released.
func deleteOwner(r *http.Request) (string, *requestError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", badRequest("malformed query string")
	}
	owners := q["owner"]
	if len(owners) > 1 {
		return "", badRequest("owner given %d times; give it at most once", len(owners))
	}
	if len(owners) == 0 || owners[0] == "" { // an empty owner means none, as before
		return "", nil
	}
	if msg := ownerProblem(owners[0]); msg != "" {
		return "", badRequest("%s", msg)
	}
	return owners[0], nil
}
