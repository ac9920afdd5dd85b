package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/server/servertest"
)

// TestAuditTrail checks that reads and writes leave AuditEvents that name
// the interaction and target but carry no resource content or search
// values.
func TestAuditTrail(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	id, _ := create(t, s, "Patient", patientJSON)
	wantStatus(t, s.Do(t, "GET", "Patient/"+id, nil), 200)
	wantStatus(t, s.Do(t, "GET", "Patient?family=Chalmers", nil), 200)
	wantStatus(t, s.Do(t, "GET", "metadata", nil), 200)

	// The events are durable before the responses are sent; flushing
	// moves them from the trail's journal into the store.
	if err := s.AuditFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := s.Do(t, "GET", "AuditEvent?_count=100", nil)
	wantStatus(t, r, 200)
	body := string(r.Body)
	if e, _ := r.JSON()["entry"].([]any); len(e) < 3 {
		t.Fatalf("%d AuditEvents recorded for create, read and search", len(e))
	}
	for _, want := range []string{`"code":"create"`, `"code":"read"`, `"code":"search-type"`, "Patient/" + id} {
		if !strings.Contains(body, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
	for _, phi := range []string{"Chalmers", "Peter", "1974-12-25", "12345"} {
		if strings.Contains(body, phi) {
			t.Errorf("audit trail contains PHI %q", phi)
		}
	}
	// Stored events are valid R4 (they are written without the codec).
	c, err := codec.New()
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal([]byte(body), &bundle); err != nil {
		t.Fatal(err)
	}
	for _, e := range bundle.Entry {
		if _, err := c.Decode(e.Resource); err != nil {
			t.Errorf("stored AuditEvent is not valid R4: %v", outcome.As(err).Diagnostics)
		}
	}
	if strings.Contains(body, `"code":"capabilities"`) {
		t.Error("the public CapabilityStatement read was audited")
	}
}

// TestAuditTrailBundleEntries checks that every entry of a batch and of a
// committed transaction is audited, naming its own target.
func TestAuditTrailBundleEntries(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"request":{"method":"PUT","url":"Patient/audited-tx-1"},"resource":{"resourceType":"Patient","id":"audited-tx-1","active":true}},
	  {"request":{"method":"PUT","url":"Organization/audited-tx-2"},"resource":{"resourceType":"Organization","id":"audited-tx-2","name":"X"}}]}`
	wantStatus(t, s.Do(t, "POST", "", tx), 200)
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/audited-tx-1"}}]}`
	wantStatus(t, s.Do(t, "POST", "", batch), 200)
	if err := s.AuditFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	body := string(s.Do(t, "GET", "AuditEvent?_count=200", nil).Body)
	if !strings.Contains(body, "Patient/audited-tx-1") || !strings.Contains(body, "Organization/audited-tx-2") ||
		strings.Count(body, "Patient/audited-tx-1") < 2 {
		t.Fatalf("transaction and batch entries not audited one by one: %.2000s", body)
	}
}
