package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/hotstandby/hotstandby/agent"
	"github.com/hotstandby/hotstandby/status"
)

// watchStatus redraws the status in place every interval, with the applier
// lag (transactions) over the last samples drawn as a sparkline. No line is
// wider than the terminal, nor than status.MaxTextWidth.
func watchStatus(cfg agent.Config, interval time.Duration, frames int, w io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var history []int64 // -1: unknown
	for n := 0; frames == 0 || n < frames; n++ {
		rep, err := status.Get(ctx, cfg.StatusSource())
		now, width := time.Now(), min(terminalWidth(w), status.MaxTextWidth)
		fmt.Fprint(w, "\033[H\033[2J") // home, clear screen
		fmt.Fprintf(w, "hotstandby status — every %s — %s\n\n", interval, now.Format(time.TimeOnly))
		if err != nil {
			fmt.Fprint(w, status.FormatField("unknown:", err.Error(), width))
		} else {
			rep.WriteText(w, status.TextOptions{Now: now, Width: width})
			lag := int64(-1)
			if rep.Lag.AppliedTransactions != nil {
				lag = *rep.Lag.AppliedTransactions
			}
			history = append(history, lag)
			if len(history) > status.MaxTextWidth {
				history = history[len(history)-status.MaxTextWidth:]
			}
			fmt.Fprintf(w, "\n%s\n", lagLine(history, interval, width))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
	return nil
}

// lagLine draws the newest samples of history that fit in width columns:
// "applier lag, last 12 s: ▁▃█ (max 25)".
func lagLine(history []int64, interval time.Duration, width int) string {
	for n := len(history); ; n-- {
		line := fmt.Sprintf("applier lag, last %s: %s",
			status.FormatDuration(time.Duration(n)*interval), sparkline(history[len(history)-n:]))
		if n <= 1 || utf8.RuneCountInString(line) <= width {
			return line
		}
	}
}

// sparkline draws values (-1 unknown, drawn as a space) scaled to their max.
func sparkline(vals []int64) string {
	bars := []rune("▁▂▃▄▅▆▇█")
	max, known := int64(0), false
	for _, v := range vals {
		if v >= 0 {
			max, known = maxInt(max, v), true
		}
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
	if !known {
		b.WriteString(" (max unknown)")
	} else {
		fmt.Fprintf(&b, " (max %d)", max)
	}
	return b.String()
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// terminalWidth is the width in columns of the terminal w writes to, or
// status.MaxTextWidth when w is not a terminal.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return status.MaxTextWidth
	}
	var ws struct{ Row, Col, X, Y uint16 } // struct winsize
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	if errno != 0 || ws.Col == 0 {
		return status.MaxTextWidth
	}
	return int(ws.Col)
}
