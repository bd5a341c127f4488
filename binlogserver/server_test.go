package binlogserver

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

type fixedSource struct{ f relay.Frontier }

func (s fixedSource) Durable() relay.Frontier { return s.f }

func TestConfigValidate(t *testing.T) {
	ok := Config{Listen: ":3307", User: "u", Password: "p", RelayDir: "/tmp/r", Source: fixedSource{}, ServerID: 7}
	tests := []struct {
		name    string
		mut     func(*Config)
		wantErr string
	}{
		{name: "ok", mut: func(*Config) {}},
		{name: "no listen", mut: func(c *Config) { c.Listen = "" }, wantErr: "listen is empty"},
		{name: "bad listen", mut: func(c *Config) { c.Listen = "3307" }, wantErr: `listen "3307"`},
		{name: "no user", mut: func(c *Config) { c.User = "" }, wantErr: "user is empty"},
		{name: "no password", mut: func(c *Config) { c.Password = "" }, wantErr: `password for user "u" is empty`},
		{name: "no server id", mut: func(c *Config) { c.ServerID = 0 }, wantErr: "server_id is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mut(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestListenAddrDefaultsToLoopback(t *testing.T) {
	for in, want := range map[string]string{":3307": "127.0.0.1:3307", "0.0.0.0:3307": "0.0.0.0:3307", "10.0.0.5:1": "10.0.0.5:1"} {
		if got := ListenAddr(in); got != want {
			t.Errorf("ListenAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestArtificialEvents(t *testing.T) {
	rot := fakeRotate(9, "mysql-bin.000004", 1234, true)
	if err := binlog.VerifyChecksum(rot); err != nil {
		t.Fatal(err)
	}
	h, _ := binlog.ParseHeader(rot)
	if h.Timestamp != 0 || h.LogPos != 0 || h.Flags&binlog.FlagArtificial == 0 || h.Type != binlog.RotateEvent {
		t.Fatalf("fake rotate header %+v", h)
	}
	if got, err := binlog.RotateTarget(rot, true); err != nil || got != (binlog.FilePos{File: "mysql-bin.000004", Pos: 1234}) {
		t.Fatalf("fake rotate target %v %v", got, err)
	}
	hb := heartbeat(9, "mysql-bin.000004", 5000, true)
	if err := binlog.VerifyChecksum(hb); err != nil {
		t.Fatal(err)
	}
	if h, _ := binlog.ParseHeader(hb); h.LogPos != 5000 || string(hb[binlog.HeaderLen:len(hb)-4]) != "mysql-bin.000004" {
		t.Fatalf("heartbeat %+v %q", h, hb[binlog.HeaderLen:])
	}
	stored := binlog.NewEvent(binlog.FormatDescriptionEvent, 1, 256, flagBinlogInUse, binlog.FDEBody(1), true)
	binary.LittleEndian.PutUint32(stored[binlog.HeaderLen+2+50:], 1700000000) // created
	stored = reChecksum(stored, true)
	fde := streamFDE(stored, false)
	if err := binlog.VerifyChecksum(fde); err != nil {
		t.Fatal(err)
	}
	h, _ = binlog.ParseHeader(fde)
	if h.LogPos != 0 || h.Flags&flagBinlogInUse != 0 || binary.LittleEndian.Uint32(fde[binlog.HeaderLen+2+50:]) != 0 {
		t.Fatalf("stream FDE header %+v", h)
	}
	if binlog.VerifyChecksum(stored) != nil || binary.LittleEndian.Uint32(stored[13:]) != 256 {
		t.Fatal("streamFDE changed the stored event")
	}
}

func TestQueries(t *testing.T) {
	h := &session{s: &Server{cfg: Config{ServerID: 77, RelayDir: t.TempDir(), Version: DefaultVersion}}}
	for _, q := range []string{
		"SET NAMES latin1", "SELECT UNIX_TIMESTAMP()", "SHOW VARIABLES LIKE 'SERVER_ID'",
		"SET @master_heartbeat_period= 200000000", "SET @master_binlog_checksum= @@global.binlog_checksum",
		"SELECT @master_binlog_checksum", "SET @mariadb_slave_capability=4", "SELECT @@GLOBAL.gtid_domain_id",
		"SET @slave_connect_state='0-1-42,1-2-7'", "SET @slave_gtid_strict_mode=1", "SET @slave_gtid_ignore_duplicates=0",
		"SELECT binlog_gtid_pos('mysql-bin.000001',4)", "SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'",
	} {
		if _, err := h.HandleQuery(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	if h.heartbeat != 200*time.Millisecond || h.connectState == nil || *h.connectState != "0-1-42,1-2-7" || !h.strict {
		t.Fatalf("session: heartbeat %v state %v strict %v", h.heartbeat, h.connectState, h.strict)
	}
	r, _ := h.HandleQuery("SHOW VARIABLES LIKE 'SERVER_ID'")
	if got, want := string(r.RowDatas[0]), "\x09server_id\x0277"; got != want {
		t.Fatalf("server_id row %q, want %q", got, want)
	}
	if _, err := h.HandleQuery("SET @slave_until_gtid='0-1-50'"); err == nil || !strings.Contains(err.Error(), "UNTIL") {
		t.Fatalf("START SLAVE UNTIL: got %v, want a refusal", err)
	}
	if _, err := h.HandleQuery("DROP TABLE x"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("other query: got %v", err)
	}
}
