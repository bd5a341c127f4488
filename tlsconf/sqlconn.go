package tlsconf

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/go-sql-driver/mysql"
)

// sslVersionQuery asks the server whether the session is encrypted: an
// empty Ssl_version is a plain connection.
const sslVersionQuery = "SHOW SESSION STATUS LIKE 'Ssl_version'"

// ObservedConnector returns a go-sql-driver connector for dsn that asks
// the server, once for each new connection, whether it is encrypted and
// records a plain one in obs. go-sql-driver records nothing when it falls
// back to plain text (tls = preferred against a server without TLS), while
// an encrypted connection is recorded by the handshake itself (Config).
// A connection whose question fails is closed and the error returned.
func ObservedConnector(dsn string, obs *Observer) (driver.Connector, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return observedConnector{Connector: c, obs: obs}, nil
}

type observedConnector struct {
	driver.Connector
	obs *Observer
}

// Connect opens a connection and records whether it is encrypted.
func (c observedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	enc, err := sessionEncrypted(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls: %s: %w", sslVersionQuery, err)
	}
	if !enc {
		c.obs.RecordPlain()
	}
	return conn, nil
}

// sessionEncrypted reads Ssl_version on conn.
func sessionEncrypted(ctx context.Context, conn driver.Conn) (bool, error) {
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return false, errors.New("the driver's connection cannot run queries")
	}
	rows, err := q.QueryContext(ctx, sslVersionQuery, nil)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	vals := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(vals); err != nil {
		if err == io.EOF {
			return false, errors.New("the server returned no Ssl_version")
		}
		return false, err
	}
	if len(vals) < 2 {
		return false, errors.New("the server returned no Ssl_version value")
	}
	switch v := vals[1].(type) {
	case []byte:
		return len(v) > 0, nil
	case string:
		return v != "", nil
	}
	return false, nil
}
