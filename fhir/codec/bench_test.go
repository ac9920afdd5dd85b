package codec

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

func benchBody(b *testing.B, name string) []byte {
	b.Helper()
	body, err := os.ReadFile("testdata/examples/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

var benchFiles = []struct{ name, file string }{
	{"Patient", "Patient-example.json"},
	{"CarePlan4.5KB", "CarePlan-gpvisit.json"},
}

func BenchmarkDecode(b *testing.B) {
	c := newCodec(b)
	for _, bf := range benchFiles {
		body := benchBody(b, bf.file)
		b.Run(bf.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFinalize(b *testing.B) {
	c := newCodec(b)
	now := time.Now()
	for _, bf := range benchFiles {
		body := benchBody(b, bf.file)
		p, err := c.Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bf.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Finalize(p, "id1", 2, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkShape compares shaping the stored bytes with the alternatives:
// a full proto decode+encode, and encoding/json into a map and back.
func BenchmarkShape(b *testing.B) {
	c := newCodec(b)
	for _, bf := range benchFiles {
		p, err := c.Decode(benchBody(b, bf.file))
		if err != nil {
			b.Fatal(err)
		}
		s, err := c.Finalize(p, "id1", 1, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bf.name+"/SummaryTrue", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Summary(s, SummaryTrue); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bf.name+"/SummaryData", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Summary(s, SummaryData); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bf.name+"/Elements", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Elements(s, []string{"status", "subject"}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bf.name+"/Pretty", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Pretty(s)
			}
		})
		b.Run(bf.name+"/ProtoDecodeEncode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := c.Decode(s)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Encode(p.Msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bf.name+"/JSONMapRoundTrip", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(s, &m); err != nil {
					b.Fatal(err)
				}
				delete(m, "text")
				if _, err := json.Marshal(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkApplyJSONPatch(b *testing.B) {
	c := newCodec(b)
	p, err := c.Decode(benchBody(b, "Patient-example.json"))
	if err != nil {
		b.Fatal(err)
	}
	s, _ := c.Finalize(p, "id1", 1, time.Now())
	patch := []byte(`[{"op":"replace","path":"/gender","value":"female"},{"op":"add","path":"/name/0/given/-","value":"B"}]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ApplyJSONPatch(s, patch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan measures the FHIR JSON pre-scan Decode runs before
// jsonformat.
func BenchmarkScan(b *testing.B) {
	for _, bf := range benchFiles {
		body := benchBody(b, bf.file)
		b.Run(bf.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := scan(body); r.fatal || len(r.issues) > 0 {
					b.Fatal(r.issues)
				}
			}
		})
	}
}
