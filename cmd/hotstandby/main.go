// Command hotstandby keeps a MySQL/MariaDB standby hot: it streams the
// master's binlog into a durable relay log as the master's semi-sync replica
// and tells the truth about its positions.
//
//	hotstandby run     --config FILE          the daemon
//	hotstandby status  --config FILE [--json] positions and stream state
//	hotstandby skip    --config FILE --gtid G skip the failing transaction
//	hotstandby promote --config FILE [--dry-run|--force] promote the standby
//	hotstandby switchover --config FILE [--rejoin] [--timeout D] planned change of master
//	hotstandby rejoin  --config FILE [--dry-run] the old master becomes a replica
//	hotstandby verify  --config FILE          compare master and standby
//	hotstandby sandbox up|down --dir DIR      local master + standby for the demo
//	hotstandby clone   --config FILE          provision the standby from the master
//	hotstandby version [--json]               the build (version, revision, Go)
//	hotstandby config example                 the commented configuration
//	hotstandby check   --config FILE          what run would refuse or warn about
//
// Exit codes: 0 success, 1 the daemon or command failed, 2 bad usage or
// configuration.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/hotstandby/hotstandby/buildinfo"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/hotstandby/hotstandby/agent"
	"github.com/hotstandby/hotstandby/status"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: hotstandby <command> [flags]

commands:
  run      --config FILE           run the daemon
  status   --config FILE [--json|--check]  show the stream, the applier and their positions;
                                   --check: one line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
  skip     --config FILE --gtid G  skip the transaction the applier is stopped on (recorded)
  promote  --config FILE [--dry-run|--force]  make the standby the master (lossless, or refused)
  rejoin   --config FILE [--dry-run]  make the old master a replica of the new one (after checking GTIDs)
  switchover --config FILE [--rejoin] [--timeout D]  planned change of master while it is alive; prints the write downtime
  verify   --config FILE           compare every table of master and standby
  relay    list --config FILE [--json]           the relay segments: GTIDs, positions, applied or not
  relay    show --config FILE --gtid G | --from FILE:POS [-v]  transactions, events, tables, rows
  sandbox  up|down --dir DIR       start/stop a local master and standby (demo)
  clone    --config FILE [--workers N] [--replace] [--with-grants]  provision the standby from the live master
  check    --config FILE           everything run would refuse or warn about, one line each with the fix; exit 0 OK, 1 warnings, 2 errors
  version  [--json]                the build: module version, VCS revision and date, Go version
  config   example                 print the fully commented configuration (/etc/hotstandby/hotstandby.toml)
`

// usageError is a bad command line or configuration: exit code 2.
type usageError struct{ error }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stderr)
	case "status":
		err = cmdStatus(args[1:], stdout, stderr)
	case "sandbox":
		err = cmdSandbox(args[1:], stdout, stderr)
	case "skip":
		err = cmdSkip(args[1:], stdout, stderr)
	case "promote":
		err = cmdPromote(args[1:], stdout, stderr)
	case "rejoin":
		err = cmdRejoin(args[1:], stdout, stderr)
	case "switchover":
		err = cmdSwitchover(args[1:], stdout, stderr)
	case "verify":
		err = cmdVerify(args[1:], stdout, stderr)
	case "relay":
		err = cmdRelay(args[1:], stdout, stderr)
	case "clone":
		err = cmdClone(args[1:], stdout, stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "version":
		err = cmdVersion(args[1:], stdout, stderr)
	case "config":
		err = cmdConfig(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "hotstandby: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	fmt.Fprintf(stderr, "hotstandby: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func loadConfig(fs *flag.FlagSet, args []string) (agent.Config, error) {
	path := fs.String("config", "/etc/hotstandby/hotstandby.toml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return agent.Config{}, usageError{err}
	}
	if fs.NArg() > 0 {
		return agent.Config{}, usageError{fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	cfg, err := agent.LoadConfig(*path)
	if err != nil {
		return agent.Config{}, usageError{err}
	}
	return cfg, nil
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	syscall.Umask(0o077) // state, relay and log files: owner only
	log, closer, err := agent.NewLogger(cfg.Log, stderr)
	if err != nil {
		return usageError{err}
	}
	defer closer.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv("HOTSTANDBY_CPUPROFILE"); path != "" {
		// For benchmarks: a CPU profile of the daemon until it stops
		// (SIGTERM or SIGINT; kill -9 leaves none).
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("HOTSTANDBY_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("HOTSTANDBY_CPUPROFILE: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	log.Info("hotstandby starting", "version", buildinfo.Get().String(), "config", fs.Lookup("config").Value.String(), "data_dir", cfg.DataDir, "master", cfg.Master.Addr(), "server_id", cfg.ServerID)
	if err := a.Run(ctx); err != nil {
		log.Error("stopped", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON (schema_version 1)")
	check := fs.Bool("check", false, "monitoring mode: one line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
	watch := fs.Bool("watch", false, "refresh in place, with the applier lag over the last minutes as a sparkline")
	interval := fs.Duration("interval", time.Second, "--watch: time between refreshes")
	frames := fs.Int("frames", 0, "--watch: stop after this many refreshes (0: until interrupted)")
	isMaster := fs.Bool("is-master", false, "exit 0 if the standby was promoted (role master), 1 otherwise: for keepalived's vrrp_script")
	th := status.DefaultCheckThresholds()
	fs.Int64Var(&th.WarnApplyLag, "warn-apply-lag", th.WarnApplyLag, "--check: WARNING when the applier is more than this many transactions behind")
	fs.Int64Var(&th.CritApplyLag, "crit-apply-lag", th.CritApplyLag, "--check: CRITICAL when the applier is more than this many transactions behind")
	fs.DurationVar(&th.WarnSilence, "warn-silence", th.WarnSilence, "--check: WARNING when nothing (no event, no heartbeat) came from the master for this long")
	fs.DurationVar(&th.CritSilence, "crit-silence", th.CritSilence, "--check: CRITICAL after this long")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		if *check {
			fmt.Fprintf(stdout, "UNKNOWN: %v\n", err)
			return exitCode(status.CheckUnknown)
		}
		return err
	}
	if *watch {
		return watchStatus(cfg, *interval, *frames, stdout)
	}
	rep, err := status.Get(context.Background(), cfg.StatusSource())
	if *isMaster {
		if err == nil && rep.Role == "master" {
			fmt.Fprintln(stdout, "master")
			return nil
		}
		fmt.Fprintln(stdout, or(rep.Role, "unknown"))
		return exitCode(1)
	}
	if *check {
		if err != nil {
			fmt.Fprintf(stdout, "UNKNOWN: %v\n", err)
			return exitCode(status.CheckUnknown)
		}
		code, line := rep.Check(th, time.Now())
		fmt.Fprintln(stdout, line)
		return exitCode(code)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.WriteText(stdout, status.TextOptions{Now: time.Now()})
	return nil
}

// exitCode ends the command with a given exit code and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
