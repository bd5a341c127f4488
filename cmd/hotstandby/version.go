package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/hotstandby/hotstandby/buildinfo"
	"github.com/hotstandby/hotstandby/packaging"
)

// cmdVersion prints the build: module version, VCS revision and date, Go
// version (the running daemon's is in `status --json` and the metric
// hotstandby_build_info).
func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("version: unexpected argument %q", fs.Arg(0))}
	}
	in := buildinfo.Get()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	modified := ""
	if in.Modified {
		modified = " (uncommitted changes)"
	}
	fmt.Fprintf(stdout, "hotstandby %s\nrevision   %s%s\ndate       %s\ngo         %s %s\n", in.Version, in.Revision, modified, in.Time, in.GoVersion, in.Platform)
	return nil
}

// cmdConfig is `hotstandby config example`: the fully commented
// configuration, the same text the Debian package installs as
// /etc/hotstandby/hotstandby.toml.
func cmdConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || args[0] != "example" {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, "usage: hotstandby config example > hotstandby.toml")
			return flag.ErrHelp
		}
		return usageError{fmt.Errorf("usage: hotstandby config example")}
	}
	_, err := io.WriteString(stdout, packaging.ExampleConfig)
	return err
}
