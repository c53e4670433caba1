//go:build gctuner_bytedance

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/bytedance/gopkg/util/gctuner"
)

// This build replaces GOGC/GOMEMLIMIT-based tuning with bytedance's gctuner (the pre-GOMEMLIMIT
// approach: a finalizer hook re-derives GOGC after each cycle so the heap aims at a fixed
// threshold). The benchmarks compare it with gc-tuner.
func init() {
	tunerName = "bytedance"
	startTuner = startBytedance
}

func startBytedance(cfg config, logger *slog.Logger) error {
	limit, source, err := bytedanceLimit(cfg.BytedanceLimit)
	if err != nil {
		return err
	}
	threshold := uint64(float64(limit) * cfg.BytedanceThreshold)
	gctuner.Tuning(threshold)
	logger.Warn("bytedance gctuner enabled", "limitBytes", limit, "limitSource", source,
		"thresholdBytes", threshold, "fraction", cfg.BytedanceThreshold)
	return nil
}

// bytedanceLimit picks the memory limit the threshold is a fraction of: the explicit setting,
// else the cgroup's limit (what a container's memory limit becomes), else GOMEMLIMIT.
func bytedanceLimit(explicit string) (int64, string, error) {
	if explicit != "" {
		n, ok := parseByteCount(explicit)
		if !ok || n <= 0 {
			return 0, "", fmt.Errorf("WORKLOAD_BYTEDANCE_LIMIT=%q: not a positive byte count", explicit)
		}
		return n, "WORKLOAD_BYTEDANCE_LIMIT", nil
	}
	if n, ok := cgroupLimit(); ok {
		return n, "cgroup", nil
	}
	if n := debug.SetMemoryLimit(-1); n != math.MaxInt64 {
		return n, "GOMEMLIMIT", nil
	}
	return 0, "", errors.New("gctuner_bytedance build: no memory limit to take the threshold of; " +
		"set WORKLOAD_BYTEDANCE_LIMIT, a cgroup memory limit or GOMEMLIMIT")
}

func cgroupLimit() (int64, bool) {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2) or a huge page-rounded MaxInt64 (v1) mean unlimited.
		if err == nil && n > 0 && n < 1<<50 {
			return n, true
		}
	}
	return 0, false
}
