package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/hotstandby/hotstandby/agent"
	"github.com/hotstandby/hotstandby/status"
)

// watchStatus redraws the status in place every interval, with the applier
// lag (transactions) over the last samples drawn as a sparkline.
func watchStatus(cfg agent.Config, interval time.Duration, frames int, w io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var history []int64 // -1: unknown
	for n := 0; frames == 0 || n < frames; n++ {
		rep, err := status.Get(ctx, cfg.StatusSource())
		fmt.Fprint(w, "\033[H\033[2J") // home, clear screen
		fmt.Fprintf(w, "hotstandby status — every %s — %s\n\n", interval, time.Now().Format(time.TimeOnly))
		if err != nil {
			fmt.Fprintf(w, "unknown: %v\n", err)
		} else {
			rep.WriteText(w)
			lag := int64(-1)
			if rep.Lag.AppliedTransactions != nil {
				lag = *rep.Lag.AppliedTransactions
			}
			history = append(history, lag)
			if len(history) > 120 {
				history = history[len(history)-120:]
			}
			fmt.Fprintf(w, "\napplier lag, last %s: %s\n", time.Duration(len(history))*interval, sparkline(history))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
	return nil
}

// sparkline draws values (-1 unknown, drawn as a space) scaled to their max.
func sparkline(vals []int64) string {
	bars := []rune("▁▂▃▄▅▆▇█")
	var max int64
	for _, v := range vals {
		max = maxInt(max, v)
	}
	var b strings.Builder
	for _, v := range vals {
		switch {
		case v < 0:
			b.WriteRune(' ')
		case max == 0:
			b.WriteRune(bars[0])
		default:
			b.WriteRune(bars[int(v*int64(len(bars)-1)/max)])
		}
	}
	fmt.Fprintf(&b, " (max %d)", max)
	return b.String()
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
