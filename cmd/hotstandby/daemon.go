package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hotstandby/hotstandby/control"
)

// callDaemon sends one state-changing request to the running daemon's
// control socket (which authenticates the caller and records the
// operation), waits up to timeout and prints the daemon's answer.
func callDaemon(socket string, timeout time.Duration, req control.Request, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	msg, err := control.Call(ctx, socket, req)
	if err != nil {
		return fmt.Errorf("%s: %w", req.Op, err)
	}
	fmt.Fprintln(stdout, strings.TrimSpace(msg))
	return nil
}
