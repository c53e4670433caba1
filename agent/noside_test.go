package agent

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Every use of debug.SetGCPercent goes through the setGCPercent variable, and nothing in the
// package calls it with a negative constant. Together with TestReadsHaveNoSideEffects (which
// records every call through the variable) this proves reads never switch the collector off.
func TestSourceNeverCallsSetGCPercentNegative(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var direct []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if n.Sel.Name == "SetGCPercent" {
					direct = append(direct, fset.Position(n.Pos()).String())
				}
			case *ast.CallExpr:
				if isGCPercentSetter(n.Fun) && len(n.Args) == 1 && negativeConstant(n.Args[0]) {
					t.Errorf("%s: SetGCPercent called with a negative constant", fset.Position(n.Pos()))
				}
			}
			return true
		})
	}
	if len(direct) != 1 || !strings.HasPrefix(direct[0], "state.go:") {
		t.Fatalf("debug.SetGCPercent must be referenced only by the setGCPercent variable in state.go, found at %v", direct)
	}
}

func isGCPercentSetter(e ast.Expr) bool {
	switch f := e.(type) {
	case *ast.Ident:
		return f.Name == "setGCPercent"
	case *ast.SelectorExpr:
		return f.Sel.Name == "SetGCPercent"
	}
	return false
}

func negativeConstant(e ast.Expr) bool {
	u, ok := e.(*ast.UnaryExpr)
	return ok && u.Op == token.SUB
}

func TestNegativeConstantDetector(t *testing.T) {
	call, err := parser.ParseExpr("debug.SetGCPercent(-1)")
	if err != nil {
		t.Fatal(err)
	}
	c := call.(*ast.CallExpr)
	if !isGCPercentSetter(c.Fun) || !negativeConstant(c.Args[0]) {
		t.Fatal("the checker misses debug.SetGCPercent(-1)")
	}
}

// Concurrent GETs while the program allocates: no call to SetGCPercent at all, every GET sees
// GOGC 100, and the collector keeps completing cycles (it would stop if a read switched it off).
// A request counter is configured so its read is on the path under test too.
func TestReadsHaveNoSideEffects(t *testing.T) {
	startAt(t, "100", "")
	var served atomic.Uint64
	a, _ := newTestAgent(t, WithToken(testToken), WithRequestCounter(served.Load))
	h := a.Handler()

	var calls atomic.Int64
	orig := setGCPercent
	setGCPercent = func(p int) int { calls.Add(1); return orig(p) }
	defer func() { setGCPercent = orig }()

	cycles := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	before := cycles()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var sink atomic.Pointer[[]byte]
	go func() { // allocate ~1 MiB at a time until the readers are done
		for {
			select {
			case <-stop:
				return
			default:
				b := make([]byte, 1<<20)
				sink.Store(&b)
			}
		}
	}()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				served.Add(1)
				r := do(t, h, http.MethodGet, "/", "", testToken)
				if r.status != 200 || integer(t, r.body, "requestsTotal") < 1 || integer(t, r.body, "gogc") != 100 || integer(t, r.body, "metrics./gc/gogc:percent") != 100 {
					t.Errorf("GET %d: %d gogc %v", i, r.status, r.body["gogc"])
					return
				}
			}
		}()
	}
	wg.Wait()
	// With GC on, a few MiB of garbage guarantee cycles; 2 GiB without one means GC is off.
	for i := 0; cycles() < before+3; i++ {
		if i == 2048 {
			t.Fatalf("no GC cycle while allocating 2 GiB: the collector is off")
		}
		b := make([]byte, 1<<20)
		sink.Store(&b)
	}
	close(stop)
	if n := calls.Load(); n != 0 {
		t.Fatalf("GETs called SetGCPercent %d times", n)
	}
	if g := currentGOGC(); g != 100 {
		t.Fatalf("GOGC is %d after the reads", g)
	}
}
