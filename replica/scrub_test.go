package replica

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestScrubErrKeepsChain: the source's password is gone from an error's
// text, and the server's error (its code) is still in the chain.
func TestScrubErrKeepsChain(t *testing.T) {
	r := &Replica{cfg: Config{Source: Source{Password: "pw'1"}}}
	cause := &mysql.MySQLError{Number: 1045, Message: `Access denied near 'pw\'1'`}
	err := fmt.Errorf("standby x: START SLAVE: %w", r.scrubErr(cause))
	if strings.Contains(err.Error(), "pw") {
		t.Fatalf("scrubbed error shows the password: %s", err)
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("errors.As(%v) found no MySQLError 1045: the chain was lost", err)
	}
	if r.scrubErr(nil) != nil {
		t.Fatal("scrubErr(nil) is not nil")
	}
}
