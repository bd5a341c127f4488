// Package verify compares the data of two MariaDB servers, a master and its
// standby, table by table, and lists the differences. It is what
// `hotstandby verify` runs to prove that the standby holds the master's data.
//
// # Model
//
// Compare lists the base tables (TABLE_TYPE 'BASE TABLE' or
// 'SYSTEM VERSIONED') of every schema on both servers except mysql,
// information_schema, performance_schema, sys and Options.Exclude. A table
// present on one side only is a difference; so is a column list that differs
// in any column's name, COLUMN_TYPE, collation, nullability or
// generated-column kind, in order. Tables whose columns agree are compared by
// digest:
//
//   - Each row is hashed on the server: every stored column is rendered as an
//     exact token ('N' for NULL), the tokens are joined with commas and hashed
//     with MD5. Virtual generated columns are left out (they are not stored,
//     and CHECKSUM TABLE is not deterministic with them); persistent (STORED)
//     ones are kept.
//   - A digest is COUNT(*) plus the SUM of the first 64 bits of every row's
//     MD5. A sum, unlike an XOR, counts duplicates: a table without a primary
//     key that holds the same row twice differs from one that holds it once.
//   - A table whose primary key starts with an integer column is cut into
//     ranges of Options.ChunkRows rows of that column, boundaries taken from
//     the master; each range is digested on both sides and the differing
//     ranges are reported. The first and last ranges are open-ended so that
//     standby rows outside the master's key range are counted. Any other
//     table is digested whole.
//
// # Exact tokens
//
// HEX() of a number is the hex of its integer part (HEX(1.5) is '2', HEX of a
// DOUBLE above 2^64 is 'FFFFFFFFFFFFFFFF'), and CAST(float AS CHAR) keeps only
// six significant digits (1.1 and 1.1000001 both print as "1.1"), so tokens
// depend on the type:
//
//	integers, DECIMAL, YEAR            CAST(c AS CHAR)  (DECIMAL keeps its scale)
//	FLOAT, DOUBLE                      CAST(CAST(c AS DOUBLE) AS CHAR): shortest
//	                                   text that reads back to the same double
//	DATE, TIME, DATETIME, TIMESTAMP    CAST(c AS CHAR) with the session's
//	                                   time_zone set to '+00:00'
//	BIT                                CAST(c+0 AS CHAR)
//	ENUM, SET                          CAST(c+0 AS CHAR): the index or bit mask
//	CHAR, VARCHAR, BINARY, VARBINARY   HEX(c): the stored bytes
//	TEXT, BLOB, JSON, geometry         MD5(c): the stored bytes, hashed
//	anything else (INET6, UUID ...)    HEX(c)
//
// Long types are hashed rather than hexed because a string function whose
// result would exceed max_allowed_packet returns NULL with only a warning;
// MD5 reads the value without that limit. Should any row's token string still
// come out NULL, the digest carries a sentinel and Compare fails with
// ErrRowTooLarge rather than skip the row.
//
// # Consistency
//
// Without Options.Consistent each query sees the data of its own moment; on
// servers that take writes the result is only a hint. With it, Compare opens
// START TRANSACTION WITH CONSISTENT SNAPSHOT on one connection per server,
// reads the snapshot's binlog coordinates (status variables
// Binlog_snapshot_file and Binlog_snapshot_position; MariaDB 10.11 has no
// binlog_snapshot_gtid_pos) and maps them to a GTID position with
// BINLOG_GTID_POS(). It keeps the master's snapshot and polls the standby's
// gtid_binlog_pos until the standby reaches the same position, then takes the
// standby's snapshot; it retakes the master's snapshot if the standby goes
// past it, and gives up with ErrNotAtSamePosition after Options.Timeout. On a
// master that never pauses between commits the two may never meet, unless
// the caller controls the standby's replication: Options.StopStandbyAt is
// called with each master snapshot's position, to stop the standby there
// (START SLAVE UNTIL master_gtid_pos), which is how rejoin meets a busy new
// master. Only transactional engines (InnoDB) honour the snapshot.
//
// # Connections
//
// Compare takes one connection from each *sql.DB, sets session variables on it
// (time_zone, sql_mode, character set, isolation level) and closes it
// afterwards rather than return it to the pool with those settings. It never
// sees a password. Compare may be called from several goroutines at once; each
// call uses its own connections.
package verify
