// Command goadapter is the Go platform adapter of the SemaFore interop gate (SPEC §7): it
// reads JSON requests on stdin, one per line, and answers each with one JSON line on stdout.
package main

import (
	"fmt"
	"os"

	"semafore.local/goadapter/adapter"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-v") {
		fmt.Println(adapter.Name, adapter.Version)
		return
	}
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: goadapter  (speaks JSON lines on stdin/stdout; see docs/adapter-contract.md)")
		os.Exit(2)
	}
	if err := adapter.Serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "goadapter:", err)
		os.Exit(1)
	}
}
