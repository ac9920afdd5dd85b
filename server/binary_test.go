package server_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/server"
	"github.com/casefhir/casefhir/server/auth/authtest"
	"github.com/casefhir/casefhir/server/servertest"
)

// pdf is a small document that is not FHIR JSON.
var pdf = []byte("%PDF-1.4\n% casefhir test document\x00\x01\x02\xff\n%%EOF\n")

// TestBinaryDocuments: a raw upload is stored as a Binary; a read whose
// Accept is not a FHIR format gets the raw bytes and the contentType; a
// FHIR read gets the Binary resource.
func TestBinaryDocuments(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	r := s.Do(t, "POST", "Binary", pdf, "Content-Type", "application/pdf")
	wantStatus(t, r, 201)
	id, _ := r.JSON()["id"].(string)
	if id == "" {
		t.Fatalf("create: %s", r.Body)
	}
	raw := s.Do(t, "GET", "Binary/"+id, nil, "Accept", "application/pdf")
	wantStatus(t, raw, 200)
	if !bytes.Equal(raw.Body, pdf) || raw.Header.Get("Content-Type") != "application/pdf" || raw.Header.Get("ETag") == "" {
		t.Fatalf("raw read: %q %q", raw.Header.Get("Content-Type"), raw.Body)
	}
	res := s.Do(t, "GET", "Binary/"+id, nil, "Accept", "application/fhir+json")
	wantStatus(t, res, 200)
	m := res.JSON()
	if m["resourceType"] != "Binary" || m["contentType"] != "application/pdf" || m["data"] != base64.StdEncoding.EncodeToString(pdf) {
		t.Fatalf("FHIR read: %.300s", res.Body)
	}
	// vread, and PUT with the document's own type.
	wantStatus(t, s.Do(t, "GET", "Binary/"+id+"/_history/1", nil, "Accept", "application/pdf"), 200)
	put := s.Do(t, "PUT", "Binary/doc-1", "plain text document", "Content-Type", "text/plain")
	wantStatus(t, put, 201)
	got := s.Do(t, "GET", "Binary/doc-1", nil, "Accept", "text/plain")
	if string(got.Body) != "plain text document" || !strings.HasPrefix(got.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("PUT then raw read: %q %s", got.Header.Get("Content-Type"), got.Body)
	}
	// Other resources still refuse what they cannot produce.
	wantStatus(t, s.Do(t, "GET", "Patient", nil, "Accept", "application/pdf"), 406)
}

// TestBinaryMaxBody: uploads are bounded by --max-body.
func TestBinaryMaxBody(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Config: server.Config{MaxBodyBytes: 4096}})
	wantStatus(t, s.Do(t, "POST", "Binary", bytes.Repeat([]byte("x"), 3000), "Content-Type", "application/octet-stream"), 201)
	wantStatus(t, s.Do(t, "POST", "Binary", bytes.Repeat([]byte("x"), 5000), "Content-Type", "application/octet-stream"), 413)
}

// TestBinarySecurityContext: a SMART client may read a Binary only if it
// may read the resource its securityContext names.
func TestBinarySecurityContext(t *testing.T) {
	e := startSMART(t, smartOptions{AuditOff: true}, authtest.Client{ID: "backend"},
		authtest.Client{ID: "bin-a", Claims: map[string]any{"patient": "bin-pa"}},
		authtest.Client{ID: "bin-b", Claims: map[string]any{"patient": "bin-pb"}})
	all := e.prov.Token(t, "backend", "system/*.cruds")
	for _, p := range []string{"bin-pa", "bin-pb"} {
		wantStatus(t, e.do(t, all, "PUT", "Patient/"+p, `{"resourceType":"Patient","id":"`+p+`"}`), 201)
	}
	wantStatus(t, e.do(t, all, "PUT", "DocumentReference/bin-doc", `{"resourceType":"DocumentReference","id":"bin-doc","status":"current",`+
		`"subject":{"reference":"Patient/bin-pa"},"content":[{"attachment":{"url":"Binary/bin-1","contentType":"application/pdf"}}]}`), 201)
	wantStatus(t, e.do(t, all, "PUT", "Binary/bin-1", pdf, "Content-Type", "application/pdf", "X-Security-Context", "DocumentReference/bin-doc"), 201)
	wantStatus(t, e.do(t, all, "PUT", "Binary/bin-2", pdf, "Content-Type", "application/pdf"), 201)

	a := e.prov.Token(t, "bin-a", "patient/Binary.rs patient/DocumentReference.rs")
	r := e.do(t, a, "GET", "Binary/bin-1", nil, "Accept", "application/pdf")
	wantStatus(t, r, 200)
	if !bytes.Equal(r.Body, pdf) {
		t.Fatalf("raw read by the patient: %q", r.Body)
	}
	// Searches apply the same rule.
	if keys := bundleKeys(e.do(t, a, "GET", "Binary", nil).JSON()); len(keys) != 1 || keys[0] != "Binary/bin-1" {
		t.Errorf("patient A's Binary search: %v", keys)
	}
	// Another patient, a client without read on the context's type, and a
	// Binary without securityContext: not visible to patient clients.
	b := e.prov.Token(t, "bin-b", "patient/Binary.rs patient/DocumentReference.rs")
	wantStatus(t, e.do(t, b, "GET", "Binary/bin-1", nil, "Accept", "application/pdf"), 404)
	noDoc := e.prov.Token(t, "bin-a", "patient/Binary.rs")
	wantStatus(t, e.do(t, noDoc, "GET", "Binary/bin-1", nil, "Accept", "application/pdf"), 404)
	wantStatus(t, e.do(t, a, "GET", "Binary/bin-2", nil, "Accept", "application/pdf"), 404)
	// A system client reading Binaries needs read on the context's type too.
	sysBin := e.prov.Token(t, "backend", "system/Binary.rs")
	wantStatus(t, e.do(t, sysBin, "GET", "Binary/bin-1", nil, "Accept", "application/pdf"), 404)
	wantStatus(t, e.do(t, sysBin, "GET", "Binary/bin-2", nil, "Accept", "application/pdf"), 200)
}
