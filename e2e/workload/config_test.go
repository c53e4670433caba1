package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestConfigPrecedence(t *testing.T) {
	env := map[string]string{"WORKLOAD_QPS": "120", "WORKLOAD_LISTEN": "127.0.0.3:9000", "WORKLOAD_LOAD": "burst",
		"WORKLOAD_OBJECT_SIZES": "128, 1024", "GC_TUNER_MIN_MEMORY_LIMIT": "64MiB", "WORKLOAD_BURST_PERIOD": "4s",
		"GC_TUNER_ALLOW_UNAUTHENTICATED_WRITES": "true"}
	c, err := parseConfig([]string{"-qps", "7"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Load.QPS != 7 {
		t.Errorf("flag must win over env: qps %v", c.Load.QPS)
	}
	if c.Listen != "127.0.0.3:9000" || c.Load.Kind != "burst" || c.Load.BurstPeriod != 4*time.Second {
		t.Errorf("env not applied: %+v", c)
	}
	if len(c.ObjectSizes) != 2 || c.ObjectSizes[1] != 1024 || c.MinMemoryLimitBytes != 64<<20 || !c.AllowUnauthWrites {
		t.Errorf("env not parsed: %+v", c)
	}
	if c.Load.BurstQPS != 28 {
		t.Errorf("burst-qps default is 4 x qps, got %v", c.Load.BurstQPS)
	}
	if c.GarbageBytes != 65536 || c.LiveMiB != 32 || c.MaxLease != 30*time.Minute || c.ShutdownTimeout != defaultShutdownTimeout {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"WORKLOAD_QPS": "fast"}, nil, `WORKLOAD_QPS="fast": not a number`},
		{map[string]string{"WORKLOAD_LOAD": "sine"}, nil, `load schedule "sine"`},
		{map[string]string{"WORKLOAD_OBJECT_SIZES": "64,0"}, nil, `"0" is not a positive integer`},
		{map[string]string{"GC_TUNER_MIN_MEMORY_LIMIT": "64MB"}, nil, "GC_TUNER_MIN_MEMORY_LIMIT"},
		{nil, []string{"-live-mib", "-1"}, "-live-mib must be >= 0"},
		{nil, []string{"-load-concurrency", "0"}, "-load-concurrency"},
		{nil, []string{"-shutdown-timeout", "0s"}, "-shutdown-timeout must be > 0"},
		{map[string]string{"WORKLOAD_SHUTDOWN_TIMEOUT": "5"}, nil, `WORKLOAD_SHUTDOWN_TIMEOUT="5": not a duration`},
		{nil, []string{"-gctuner-min-gogc", "500", "-gctuner-max-gogc", "100"}, "-gctuner-min-gogc"},
		{nil, []string{"-bytedance-threshold", "1.5"}, "-bytedance-threshold"},
		{nil, []string{"-nope"}, "flag provided but not defined"},
		{nil, []string{"extra"}, "unexpected arguments"},
	} {
		_, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v args %v: got %v, want %q", tt.env, tt.args, err, tt.want)
		}
	}
}

func TestParseByteCount(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{{"1024", 1024, true}, {"2KiB", 2048, true}, {"64MiB", 64 << 20, true}, {"1GiB", 1 << 30, true},
		{"10B", 10, true}, {"64MB", 0, false}, {"1.5GiB", 0, false}, {"", 0, false}, {"-1", 0, false}, {"+5", 0, false}} {
		got, ok := parseByteCount(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%q: %d %v", tt.in, got, ok)
		}
	}
}
