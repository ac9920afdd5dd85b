package codec

import (
	"bytes"
	"testing"
	"time"
)

func TestFinalizePutsResourceTypeIDMetaFirst(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Decode([]byte(`{"resourceType":"Patient","name":[{"family":"X"}],"active":true,"contained":[{"resourceType":"Organization","id":"o","name":"Y"}],"managingOrganization":{"reference":"#o"}}`))
	if err != nil {
		t.Fatal(err)
	}
	js, err := c.Finalize(p, "abc", 3, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Patient","id":"abc","meta":{"lastUpdated":"2024-01-02T03:04:05.000Z","versionId":"3"},`
	if !bytes.HasPrefix(js, []byte(want)) {
		t.Fatalf("Finalize = %s", js)
	}
	if _, err := c.Decode(js); err != nil {
		t.Fatalf("reordered output does not decode: %v", err)
	}
	if got := leadingKeys([]byte(`not json`)); string(got) != "not json" {
		t.Error("leadingKeys changed invalid input")
	}
}

func TestLeadingKeysEdgeCases(t *testing.T) {
	cases := map[string]string{
		`{"a":1,"resourceType":"X"}`:                          `{"resourceType":"X","a":1}`,
		`{"b":"x,\"y}","id":"1","meta":{"v":[1,{"c":2}]}}`:    `{"id":"1","meta":{"v":[1,{"c":2}]},"b":"x,\"y}"}`,
		`{"resourceType":"X"}`:                                `{"resourceType":"X"}`,
		`{"s":"\\","resourceType":"Y"}`:                       `{"resourceType":"Y","s":"\\"}`,
		`{"contained":[{"resourceType":"Z","id":"c"}],"z":0}`: `{"contained":[{"resourceType":"Z","id":"c"}],"z":0}`,
		`{"a":[1,2}`: `{"a":[1,2}`,
	}
	for in, want := range cases {
		if got := string(leadingKeys([]byte(in))); got != want {
			t.Errorf("leadingKeys(%s) = %s, want %s", in, got, want)
		}
	}
}
