package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/hotstandby/hotstandby/agent"
	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// cmdRelay inspects the relay log: which events are here, and which are safe.
func cmdRelay(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "show") {
		return usageError{errors.New("relay: want `relay list` or `relay show --gtid G | --from FILE:POS`")}
	}
	fs := flag.NewFlagSet("relay "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "relay list: print JSON")
	gtid := fs.String("gtid", "", "relay show: the transaction with this GTID")
	from := fs.String("from", "", "relay show: transactions from this master position (FILE:POS)")
	limit := fs.Int("limit", 10, "relay show --from: at most this many transactions")
	verbose := fs.Bool("v", false, "relay show: decode rows (like mariadb-binlog -v)")
	cfg, err := loadConfig(fs, args[1:])
	if err != nil {
		return err
	}
	if args[0] == "list" {
		segs, err := relay.List(cfg.RelayDir(), agent.AppliedHint(cfg))
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(segs)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEGMENT\tMASTER FILE\tFROM\tTO\tFIRST GTID\tLAST GTID\tBYTES\tAPPLIED")
		for _, s := range segs {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%d\t%s\n", s.Seq, s.MasterFile, s.FirstPos, s.LastPos, s.FirstGTID, s.LastGTID, s.Bytes, s.Applied)
		}
		return tw.Flush()
	}
	opt := relay.ShowOptions{GTID: *gtid, Limit: *limit, Verbose: *verbose}
	switch {
	case (*gtid == "") == (*from == ""):
		return usageError{errors.New("relay show: give exactly one of --gtid G or --from FILE:POS")}
	case *from != "":
		if opt.From, err = binlog.ParseFilePos(*from); err != nil {
			return usageError{err}
		}
	}
	return relay.Show(cfg.RelayDir(), opt, stdout)
}
