package cluster

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/tlsconf"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Etcd = []string{"http://127.0.0.1:2379", "http://127.0.0.1:2479", "http://127.0.0.1:2579"}
	c.Name, c.Member, c.Standbys = "main", "db2", []string{"db2", "db3", "db4"}
	return c
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ca := harness.NewCA(t, dir, "etcd-ca")
	cert := ca.LocalServer(t, "agent")
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" : valid
	}{
		{name: "valid", edit: func(*Config) {}},
		{name: "dr member outside the standbys", edit: func(c *Config) { c.Member, c.Role = "dr1", RoleDR }},
		{name: "role unset is standby", edit: func(c *Config) { c.Role = "" }},
		{name: "no endpoints", edit: func(c *Config) { c.Etcd = nil }, wantErr: "cluster.etcd is empty"},
		{name: "endpoint without scheme", edit: func(c *Config) { c.Etcd = []string{"127.0.0.1:2379"} }, wantErr: "cluster.etcd[0]"},
		{name: "endpoint without port", edit: func(c *Config) { c.Etcd = []string{"http://127.0.0.1"} }, wantErr: "has no port"},
		{name: "endpoint with a path", edit: func(c *Config) { c.Etcd = []string{"http://127.0.0.1:2379/v3"} }, wantErr: "cluster.etcd[0]"},
		{name: "mixed schemes", edit: func(c *Config) { c.Etcd = []string{"http://127.0.0.1:2379", "https://127.0.0.1:2479"} }, wantErr: "mixes http:// and https://"},
		{name: "endpoint twice", edit: func(c *Config) { c.Etcd = []string{"http://127.0.0.1:2379", "http://127.0.0.1:2379"} }, wantErr: "twice"},
		{name: "plain http across a network", edit: func(c *Config) { c.Etcd = []string{"http://10.0.0.1:2379"} }, wantErr: "not loopback"},
		{name: "plain http across a network, accepted", edit: func(c *Config) { c.Etcd = []string{"http://10.0.0.1:2379"}; c.Level = "off" }},
		{name: "tls level with http", edit: func(c *Config) { c.Level = "verify-full" }, wantErr: "uses http://"},
		{name: "ca_file with http", edit: func(c *Config) { c.Level = "off"; c.CAFile = ca.File }, wantErr: "uses http://"},
		{name: "https verify-full", edit: func(c *Config) {
			c.Etcd = []string{"https://10.0.0.1:2379"}
			c.Settings = tlsconf.Settings{CAFile: ca.File, CertFile: cert.Cert, KeyFile: cert.Key}
		}},
		{name: "https with tls off", edit: func(c *Config) { c.Etcd = []string{"https://127.0.0.1:2379"}; c.Level = "off" }, wantErr: "uses https://"},
		{name: "https with a missing ca_file", edit: func(c *Config) {
			c.Etcd = []string{"https://10.0.0.1:2379"}
			c.CAFile = filepath.Join(dir, "nope.pem")
		}, wantErr: "cluster.ca_file"},
		{name: "https cert without key", edit: func(c *Config) { c.Etcd = []string{"https://127.0.0.1:2379"}; c.CertFile = cert.Cert }, wantErr: "go together"},
		{name: "no cluster name", edit: func(c *Config) { c.Name = "" }, wantErr: "cluster.name"},
		{name: "cluster name with a slash", edit: func(c *Config) { c.Name = "a/b" }, wantErr: "cluster.name"},
		{name: "no member name", edit: func(c *Config) { c.Member = "" }, wantErr: "cluster.member"},
		{name: "bad role", edit: func(c *Config) { c.Role = "witness" }, wantErr: "cluster.role"},
		{name: "no standbys", edit: func(c *Config) { c.Standbys = nil }, wantErr: "cluster.standbys is empty"},
		{name: "standby twice", edit: func(c *Config) { c.Standbys = []string{"db2", "db3", "db3"} }, wantErr: "twice"},
		{name: "member not a standby", edit: func(c *Config) { c.Member = "db9" }, wantErr: "not in cluster.standbys"},
		{name: "dr member listed as a standby", edit: func(c *Config) { c.Role = RoleDR }, wantErr: "has role dr"},
		{name: "ack_quorum below a majority", edit: func(c *Config) { c.AckQuorum = 1 }, wantErr: "cluster.ack_quorum = 1 with 3 standbys: want 2 to 3"},
		{name: "ack_quorum above the standbys", edit: func(c *Config) { c.AckQuorum = 4 }, wantErr: "cluster.ack_quorum = 4"},
		{name: "ack_quorum all", edit: func(c *Config) { c.AckQuorum = 3 }},
		{name: "lease_ttl not whole seconds", edit: func(c *Config) { c.LeaseTTL = 1500 * time.Millisecond }, wantErr: "cluster.lease_ttl = 1.5s"},
		{name: "lease_ttl too long", edit: func(c *Config) { c.LeaseTTL = 2 * time.Minute }, wantErr: "cluster.lease_ttl"},
		{name: "lease_ttl negative", edit: func(c *Config) { c.LeaseTTL = -time.Second }, wantErr: "cluster.lease_ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	if c.Quorum() != 2 || c.ttl() != 2*time.Second || c.role() != RoleStandby {
		t.Fatalf("quorum %d, ttl %s, role %s: want 2, 2s, standby", c.Quorum(), c.ttl(), c.role())
	}
	c.Standbys = []string{"db2", "db3", "db4", "db5"}
	if c.Quorum() != 3 {
		t.Fatalf("4 standbys: quorum %d, want 3", c.Quorum())
	}
	if (Config{}).Enabled() {
		t.Fatal("the zero Config (no [cluster] section) is enabled")
	}
}

// TestConfigTOML reads a [cluster] section as the agent's file would hold
// it.
func TestConfigTOML(t *testing.T) {
	var file struct {
		Cluster Config `toml:"cluster"`
	}
	file.Cluster = DefaultConfig()
	src := `
[cluster]
etcd = ["http://127.0.0.1:2379"]
name = "shop"
member = "db3"
standbys = ["db2", "db3", "db4"]
ack_quorum = 3
lease_ttl = "3s"
`
	md, err := toml.Decode(src, &file)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Fatalf("undecoded keys %v", u)
	}
	c := file.Cluster
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Member != "db3" || c.Quorum() != 3 || c.ttl() != 3*time.Second || c.role() != RoleStandby || c.Prefix() != "/hotstandby/shop/" {
		t.Fatalf("decoded %+v", c)
	}
}
