package binlogserver

import "errors"

// ErrConfig is wrapped by every Config.Validate error.
var ErrConfig = errors.New("binlogserver: invalid configuration")

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("binlogserver: closed")
