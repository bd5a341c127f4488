// Package control is the daemon's control socket: the one way to ask a
// running hotstandby to change something (skip today; promote, switchover
// and rejoin next). The read-only HTTP listener never changes anything.
//
// Socket. A unix stream socket in the daemon's data directory, created by
// Listen at start with mode 0600 and owned by the daemon's user, inside the
// 0700 data directory. A socket file left by a crash is removed; if another
// process answers on it, Listen refuses (ErrInUse). The daemon also holds the
// data directory's lock (the checkpoint store), so in practice the only
// socket Listen finds is a stale one. The socket file is removed when the
// server closes.
//
// Protocol. One request and one reply per connection, each a single JSON
// object followed by a newline:
//
//	→ {"op":"skip","gtid":"0-1-5"}
//	← {"ok":true,"message":"skipped 0-1-5: ..."}
//	← {"ok":false,"error":"applier: not stopped on that GTID: ..."}
//
// The request must arrive within ReadTimeout of the connection and be at
// most MaxRequest bytes; unknown fields and unknown ops are refused, never
// ignored, so an option a newer client sends cannot be silently dropped by
// an older daemon. Ops are looked up in the server's Ops (a map from op name
// to Handler): adding an operation is adding a Handler and, if it needs
// one, a Request field.
//
// Identity and authorization. The caller is whom the kernel says it is: its
// uid, gid and pid come from the socket's peer credentials (SO_PEERCRED,
// taken when it connected), and the uid is resolved to a user name for the
// record. Nothing the client sends about itself is trusted (Request has no
// such field). Only root (uid 0) and the daemon's own effective uid may use
// the socket. The 0600 mode already keeps everyone else out; the server
// checks again on every connection (defence in depth), answers anyone else
// with an error and runs nothing.
//
// Concurrency. Server.Serve runs on one goroutine and serves each connection
// on its own goroutine, so Handlers may run concurrently and must serialise
// themselves where that matters. Call may be used from any goroutine.
//
// Platform: Linux (SO_PEERCRED), like the rest of hotstandby.
package control
