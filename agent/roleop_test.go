package agent

import (
	"strings"
	"testing"
)

// TestRoleOpLock: a promote, switchover or rejoin refuses to start while
// another one runs, naming it and who asked; ending it (once, or twice)
// lets the next one start.
func TestRoleOpLock(t *testing.T) {
	var l roleOpLock
	end, err := l.begin("switchover", "uid=0 pid=10")
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"promote", "rejoin", "switchover", "promotion"} {
		if _, err := l.begin(op, "uid=0 pid=11"); err == nil || !strings.Contains(err.Error(), op+" refused: a switchover (by uid=0 pid=10, since ") {
			t.Fatalf("%s during a switchover: %v", op, err)
		}
	}
	end()
	end() // idempotent
	end2, err := l.begin("rejoin", "uid=0 pid=12")
	if err != nil {
		t.Fatalf("rejoin after the switchover ended: %v", err)
	}
	end() // the old lease ending again must not release the new one
	if _, err := l.begin("promote", "x"); err == nil {
		t.Fatal("an ended lease released the next operation's lock")
	}
	end2()
}
