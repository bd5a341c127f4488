package main

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/buildinfo"
	"github.com/hotstandby/hotstandby/packaging"
)

func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	in := buildinfo.Get()
	for _, want := range []string{"hotstandby " + in.Version + "\n", "revision   " + in.Revision, "go         " + in.GoVersion} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"version", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("--json: exit %d", code)
	}
	var got buildinfo.Info
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got != in {
		t.Errorf("--json: %v %+v", err, got)
	}
	if code := run([]string{"version", "extra"}, &out, &errb); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}

func TestConfigExampleCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"config", "example"}, &out, &errb); code != 0 || out.String() != packaging.ExampleConfig {
		t.Fatalf("exit %d, output differs from packaging/hotstandby.toml: %v", code, out.String() != packaging.ExampleConfig)
	}
	for _, args := range [][]string{{"config"}, {"config", "sample"}, {"config", "example", "x"}} {
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// Every command of the usage text is in the man page the package installs.
func TestManPageNamesEveryCommand(t *testing.T) {
	man, err := os.ReadFile("../../packaging/hotstandby.8")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+) `).FindAllStringSubmatch(usage, -1) {
		if !regexp.MustCompile(`(?m)^\.B[IR]? "?` + m[1] + `\b`).Match(man) {
			t.Errorf("command %q is not in packaging/hotstandby.8", m[1])
		}
	}
}
