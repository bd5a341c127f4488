package control

import "errors"

// ErrNotRunning means nothing answers on the control socket: there is no
// socket file, or only a stale one left by a daemon that died.
var ErrNotRunning = errors.New("the daemon is not running")

// ErrPermission means the caller may not open the control socket (its file
// mode or its directory's): it must run as the daemon's user or root.
var ErrPermission = errors.New("permission denied")

// ErrRefused means the daemon answered and refused the request; the error
// wrapping it carries the daemon's reason.
var ErrRefused = errors.New("refused")

// ErrInUse means Listen found a live daemon answering on the socket.
var ErrInUse = errors.New("another daemon is answering on the control socket")

// ErrProtocol means the reply was not a valid reply of this protocol.
var ErrProtocol = errors.New("control: bad reply")

// ErrOpPanicked means the op's handler panicked: the daemon recovered, logged
// the stack at ERROR and goes on; the op may have done part of its work.
var ErrOpPanicked = errors.New("the daemon's op panicked")
