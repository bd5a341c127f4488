package main

import (
	"errors"
	"io"
)

func cmdSandbox(args []string, stdout, stderr io.Writer) error {
	return usageError{errors.New("sandbox: not yet")}
}
