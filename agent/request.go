package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode"
	"unicode/utf8"
)

// maxBodyBytes caps a write's body; a valid one is well under 200 bytes.
const maxBodyBytes = 4 << 10

// maxOwnerBytes caps the lease owner, which is echoed in every GET.
const maxOwnerBytes = 256

// writeRequest is the POST body. A nil gogc or memoryLimitBytes (absent or null) leaves that
// setting as it is.
type writeRequest struct {
	GOGC             *int    `json:"gogc"`
	MemoryLimitBytes *int64  `json:"memoryLimitBytes"`
	LeaseSeconds     *int64  `json:"leaseSeconds"`
	Owner            *string `json:"owner"`
}

var knownFields = map[string]bool{"gogc": true, "memoryLimitBytes": true, "leaseSeconds": true, "owner": true}

// requestError is a rejected body; status is 400, 413 or 422.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func unprocessable(format string, args ...any) *requestError {
	return &requestError{http.StatusUnprocessableEntity, fmt.Sprintf(format, args...)}
}

// decodeRequest parses a write body strictly: one JSON object, no unknown fields, no trailing
// data, leaseSeconds and owner present. body should be capped by http.MaxBytesReader.
func decodeRequest(body io.Reader) (writeRequest, *requestError) {
	var req writeRequest
	data, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, &requestError{http.StatusRequestEntityTooLarge,
				fmt.Sprintf("body exceeds %d bytes", tooBig.Limit)}
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
			return req, badRequest("invalid JSON body: unknown field %q", k)
		}
	}
	typed := json.NewDecoder(bytes.NewReader(data))
	typed.DisallowUnknownFields()
	if err := typed.Decode(&req); err != nil {
		return writeRequest{}, badRequest("invalid JSON body: %v", err)
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
	if owner == "" {
		return unprocessable("owner must not be empty")
	}
	if len(owner) > maxOwnerBytes {
		return unprocessable("owner is %d bytes, above the maximum %d", len(owner), maxOwnerBytes)
	}
	if !utf8.ValidString(owner) {
		return unprocessable("owner is not valid UTF-8")
	}
	for _, r := range owner {
		if !unicode.IsPrint(r) {
			return unprocessable("owner contains the non-printable character %U", r)
		}
	}
	return nil
}
