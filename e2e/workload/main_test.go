package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRoutesServeEverySource(t *testing.T) {
	cfg := testConfig(t, "-live-mib", "1", "-gctuner-token", "tok")
	svc := newService(cfg)
	drv := newDriver("http://127.0.0.1:1/work", 1, schedule{Kind: "off"})
	srv := httptest.NewServer(routes(cfg, svc, drv, newCacheControl(svc), slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	get := func(path string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if len(header) == 2 {
			req.Header.Set(header[0], header[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get("/work?bytes=1000"); code != 200 {
		t.Errorf("/work: %d", code)
	}
	if code, _ := get("/work?bytes=x"); code != 400 {
		t.Errorf("/work?bytes=x: %d", code)
	}
	code, metrics := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, name := range []string{
		"go_gc_heap_live_bytes ", "go_gc_gogc_percent ", "go_gc_gomemlimit_bytes ",
		"go_cpu_classes_gc_total_cpu_seconds_total ", "go_cpu_classes_gc_mark_idle_cpu_seconds_total ",
		"go_gc_cycles_total_gc_cycles_total ", "go_sched_pauses_total_gc_seconds_bucket", "go_memstats_heap_alloc_bytes ",
		"go_gc_duration_seconds", `http_requests_total{code="200",handler="work",method="get"} 1`,
		`http_requests_total{code="400",handler="work",method="get"} 1`,
		`http_request_duration_seconds_count{code="200",handler="work",method="get"} 1`,
		"workload_load_target_qps ", "workload_leaked_bytes ", "process_cpu_seconds_total ",
	} {
		if !strings.Contains(metrics, "\n"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	code, vars := get("/debug/vars")
	var doc map[string]json.RawMessage
	if code != 200 || json.Unmarshal([]byte(vars), &doc) != nil || doc["memstats"] == nil || doc["workload"] == nil {
		t.Errorf("/debug/vars: %d %.200s", code, vars)
	}
	if code, _ := get("/debug/gctuner"); code != 401 {
		t.Errorf("/debug/gctuner without the token: %d", code)
	}
	// requestsTotal counts what http_requests_total{handler="work"} counts, the refused request too.
	if code, body := get("/debug/gctuner", "Authorization", "Bearer tok"); code != 200 ||
		!strings.Contains(body, `"writesEnabled":true`) || !strings.Contains(body, `"requestsTotal":2,`) {
		t.Errorf("/debug/gctuner: %d %.200s", code, body)
	}
	if code, body := get("/load"); code != 200 || !strings.Contains(body, `"schedule":"off"`) {
		t.Errorf("/load: %d %s", code, body)
	}
}

func TestLoadEndpoint(t *testing.T) {
	d := newDriver("http://127.0.0.1:1/work", 1, schedule{Kind: "off", QPS: 10, BurstPeriod: 1e9, BurstDuty: 0.5})
	for _, tt := range []struct {
		method, query string
		code          int
		kind          string
	}{
		{http.MethodPost, "?schedule=burst&qps=5&burst_qps=50", 200, "burst"},
		{http.MethodPost, "?schedule=sine", 400, "burst"},
		{http.MethodPut, "?schedule=off", 200, "off"},
		{http.MethodDelete, "", 405, "off"},
	} {
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, httptest.NewRequest(tt.method, "/load"+tt.query, nil))
		s, _, _ := d.current()
		if rec.Code != tt.code || s.Kind != tt.kind {
			t.Errorf("%s %s: %d, schedule %s", tt.method, tt.query, rec.Code, s.Kind)
		}
	}
}

func TestWithoutTheAgentOnlyItsRouteIsGone(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		agent int
	}{
		{[]string{"-live-mib", "1"}, http.StatusOK}, // no token: reads are open
		{[]string{"-live-mib", "1", "-gctuner-agent=false"}, http.StatusNotFound},
	} {
		cfg := testConfig(t, tt.args...)
		svc := newService(cfg)
		drv := newDriver("http://127.0.0.1:1/work", 1, schedule{Kind: "off"})
		srv := httptest.NewServer(routes(cfg, svc, drv, newCacheControl(svc), slog.New(slog.NewTextHandler(io.Discard, nil))))
		for path, want := range map[string]int{"/debug/gctuner": tt.agent, "/metrics": 200, "/debug/vars": 200} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%v: %s answered %d, want %d", tt.args, path, resp.StatusCode, want)
			}
		}
		srv.Close()
	}
}
