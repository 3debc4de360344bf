package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "goipsec "+version+"\n") || !strings.Contains(out.String(), "go: go1.") {
		t.Fatalf("unexpected version output:\n%s", out.String())
	}
}
