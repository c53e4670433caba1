// Command memlimit prints the memory limit the Go runtime read from GOMEMLIMIT
// (/gc/gomemlimit:bytes). A malformed GOMEMLIMIT never gets here: the runtime exits 2 at start.
package main

import (
	"fmt"
	"runtime/metrics"
)

func main() {
	s := []metrics.Sample{{Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	fmt.Println(s[0].Value.Uint64())
}
