package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"unicode/utf8"
)

// discardHandler keeps the agent silent by default (slog.DiscardHandler needs Go 1.24).
type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }

// maxLoggedValueBytes is how much of one client-supplied value a log record keeps.
const maxLoggedValueBytes = 64

// logValue renders a client-supplied value (owner, method, field name, number) for a log record:
// quoted with %q, so a newline or an escape sequence cannot forge a record even through a naive
// handler, and cut to its first 64 bytes plus its length, so a huge value (a 500 KB ?owner=)
// cannot flood the log. The cut backs up to a character boundary so valid UTF-8 stays readable.
// Messages sent to the client use it too where they echo such a value.
func logValue(s string) string {
	if len(s) <= maxLoggedValueBytes {
		return strconv.Quote(s)
	}
	cut := maxLoggedValueBytes
	for cut > maxLoggedValueBytes-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...(%d bytes)", s[:cut], len(s))
}
