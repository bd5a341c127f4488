package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/hotstandby/hotstandby/agent"
)

// cmdCheck is `hotstandby check --config F`: everything `run` would refuse
// or warn about, one line each with its fix, without running and without
// changing anything on the servers. Exit 0 all OK, 1 warnings, 2 errors
// (as `status --check`'s OK, WARNING and CRITICAL); a configuration that
// does not load is an error too (2, as for every command), printed as one
// ERROR line.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/hotstandby/hotstandby.toml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("check: unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := agent.LoadConfig(*path)
	if err != nil {
		// The file itself: missing, invalid, a TLS or password file that
		// cannot be read. The error names the key and never the password.
		fmt.Fprintf(stdout, "%-7s %v: fix the configuration file\n", agent.CheckError, err)
		return exitCode(agent.CheckError)
	}
	rep := agent.SetupCheck(context.Background(), cfg)
	rep.Write(stdout)
	return exitCode(rep.Level())
}
