package codec

import (
	"math/rand"

	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// TestDecodeMutations feeds Decode randomly mutated official examples (a
// fixed seed, so it is repeatable) and checks the FuzzDecode properties.
func TestDecodeMutations(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := newCodec(t)
	files, _ := filepath.Glob("testdata/examples/*.json")
	more, _ := filepath.Glob(examplesDir + "/*/*.json")
	files = append(files, more...)
	var seeds [][]byte
	for _, f := range files {
		b, _ := os.ReadFile(f)
		seeds = append(seeds, b)
	}
	tokens := []string{`null`, `{}`, `[]`, `""`, `"x"`, `1`, `-0.5e3`, `true`, `[null]`, `{"a":1}`, `"_given"`, `"contained"`, `"resourceType"`, `"Patient"`, `"\u0000"`, "\xff", `,`, `:`, `"extension"`, `[{"url":"x"}]`, `"reference"`, `"#"`, `"valueString"`}
	r := rand.New(rand.NewSource(1))
	n, accepted := 0, 0
	for ; n < 1000; n++ {
		b := append([]byte(nil), seeds[r.Intn(len(seeds))]...)
		for k := r.Intn(4) + 1; k > 0; k-- {
			if len(b) == 0 {
				break
			}
			i := r.Intn(len(b))
			switch r.Intn(5) {
			case 0:
				b[i] = byte(r.Intn(256))
			case 1:
				b = append(b[:i], b[min(len(b), i+r.Intn(20)):]...)
			case 2:
				tok := tokens[r.Intn(len(tokens))]
				b = append(b[:i], append([]byte(tok), b[i:]...)...)
			case 3:
				j := r.Intn(len(b))
				if j > i {
					b = append(b[:i], append(append([]byte(nil), b[i:j]...), b[i:]...)...)
				}
			case 4:
				b = b[:i]
			}
		}
		p, err := c.Decode(b)
		if err != nil {
			if e, ok := err.(*outcome.Error); !ok || e.HTTPStatus() != 400 {
				t.Fatalf("bad error %v for %q", err, b)
			}
			continue
		}
		accepted++
		out, err := c.Finalize(p, "f", 1, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("finalize %v", err)
		}
		if _, err := c.Decode(out); err != nil {
			t.Fatalf("stored form of %q does not re-decode: %v", b, err)
		}
		for _, m := range []string{SummaryTrue, SummaryText, SummaryData} {
			s, err := Summary(out, m)
			if err != nil {
				t.Fatalf("summary %v", err)
			}
			if _, err := c.Decode(s); err != nil {
				t.Fatalf("_summary=%s of %q does not decode: %v", m, b, err)
			}
		}
	}
	t.Logf("%d inputs, %d accepted", n, accepted)
}
