package agent_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/gctuner/gc-tuner/agent"
)

// Mount the agent on the service's own mux, then let gc-tuner (here: plain HTTP calls) lower
// GOGC under a one-minute lease and release it again.
func Example() {
	a := agent.New(agent.WithToken("change-me"), agent.WithBounds(25, 800, 64<<20))
	mux := http.NewServeMux()
	mux.Handle("/debug/gctuner", a.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call := func(method, body string) {
		req, _ := http.NewRequest(method, srv.URL+"/debug/gctuner", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer change-me")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Println(method, resp.StatusCode, strings.Contains(string(b), `"gogc":50`))
	}
	call(http.MethodPost, `{"gogc": 50, "memoryLimitBytes": null, "leaseSeconds": 60, "owner": "example"}`)
	call(http.MethodGet, "")
	call(http.MethodPost, `{"gogc": 5, "leaseSeconds": 60, "owner": "example"}`) // below minGOGC
	call(http.MethodDelete, "")
	// Output:
	// POST 200 true
	// GET 200 true
	// POST 422 false
	// DELETE 200 true
}

// Count the requests the service handles and let the agent report the count, so gc-tuner reads
// QPS from the same GET as the GC figures.
func ExampleWithRequestCounter() {
	var handled atomic.Uint64
	mux := http.NewServeMux()
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		fmt.Fprintln(w, "done")
	})
	mux.Handle("/debug/gctuner", agent.New(agent.WithRequestCounter(handled.Load)).Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for range 3 {
		get("/work")
	}
	fmt.Println(strings.Contains(get("/debug/gctuner"), `"requestsTotal":3`))
	// Output: true
}
