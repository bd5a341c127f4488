package applier

import (
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// TestB64StreamMatchesWholeEncoding: events written in pieces of any size,
// taken out at any point, give exactly the base64 of their concatenation.
func TestB64StreamMatchesWholeEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		var b b64Stream
		var got string
		var all []byte
		for range r.IntN(6) + 1 {
			p := make([]byte, r.IntN(10000))
			for j := range p {
				p[j] = byte(r.Uint32())
			}
			if i%7 == 0 {
				p = p[:r.IntN(3)] // tiny pieces exercise the carry
			}
			all = append(all, p...)
			b.write(p)
			if r.IntN(2) == 0 {
				got += b.take()
			}
		}
		if len(all) == 0 {
			continue
		}
		want := base64.StdEncoding.EncodeToString(all)
		if got += b.final(); got != want {
			t.Fatalf("case %d: %d bytes: encodings differ", i, len(all))
		}
	}
}
