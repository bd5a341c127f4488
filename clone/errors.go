package clone

import "errors"

// ErrStandbyHasData means the standby holds user data and Config.Replace
// is not set.
var ErrStandbyHasData = errors.New("clone: the standby holds user data")

// ErrPrivileges means the master or the standby user lacks a privilege the
// clone needs; the message names it and the GRANT that fixes it.
var ErrPrivileges = errors.New("clone: missing privilege")

// ErrSnapshotMismatch means the workers' snapshots are not at the same
// binlog position (commits were not blocked while they opened).
var ErrSnapshotMismatch = errors.New("clone: the workers' snapshots differ")

// ErrNotMariaDB means the master is not a MariaDB server; MySQL needs
// another snapshot procedure (see the package documentation).
var ErrNotMariaDB = errors.New("clone: only MariaDB masters can be cloned")
