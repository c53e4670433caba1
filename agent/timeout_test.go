package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A client with a valid token that sends its headers and then trickles (or stalls) the body must
// not hold the connection: the agent bounds the rest of the request with a read deadline even on
// a server with no timeouts at all (httptest's has none), over a real loopback connection.
func TestSlowClientIsCutWithinTheReadTimeout(t *testing.T) {
	const bound = 300 * time.Millisecond
	// Generous: the machine is shared; without the deadline the request would never end.
	const slack = 3 * time.Second
	tests := []struct {
		name       string
		method     string
		declared   int    // Content-Length
		sent       string // the part of the body sent before stalling
		trickle    bool   // keep sending one byte every 50 ms instead of stalling
		status     int    // the answer, if one is due before the connection closes
		keepsAlive bool   // the connection must stay usable afterwards
	}{
		{"POST body stalls", http.MethodPost, 100, `{"gogc":`, false, http.StatusRequestTimeout, false},
		{"POST body trickles", http.MethodPost, 4000, `{"owner":"`, true, http.StatusRequestTimeout, false},
		{"POST no body byte at all", http.MethodPost, 60, "", false, http.StatusRequestTimeout, false},
		// The agent does not read these bodies; the server discards them after the handler,
		// which would block on the client too.
		{"DELETE with a stalled body", http.MethodDelete, 100, "x", false, http.StatusOK, false},
		{"GET with a stalled body", http.MethodGet, 100, "", false, http.StatusOK, false},
		{"complete POST in time", http.MethodPost, -1, post("150", "null", 5, "op"), false, http.StatusOK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			startAt(t, "100", "")
			a, _ := newTestAgent(t, WithToken(testToken), WithReadTimeout(bound))
			srv := httptest.NewServer(a.Handler())
			defer srv.Close()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if !strings.HasPrefix(conn.RemoteAddr().String(), "127.0.0.1:") {
				t.Fatalf("not over loopback: %v", conn.RemoteAddr())
			}
			declared := tt.declared
			if declared < 0 {
				declared = len(tt.sent)
			}
			start := time.Now()
			fmt.Fprintf(conn, "%s / HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", tt.method, testToken, declared, tt.sent)
			stop := make(chan struct{})
			defer close(stop)
			if tt.trickle {
				go func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(50 * time.Millisecond):
							if _, err := conn.Write([]byte("a")); err != nil {
								return
							}
						}
					}
				}()
			}
			_ = conn.SetReadDeadline(start.Add(bound + slack))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer %v after the headers (bound %v): %v", time.Since(start), bound, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.keepsAlive {
				// The deadline was for that request only: after waiting longer than the bound on
				// the idle connection, the next request on it still works.
				time.Sleep(2 * bound)
				fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer %s\r\n\r\n", testToken)
				_ = conn.SetReadDeadline(time.Now().Add(slack))
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("second request on the kept-alive connection: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("second request: status %d", resp.StatusCode)
				}
				return
			}
			// The server closes the connection within the bound: nothing more comes.
			if n, err := br.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("connection still open %v after the headers: read %d, %v", time.Since(start), n, err)
			}
			if took := time.Since(start); took > bound+slack {
				t.Fatalf("cut after %v, bound %v", took, bound)
			}
		})
	}
}

func TestReadTimeoutOption(t *testing.T) {
	tests := []struct {
		name   string
		opts   []Option
		want   time.Duration
		panics bool
	}{
		{"default", nil, 10 * time.Second, false},
		{"set", []Option{WithReadTimeout(2 * time.Second)}, 2 * time.Second, false},
		{"zero", []Option{WithReadTimeout(0)}, 0, true},
		{"negative", []Option{WithReadTimeout(-time.Second)}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if tt.panics != (r != nil) || (r != nil && !strings.Contains(fmt.Sprint(r), "WithReadTimeout")) {
					t.Fatalf("panic %v, want one: %v", r, tt.panics)
				}
			}()
			if a := New(tt.opts...); a.cfg.readTimeout != tt.want {
				t.Fatalf("readTimeout %v, want %v", a.cfg.readTimeout, tt.want)
			}
		})
	}
}
