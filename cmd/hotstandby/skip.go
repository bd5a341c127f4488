package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"
)

// cmdSkip asks the running daemon to skip the transaction its applier is
// stopped on: the explicit, recorded replacement of SQL_SLAVE_SKIP_COUNTER.
func cmdSkip(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("skip", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gtid := fs.String("gtid", "", "the GTID of the transaction to skip (as status shows it)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if *gtid == "" {
		return usageError{errors.New("skip: --gtid is required: the GTID the applier is stopped on (hotstandby status)")}
	}
	if cfg.Status.Listen == "" {
		return usageError{errors.New("skip: the daemon's status endpoint is off (status.listen); skip needs the running daemon")}
	}
	by := "unknown"
	if u, err := user.Current(); err == nil {
		by = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		by += "@" + h
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := url.Values{"gtid": {*gtid}, "by": {by}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+cfg.Status.Listen+"/skip?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("skip: the daemon does not answer at %s: %w", cfg.Status.Listen, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("skip refused: %s", strings.TrimSpace(string(body)))
	}
	fmt.Fprint(stdout, string(body))
	return nil
}
