package agent

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The Python parser (operator/gc_tuner/input/agent.py) is written against README.md's examples and
// tested on them, so the examples must have exactly the keys the agent sends: a field added,
// renamed or dropped on the Go side without the README fails here.
func TestReadmeExamplesHaveTheServedShape(t *testing.T) {
	src, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	for _, m := range regexp.MustCompile("(?ms)^```json\n(.*?)^```").FindAllStringSubmatch(string(src), -1) {
		var doc map[string]any
		if err := json.Unmarshal([]byte(m[1]), &doc); err != nil {
			t.Fatalf("README.md example is not a JSON object: %v\n%s", err, m[1])
		}
		docs = append(docs, doc)
	}
	if len(docs) != 4 {
		t.Fatalf("README.md has %d JSON examples, want 4 (GET, POST body, POST answer, DELETE answer)", len(docs))
	}

	startAt(t, "100", "")
	// With a request counter, so GET sends every key it can; README.md documents all of them.
	a, _ := newTestAgent(t, WithToken(testToken), WithRequestCounter(func() uint64 { return 18342 }))
	h := a.Handler()
	posted := do(t, h, http.MethodPost, "/", post("150", "536870912", 60, "op"), testToken)
	got := do(t, h, http.MethodGet, "/", "", testToken)
	deleted := do(t, h, http.MethodDelete, "/", "", testToken)

	sameKeys(t, "GET", docs[0], got.body)
	var req map[string]any
	b, _ := json.Marshal(writeRequest{})
	_ = json.Unmarshal(b, &req)
	sameKeys(t, "POST body", docs[1], req)
	sameKeys(t, "POST answer", docs[2], posted.body)
	// The DELETE example shows "lease": null, as the agent sends it.
	sameKeys(t, "DELETE answer", docs[3], deleted.body)
}

// sameKeys compares the key sets of two JSON objects, recursing into nested objects present on both
// sides (a null on one side, such as a lease, is compared only by its key).
func sameKeys(t *testing.T, what string, doc, served map[string]any) {
	t.Helper()
	if d, s := keys(doc), keys(served); d != s {
		t.Errorf("%s: README.md documents keys %s, the agent sends %s", what, d, s)
		return
	}
	for k, v := range doc {
		if dv, ok := v.(map[string]any); ok {
			if sv, ok := served[k].(map[string]any); ok {
				sameKeys(t, what+"."+k, dv, sv)
			}
		}
	}
}

func keys(m map[string]any) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}
