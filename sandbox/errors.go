package sandbox

import "errors"

// ErrInvalidConfig is wrapped by every error that Config.Validate returns.
var ErrInvalidConfig = errors.New("invalid config")

// ErrNotInstalled means that mariadbd or mariadb-install-db could not be found,
// neither on PATH nor in /usr/sbin and /usr/bin. EnsureInstalled installs them.
var ErrNotInstalled = errors.New("mariadb binaries not installed")

// ErrNotRunning is returned by methods that need a running server, such as
// Start's readiness check when the process has already exited.
var ErrNotRunning = errors.New("mariadbd not running")

// ErrUnknownStatus is returned by Server.Status when the server has no global
// status variable with the requested name.
var ErrUnknownStatus = errors.New("unknown status variable")
