//go:build gctuner_bytedance

package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestBytedanceLimitSources(t *testing.T) {
	if n, src, err := bytedanceLimit("512MiB"); err != nil || n != 512<<20 || src != "WORKLOAD_BYTEDANCE_LIMIT" {
		t.Fatalf("explicit: %d %s %v", n, src, err)
	}
	if _, _, err := bytedanceLimit("512MB"); err == nil || !strings.Contains(err.Error(), "WORKLOAD_BYTEDANCE_LIMIT") {
		t.Fatalf("malformed explicit limit: %v", err)
	}
	prev := debug.SetMemoryLimit(300 << 20)
	defer debug.SetMemoryLimit(prev)
	n, src, err := bytedanceLimit("")
	if cg, ok := cgroupLimit(); ok {
		if n != cg || src != "cgroup" {
			t.Fatalf("with a cgroup limit %d: got %d from %s (%v)", cg, n, src, err)
		}
		return
	}
	if err != nil || n != 300<<20 || src != "GOMEMLIMIT" {
		t.Fatalf("GOMEMLIMIT fallback: %d %s %v", n, src, err)
	}
}

func TestBytedanceBuildIsNamed(t *testing.T) {
	if tunerName != "bytedance" {
		t.Fatalf("tuner %q", tunerName)
	}
}
