package main

import (
	"strings"
	"testing"
)

// --version prints the version the binary was linked with, and without one
// still prints something (the build info's module version or revision).
func TestVersionFlag(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "v1.2.3-test"
	out, err := datashift(t, "--version")
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	if out != "datashift version v1.2.3-test\n" {
		t.Errorf("--version printed %q", out)
	}

	version = ""
	out, err = datashift(t, "--version")
	if err != nil || !strings.HasPrefix(out, "datashift version ") || strings.TrimSpace(strings.TrimPrefix(out, "datashift version ")) == "" {
		t.Errorf("--version without a linked version: %q, %v", out, err)
	}
}
