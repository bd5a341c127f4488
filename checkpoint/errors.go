package checkpoint

import "errors"

// ErrBackwards means a frontier was asked to move before its stored value.
var ErrBackwards = errors.New("checkpoint: frontier would move backwards")

// ErrLocked means another process (a running daemon) holds the store.
var ErrLocked = errors.New("checkpoint: store is in use by another process")

// ErrIdentityChanged means the master is not the server the stored positions
// belong to; streaming from it would mix two histories.
var ErrIdentityChanged = errors.New("checkpoint: master identity changed")
