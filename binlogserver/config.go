package binlogserver

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hotstandby/hotstandby/relay"
)

// Source tells the server how far the relay log is durable.
type Source interface {
	// Durable returns the relay log's durable frontier; it always ends a
	// whole transaction. It is called from many goroutines.
	Durable() relay.Frontier
}

// Watcher is a Source that says when its durable frontier moves (the
// agent's ingest.Receiver is one). With a Watcher the server never polls:
// a caught-up dump sleeps until the relay writer publishes a new frontier.
type Watcher interface {
	Source
	// DurableWatch returns the durable frontier and a channel closed when
	// it moves again, read together: a move between the two is never
	// lost. It is called from many goroutines and must not block.
	DurableWatch() (relay.Frontier, <-chan struct{})
}

// Config configures a Server.
type Config struct {
	// Listen is the TCP address to listen on ("127.0.0.1:3307"). A missing
	// host means 127.0.0.1, never every interface.
	Listen string
	// User and Password are the one account replicas log in with
	// (mysql_native_password). Password must not be empty.
	User     string
	Password string
	// RelayDir is the relay log's directory.
	RelayDir string
	// Source gives the durable frontier.
	Source Source
	// ServerID is what SHOW VARIABLES LIKE 'SERVER_ID' answers: it must
	// differ from every downstream replica's server_id. Heartbeats and fake
	// rotates carry it.
	ServerID uint32
	// Version is the server version advertised in the handshake. It must
	// start with a major version of 10 or more, or a MariaDB replica falls
	// back to file positions. Empty: DefaultVersion.
	Version string
	// Poll is how often the durable frontier is looked at while replicas
	// are caught up, only when Source is not a Watcher. Zero: 2 ms.
	Poll time.Duration
	// TLS, when set, is offered to replicas (CLIENT_SSL in the handshake):
	// a replica with MASTER_SSL=1 switches to it before it logs in.
	TLS *tls.Config
	// RequireTLS refuses, with access denied, a replica that logs in
	// without TLS. It needs TLS.
	RequireTLS bool
	// LoginTimeout bounds the handshake and login (TLS included) of a new
	// connection, as MariaDB's connect_timeout: a client that stalls there
	// is disconnected. Zero: 10 s.
	LoginTimeout time.Duration
	// Logger receives the server's log, tagged component=binlogserver. Nil:
	// slog.Default().
	Logger *slog.Logger
}

// DefaultVersion is the advertised server version.
const DefaultVersion = "10.11.99-hotstandby-log"

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	if c.Listen == "" {
		return fmt.Errorf("%w: listen is empty", ErrConfig)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%w: listen %q: %v", ErrConfig, c.Listen, err)
	}
	if c.User == "" {
		return fmt.Errorf("%w: user is empty", ErrConfig)
	}
	if c.Password == "" {
		return fmt.Errorf("%w: the password for user %q is empty", ErrConfig, c.User)
	}
	if c.RelayDir == "" {
		return fmt.Errorf("%w: relay directory is empty", ErrConfig)
	}
	if c.Source == nil {
		return fmt.Errorf("%w: no durable frontier source", ErrConfig)
	}
	if c.RequireTLS && c.TLS == nil {
		return fmt.Errorf("%w: TLS is required but no certificate is configured", ErrConfig)
	}
	if c.ServerID == 0 {
		return fmt.Errorf("%w: server_id is 0", ErrConfig)
	}
	return nil
}

// ListenAddr returns listen with 127.0.0.1 as the host when none is given.
func ListenAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host != "" {
		return listen
	}
	return net.JoinHostPort("127.0.0.1", port)
}
