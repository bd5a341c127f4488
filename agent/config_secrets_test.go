package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestConfigParseErrorHidesPassword: a password written without quotes is
// a TOML syntax error; the error names the file, the line and the key and
// shows no part of the value, in each section that holds a password, and
// the TOML error stays in the chain.
func TestConfigParseErrorHidesPassword(t *testing.T) {
	const secret = "Sup3rS3cret"
	tests := []struct {
		name, body, wantKey string
	}{
		{name: "master", body: "data_dir = \"d\"\nserver_id = 7\n[master]\nuser = \"repl\"\npassword = " + secret + "\n", wantKey: "master.password"},
		{name: "standby", body: "data_dir = \"d\"\nserver_id = 7\n[master]\nuser = \"repl\"\n[standby]\nhost = \"127.0.0.1\"\npassword = " + secret + "\n", wantKey: "standby.password"},
		{name: "serve", body: "data_dir = \"d\"\nserver_id = 7\n[master]\nuser = \"repl\"\n[serve]\nlisten = \":3307\"\npassword = " + secret + "\n", wantKey: "serve.password"},
		{name: "misspelled key", body: "data_dir = \"d\"\nserver_id = 7\n[master]\nuser = \"repl\"\npasword = " + secret + "\n", wantKey: "master.pasword"},
		{name: "after the value", body: "data_dir = \"d\"\nserver_id = 7\n[master]\npassword = \"" + secret + "\" user = \"repl\"\n", wantKey: "line 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hotstandby.toml")
			must(t, os.WriteFile(path, []byte(tt.body), 0o600))
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatal("LoadConfig accepted an unquoted password")
			}
			msg := err.Error()
			for i := 0; i+3 <= len(secret); i++ { // no 3 characters of it in a row
				if part := secret[i : i+3]; strings.Contains(msg, part) {
					t.Fatalf("the error shows %q of the password: %s", part, msg)
				}
			}
			if !strings.Contains(msg, path) || !strings.Contains(msg, "line ") || !strings.Contains(msg, tt.wantKey) {
				t.Fatalf("error %q: want the file, the line and the key %s", msg, tt.wantKey)
			}
			var perr toml.ParseError
			if !errors.As(err, &perr) {
				t.Fatalf("error %q: the toml.ParseError is not in its chain", msg)
			}
			t.Log(msg)
		})
	}
}

// TestStandbyPasswordFileRelative: standby.password_file, like
// master.password_file, is relative to the config file's directory, not
// to the directory the daemon was started in.
func TestStandbyPasswordFileRelative(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "master.pw"), []byte("m-secret\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "standby.pw"), []byte("s-secret\n"), 0o600))
	path := filepath.Join(dir, "hotstandby.toml")
	must(t, os.WriteFile(path, []byte(`data_dir = "d"
server_id = 7
[master]
user = "repl"
password_file = "master.pw"
[standby]
host = "127.0.0.1"
user = "applier"
password_file = "standby.pw"
`), 0o600))
	t.Chdir(t.TempDir()) // elsewhere: a relative path must not resolve here
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if cfg.standbyPassword != "s-secret" || cfg.Standby.PasswordFile != filepath.Join(dir, "standby.pw") {
		t.Fatalf("standby password %q from %q; want s-secret from %s", cfg.standbyPassword, cfg.Standby.PasswordFile, filepath.Join(dir, "standby.pw"))
	}
}
