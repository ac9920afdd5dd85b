package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/casefhir/casefhir/server"
	"github.com/casefhir/casefhir/server/servertest"
)

const bundlesDir = "../../shared/fhir-r4/bundles"

// txEntry is a Bundle entry for tests.
type txEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Request  map[string]any  `json:"request"`
}

func txBundle(typ string, es ...txEntry) map[string]any {
	return map[string]any{"resourceType": "Bundle", "type": typ, "entry": es}
}

func entry(method, url, fullURL, resource string, extra ...string) txEntry {
	req := map[string]any{"method": method, "url": url}
	for i := 0; i+1 < len(extra); i += 2 {
		req[extra[i]] = extra[i+1]
	}
	e := txEntry{FullURL: fullURL, Request: req}
	if resource != "" {
		e.Resource = json.RawMessage(resource)
	}
	return e
}

// respEntries returns the response part of each entry of a response Bundle.
func respEntries(t *testing.T, r *servertest.Response) []map[string]any {
	t.Helper()
	m := r.JSON()
	if m["resourceType"] != "Bundle" {
		t.Fatalf("not a Bundle: %d %s", r.Status, r.Body)
	}
	var out []map[string]any
	es, _ := m["entry"].([]any)
	for _, e := range es {
		em, _ := e.(map[string]any)
		resp, _ := em["response"].(map[string]any)
		out = append(out, resp)
	}
	return out
}

// respEntriesAny returns the entries of a Bundle.
func respEntriesAny(t *testing.T, r *servertest.Response) []any {
	t.Helper()
	mustStatus(t, r, 200)
	es, _ := r.JSON()["entry"].([]any)
	return es
}

func statusCode(t *testing.T, s any) int {
	t.Helper()
	str, _ := s.(string)
	n, err := strconv.Atoi(strings.Fields(str + " x")[0])
	if err != nil {
		t.Fatalf("bad entry status %q", str)
	}
	return n
}

// idOf returns the id in a location "Type/id/_history/v" (absolute or not).
func idOf(loc string) string {
	if i := strings.Index(loc, "/_history/"); i >= 0 {
		loc = loc[:i]
	}
	return loc[strings.LastIndex(loc, "/")+1:]
}

func mustStatus(t *testing.T, r *servertest.Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func patient(id, family string, ident ...string) string {
	m := map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": family}}}
	if id != "" {
		m["id"] = id
	}
	if len(ident) == 2 {
		m["identifier"] = []any{map[string]any{"system": ident[0], "value": ident[1]}}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestTransactionOfficialExample runs Bundle-bundle-transaction.json on a
// server prepared so that every entry can succeed, and compares each
// entry's status with Bundle-bundle-response.json.
func TestTransactionOfficialExample(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	// Patient 234234 exists (ifNoneExist matches), Patient/123a is at
	// version 2 (ifMatch W/"2"), Patient/234 and one Patient with
	// identifier 123456 exist (deletes), Patient/12334 is at version 4.
	mustStatus(t, s.Do(t, "POST", "Patient", patient("", "Existing", "http:/example.org/fhir/ids", "234234")), 201)
	for i := 0; i < 2; i++ {
		s.Do(t, "PUT", "Patient/123a", patient("123a", "V"+strconv.Itoa(i)))
	}
	s.Do(t, "PUT", "Patient/234", patient("234", "ToDelete"))
	mustStatus(t, s.Do(t, "POST", "Patient", patient("", "CondDelete", "urn:x", "123456")), 201)
	for i := 0; i < 4; i++ {
		s.Do(t, "PUT", "Patient/12334", patient("12334", "V"+strconv.Itoa(i)))
	}
	for i := 0; i < 3; i++ { // the example's response: Patient/123 at version 4
		s.Do(t, "PUT", "Patient/123", patient("123", "V"+strconv.Itoa(i)))
	}

	raw := readFile(t, filepath.Join(bundlesDir, "Bundle-bundle-transaction.json"))
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	entries := b["entry"].([]any)

	t.Run("unsupported operation fails all", func(t *testing.T) {
		// ValueSet/$lookup (entry 7) is no operation of this server: the
		// whole transaction fails and nothing is stored.
		r := s.Do(t, "POST", "", raw)
		if r.Status < 400 {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		if !strings.Contains(string(r.Body), "Bundle.entry[7]") {
			t.Errorf("outcome does not name Bundle.entry[7]: %s", r.Body)
		}
		mustStatus(t, s.Do(t, "GET", "Patient/234", nil), 200)
		if et := s.Do(t, "GET", "Patient/123", nil).Header.Get("ETag"); et != `W/"3"` {
			t.Errorf("Patient/123 changed: ETag %s", et)
		}
	})

	// Without the $lookup entry, every entry succeeds.
	want := []int{201, 200, 200, 201, 200, 204, 204, 200, 304} // Bundle-bundle-response.json; 204 for the deletes (202 and "DELETE" there)
	var kept []any
	var wantResp []any
	resp := readFile(t, filepath.Join(bundlesDir, "Bundle-bundle-response.json"))
	var rb map[string]any
	_ = json.Unmarshal(resp, &rb)
	for i, e := range entries {
		if i != 7 {
			kept = append(kept, e)
			wantResp = append(wantResp, rb["entry"].([]any)[i])
		}
	}
	b["entry"] = kept
	r := s.Do(t, "POST", "", b)
	mustStatus(t, r, 200)
	if r.JSON()["type"] != "transaction-response" {
		t.Fatalf("type %v", r.JSON()["type"])
	}
	got := respEntries(t, r)
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, g := range got {
		st := statusCode(t, g["status"])
		ex := wantResp[i].(map[string]any)["response"].(map[string]any)
		exSt, _ := strconv.Atoi(strings.Fields(ex["status"].(string) + " 0")[0])
		if st != want[i] {
			t.Errorf("entry %d: status %d, want %d (example says %v)", i, st, want[i], ex["status"])
		}
		if exSt >= 200 && exSt < 300 && st >= 300 && st != 304 {
			t.Errorf("entry %d: the example succeeds, we answered %d", i, st)
		}
		if exLoc, _ := ex["location"].(string); exLoc != "" {
			loc, _ := g["location"].(string)
			exType, _, _ := strings.Cut(exLoc, "/")
			if !strings.Contains(loc, "/"+exType+"/") || !strings.Contains(loc, "/_history/") {
				t.Errorf("entry %d: location %s, example %s", i, loc, exLoc)
			}
			if ex["etag"] != nil && ex["etag"] != g["etag"] && i != 0 && i != 3 {
				t.Errorf("entry %d: etag %v, example %v", i, g["etag"], ex["etag"])
			}
		}
		if st == 200 || st == 201 {
			if i < 5 && g["etag"] == nil {
				t.Errorf("entry %d: no etag", i)
			}
			if i < 5 && g["lastModified"] == nil {
				t.Errorf("entry %d: no lastModified", i)
			}
		}
	}
	// The effects: Patient/123 exists, 123a is at version 3, both deletes done.
	mustStatus(t, s.Do(t, "GET", "Patient/123", nil), 200)
	if et := s.Do(t, "GET", "Patient/123a", nil).Header.Get("ETag"); et != `W/"3"` {
		t.Errorf("Patient/123a ETag %s, want W/\"3\"", et)
	}
	mustStatus(t, s.Do(t, "GET", "Patient/234", nil), 410)
	if n := total(t, s, "Patient?identifier=123456"); n != 0 {
		t.Errorf("conditional delete left %d matches", n)
	}
	if n := total(t, s, "Patient?identifier=http:/example.org/fhir/ids|456456"); n != 1 {
		t.Errorf("conditional update created %d", n)
	}
	if n := total(t, s, "Patient?identifier=http:/example.org/fhir/ids|234234"); n != 1 {
		t.Errorf("conditional create made %d resources, want 1", n)
	}
}

func total(t *testing.T, s *servertest.Server, query string) int {
	t.Helper()
	sep := "?"
	if strings.Contains(query, "?") {
		sep = "&"
	}
	r := s.Do(t, "GET", query+sep+"_total=accurate", nil)
	mustStatus(t, r, 200)
	n, _ := r.JSON()["total"].(float64)
	return int(n)
}

// TestTransactionOfficialPOSTAndPUTExamples runs the other official
// transaction Bundles: every entry succeeds and internal references point
// at the ids the server gave.
func TestTransactionOfficialPOSTAndPUTExamples(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	for _, name := range []string{"Bundle-hla-1.json", "Bundle-ussg-fht.json", "Bundle-xds.json"} {
		t.Run(name, func(t *testing.T) {
			raw := readFile(t, filepath.Join(bundlesDir, name))
			r := s.Do(t, "POST", "", raw)
			mustStatus(t, r, 200)
			for i, g := range respEntries(t, r) {
				if st := statusCode(t, g["status"]); st != 200 && st != 201 {
					t.Errorf("entry %d: status %d", i, st)
				}
			}
			if strings.Contains(string(r.Body), `"reference":"urn:uuid:`) {
				t.Errorf("a urn:uuid reference survived: %.300s", r.Body)
			}
		})
	}
}

// TestTransactionInvalidEntryPersistsNothing checks all-or-nothing: one
// invalid entry, and no create, update or delete of the others is visible
// to read, search or history.
func TestTransactionInvalidEntryPersistsNothing(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	mustStatus(t, s.Do(t, "PUT", "Patient/keep", patient("keep", "Before")), 201)
	mustStatus(t, s.Do(t, "PUT", "Patient/gone", patient("gone", "Before")), 201)
	histBefore := len(respEntriesAny(t, s.Do(t, "GET", "Patient/_history?_count=1000", nil)))

	b := txBundle("transaction",
		entry("POST", "Patient", "urn:uuid:11111111-1111-4111-8111-111111111111", patient("", "New1", "urn:tag", "atomic")),
		entry("POST", "Patient", "", patient("", "New2", "urn:tag", "atomic")),
		entry("PUT", "Patient/keep", "", patient("keep", "After", "urn:tag", "atomic")),
		entry("DELETE", "Patient/gone", "", ""),
		entry("POST", "Observation", "", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"},"bogus":true}`),
	)
	r := s.Do(t, "POST", "", b)
	if r.Status != 400 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if m := r.JSON(); m["resourceType"] != "OperationOutcome" || !strings.Contains(string(r.Body), "Bundle.entry[4]") {
		t.Fatalf("want an OperationOutcome naming Bundle.entry[4]: %s", r.Body)
	}
	if n := total(t, s, "Patient?identifier=urn:tag|atomic"); n != 0 {
		t.Errorf("search finds %d resources of the failed transaction", n)
	}
	if n := total(t, s, "Observation"); n != 0 {
		t.Errorf("%d Observations stored", n)
	}
	k := s.Do(t, "GET", "Patient/keep", nil)
	if k.Header.Get("ETag") != `W/"1"` || !strings.Contains(string(k.Body), "Before") {
		t.Errorf("Patient/keep changed: %s %s", k.Header.Get("ETag"), k.Body)
	}
	mustStatus(t, s.Do(t, "GET", "Patient/gone", nil), 200)
	if n := len(respEntriesAny(t, s.Do(t, "GET", "Patient/keep/_history", nil))); n != 1 {
		t.Errorf("Patient/keep has %d versions", n)
	}
	if n := len(respEntriesAny(t, s.Do(t, "GET", "Patient/_history?_count=1000", nil))); n != histBefore {
		t.Errorf("type history has %d versions, had %d", n, histBefore)
	}

	// A version conflict (If-Match) fails the same way: 412, nothing stored.
	b = txBundle("transaction",
		entry("POST", "Patient", "", patient("", "New3", "urn:tag", "atomic")),
		entry("PUT", "Patient/keep", "", patient("keep", "After"), "ifMatch", `W/"7"`),
	)
	r = s.Do(t, "POST", "", b)
	mustStatus(t, r, 412)
	if !strings.Contains(string(r.Body), "Bundle.entry[1]") {
		t.Errorf("outcome does not name Bundle.entry[1]: %s", r.Body)
	}
	if n := total(t, s, "Patient?identifier=urn:tag|atomic"); n != 0 {
		t.Errorf("search finds %d resources of the failed transaction", n)
	}

	// Writing one resource twice is refused.
	b = txBundle("transaction",
		entry("PUT", "Patient/keep", "", patient("keep", "A")),
		entry("DELETE", "Patient/keep", "", ""),
	)
	mustStatus(t, s.Do(t, "POST", "", b), 400)
	mustStatus(t, s.Do(t, "GET", "Patient/keep", nil), 200)
}

// TestTransactionReferenceRewriting checks urn:uuid and urn:oid fullUrls are
// replaced everywhere they are referenced, and conditional references are
// resolved.
func TestTransactionReferenceRewriting(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	mustStatus(t, s.Do(t, "PUT", "Practitioner/doc", `{"resourceType":"Practitioner","id":"doc","identifier":[{"system":"urn:staff","value":"42"}]}`), 201)
	pat := "urn:uuid:2b9a7c0e-5d43-4c57-9d2e-0f3a1b2c3d4e"
	org := "urn:oid:1.2.3.4.5"
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"weight"},
	  "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">See <a href=\"` + pat + `\">the patient</a> and <img src='` + pat + `'/></div>"},
	  "extension":[{"url":"http://example.org/ext/about","valueReference":{"reference":"` + pat + `"}},
	               {"url":"http://example.org/ext/uri","valueUri":"` + pat + `"}],
	  "identifier":[{"system":"urn:ietf:rfc:3986","value":"` + pat + `"}],
	  "subject":{"reference":"` + pat + `"},
	  "performer":[{"reference":"Practitioner?identifier=urn:staff|42"},{"reference":"` + org + `"}]}`
	b := txBundle("transaction",
		entry("POST", "Observation", "urn:uuid:0c7d4d0b-1c39-4d8e-9d7f-6b0f6f2f7a10", obs),
		entry("POST", "Patient", pat, `{"resourceType":"Patient","managingOrganization":{"reference":"`+org+`"}}`),
		entry("POST", "Organization", org, `{"resourceType":"Organization","name":"Acme"}`),
	)
	r := s.Do(t, "POST", "", b)
	mustStatus(t, r, 200)
	es := respEntries(t, r)
	obsID, patID, orgID := idOf(es[0]["location"].(string)), idOf(es[1]["location"].(string)), idOf(es[2]["location"].(string))
	o := s.Do(t, "GET", "Observation/"+obsID, nil)
	mustStatus(t, o, 200)
	body := string(o.Body)
	if strings.Count(body, "Patient/"+patID) != 5 {
		t.Errorf("want 5 rewritten references to Patient/%s (subject, extension reference, valueUri, href, src): %s", patID, body)
	}
	if strings.Contains(body, `"reference":"`+pat) || strings.Contains(body, `href=\"`+pat) || strings.Contains(body, `src='`+pat) || strings.Contains(body, `"valueUri":"`+pat) {
		t.Errorf("urn left in: %s", body)
	}
	if !strings.Contains(body, `"value":"`+pat+`"`) {
		t.Errorf("Identifier.value (a string) was rewritten: %s", body)
	}
	if !strings.Contains(body, `"reference":"Practitioner/doc"`) {
		t.Errorf("conditional reference not resolved: %s", body)
	}
	if !strings.Contains(body, `"reference":"Organization/`+orgID+`"`) {
		t.Errorf("urn:oid reference not rewritten: %s", body)
	}
	p := s.Do(t, "GET", "Patient/"+patID, nil)
	if !strings.Contains(string(p.Body), `"reference":"Organization/`+orgID+`"`) {
		t.Errorf("patient's organization not rewritten: %s", p.Body)
	}

	// A conditional reference with no match (or several) fails everything.
	for _, c := range []struct {
		ref  string
		want int
	}{{"Practitioner?identifier=urn:staff|nobody", 412}, {"Practitioner?_id=doc,doc2", 0}} {
		if c.want == 0 {
			mustStatus(t, s.Do(t, "PUT", "Practitioner/doc2", `{"resourceType":"Practitioner","id":"doc2"}`), 201)
			c.want = 412
		}
		b = txBundle("transaction",
			entry("POST", "Patient", "", patient("", "Nope", "urn:tag", "condref")),
			entry("POST", "Observation", "", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"performer":[{"reference":"`+c.ref+`"}]}`),
		)
		r = s.Do(t, "POST", "", b)
		mustStatus(t, r, c.want)
		if !strings.Contains(string(r.Body), "Bundle.entry[1]") {
			t.Errorf("outcome does not name Bundle.entry[1]: %s", r.Body)
		}
		if n := total(t, s, "Patient?identifier=urn:tag|condref"); n != 0 {
			t.Errorf("%d resources stored", n)
		}
	}
}

// TestTransactionConcurrentNoLostUpdate runs conflicting transactions in
// parallel: each reads two counters and writes both incremented with
// If-Match. The final counters equal the number of successful
// transactions; losers fail with 409 or 412.
func TestTransactionConcurrentNoLostUpdate(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	ids := []string{"c1", "c2"}
	put := func(id string, n int) string {
		return fmt.Sprintf(`{"resourceType":"Patient","id":%q,"multipleBirthInteger":%d}`, id, n)
	}
	for _, id := range ids {
		mustStatus(t, s.Do(t, "PUT", "Patient/"+id, put(id, 0)), 201)
	}
	const workers, rounds = 6, 6
	var mu sync.Mutex
	success, failed := 0, 0
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				var es []txEntry
				for _, id := range ids {
					r := s.Do(t, "GET", "Patient/"+id, nil)
					var p struct {
						N int `json:"multipleBirthInteger"`
					}
					_ = json.Unmarshal(r.Body, &p)
					es = append(es, entry("PUT", "Patient/"+id, "", put(id, p.N+1), "ifMatch", r.Header.Get("ETag")))
				}
				r := s.Do(t, "POST", "", txBundle("transaction", es...), "Prefer", "return=minimal")
				mu.Lock()
				switch r.Status {
				case 200:
					success++
				case http.StatusConflict, http.StatusPreconditionFailed:
					failed++
				default:
					t.Errorf("status %d: %s", r.Status, r.Body)
				}
				mu.Unlock()
			}
		}()
	}
	// A plain update racing with the transactions must not be lost either.
	wg.Wait()
	for _, id := range ids {
		r := s.Do(t, "GET", "Patient/"+id, nil)
		var p struct {
			N int `json:"multipleBirthInteger"`
		}
		_ = json.Unmarshal(r.Body, &p)
		if p.N != success {
			t.Errorf("%s: counter %d, successful transactions %d (lost update)", id, p.N, success)
		}
		if et := r.Header.Get("ETag"); et != fmt.Sprintf(`W/"%d"`, success+1) {
			t.Errorf("%s: ETag %s after %d successes", id, et, success)
		}
	}
	if success == 0 || failed == 0 {
		t.Logf("no contention seen: %d successes, %d failures", success, failed)
	}
	t.Logf("%d successful, %d refused", success, failed)
}

// TestTransactionLarge stores a 3000-entry transaction.
func TestTransactionLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	s := servertest.Start(t, servertest.Options{})
	var es []txEntry
	for i := 0; i < 3000; i++ {
		es = append(es, entry("POST", "Patient", "", patient("", "Big"+strconv.Itoa(i), "urn:tag", "large")))
	}
	r := s.Do(t, "POST", "", txBundle("transaction", es...), "Prefer", "return=minimal")
	mustStatus(t, r, 200)
	got := respEntries(t, r)
	if len(got) != 3000 {
		t.Fatalf("%d entries", len(got))
	}
	for _, i := range []int{0, 1499, 2999} {
		if st := statusCode(t, got[i]["status"]); st != 201 {
			t.Fatalf("entry %d: %d", i, st)
		}
		loc := got[i]["location"].(string)
		mustStatus(t, s.Do(t, "GET", "Patient/"+idOf(loc), nil), 200)
	}
}

// TestBundleLimits checks the entry and body limits answer 413 with an
// OperationOutcome.
func TestBundleLimits(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Config: server.Config{MaxBundleEntries: 3, MaxBodyBytes: 4096}})
	for _, typ := range []string{"transaction", "batch"} {
		var es []txEntry
		for i := 0; i < 4; i++ {
			es = append(es, entry("POST", "Patient", "", patient("", "L")))
		}
		r := s.Do(t, "POST", "", txBundle(typ, es...))
		mustStatus(t, r, 413)
		if r.JSON()["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: not an OperationOutcome: %s", typ, r.Body)
		}
		big := patient("", strings.Repeat("x", 5000))
		r = s.Do(t, "POST", "", txBundle(typ, entry("POST", "Patient", "", big)))
		mustStatus(t, r, 413)
		if r.JSON()["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: not an OperationOutcome: %s", typ, r.Body)
		}
	}
	if n := total(t, s, "Patient"); n != 0 {
		t.Errorf("%d stored", n)
	}
}

// TestBatchEntriesIndependent checks batch entries succeed or fail on
// their own (https://hl7.org/fhir/R4/http.html#brules).
func TestBatchEntriesIndependent(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	mustStatus(t, s.Do(t, "PUT", "Patient/b1", patient("b1", "One")), 201)
	b := txBundle("batch",
		entry("POST", "Patient", "", patient("", "Ok", "urn:tag", "batch")),
		entry("POST", "Patient", "", `{"resourceType":"Patient","bogus":1}`),
		entry("GET", "Patient/missing", "", ""),
		entry("PUT", "Patient/b1", "", patient("b1", "Two"), "ifMatch", `W/"9"`),
		entry("DELETE", "/Patient/b1", "", ""),
		entry("GET", "/Patient?identifier=urn:tag|batch", "", ""),
	)
	r := s.Do(t, "POST", "/fhir/", b)
	mustStatus(t, r, 200)
	if r.JSON()["type"] != "batch-response" {
		t.Fatalf("type %v", r.JSON()["type"])
	}
	want := []int{201, 400, 404, 412, 204, 200}
	got := respEntries(t, r)
	for i, g := range got {
		if st := statusCode(t, g["status"]); st != want[i] {
			t.Errorf("entry %d: status %d, want %d", i, st, want[i])
		}
		if st := statusCode(t, g["status"]); st >= 400 && g["outcome"] == nil {
			t.Errorf("entry %d: failure without outcome", i)
		}
	}
	if n := total(t, s, "Patient?identifier=urn:tag|batch"); n != 1 {
		t.Errorf("the good create is not stored (%d)", n)
	}
	mustStatus(t, s.Do(t, "GET", "Patient/b1", nil), 410)
}

// TestBatchOfficialExamples runs the official batch requests (GETs with
// leading '/') on a server holding Patient/example: every entry answers as
// in the matching official batch-response.
func TestBatchOfficialExamples(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	mustStatus(t, s.Do(t, "PUT", "Patient/example", readFile(t, "../../shared/fhir-r4/examples/Patient/Patient-example.json")), 201)
	for _, c := range []struct{ req, resp string }{
		{"Bundle-bundle-request-medsallergies.json", "Bundle-bundle-response-medsallergies.json"},
		{"Bundle-bundle-request-simplesummary.json", "Bundle-bundle-response-simplesummary.json"},
	} {
		t.Run(c.req, func(t *testing.T) {
			r := s.Do(t, "POST", "", readFile(t, filepath.Join(bundlesDir, c.req)))
			mustStatus(t, r, 200)
			var ex map[string]any
			_ = json.Unmarshal(readFile(t, filepath.Join(bundlesDir, c.resp)), &ex)
			exEntries := ex["entry"].([]any)
			got := respEntries(t, r)
			if len(got) != len(exEntries) {
				t.Fatalf("%d entries, the example has %d", len(got), len(exEntries))
			}
			for i, g := range got {
				st := statusCode(t, g["status"])
				exResp, _ := exEntries[i].(map[string]any)["response"].(map[string]any)
				exSt := 200
				if exResp != nil {
					exSt = statusCode(t, exResp["status"])
				}
				if st != exSt {
					t.Errorf("entry %d: status %d, example %d: %v", i, st, exSt, g["outcome"])
				}
			}
		})
	}
}

// TestTransactionUpdatesReadInBatch checks that the updates of one
// transaction, whose current versions are read in one query per type,
// follow each resource's own current version: an existing one, a deleted
// one (its tombstone) and a new one.
func TestTransactionUpdatesReadInBatch(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	mustStatus(t, s.Do(t, "PUT", "Patient/tx-old", patient("tx-old", "Old")), 201)
	mustStatus(t, s.Do(t, "PUT", "Patient/tx-gone", patient("tx-gone", "Gone")), 201)
	mustStatus(t, s.Do(t, "DELETE", "Patient/tx-gone", nil), 204)
	r := s.Do(t, "POST", "", txBundle("transaction",
		entry("PUT", "Patient/tx-old", "", patient("tx-old", "Old2")),
		entry("PUT", "Patient/tx-gone", "", patient("tx-gone", "Back")),
		entry("PUT", "Patient/tx-new", "", patient("tx-new", "New")),
	))
	mustStatus(t, r, 200)
	got := respEntries(t, r)
	for i, want := range []string{`W/"2"`, `W/"3"`, `W/"1"`} {
		if got[i]["etag"] != want {
			t.Fatalf("entry %d: etag %v, want %s (%v)", i, got[i]["etag"], want, got[i])
		}
	}
	for _, id := range []string{"tx-old", "tx-gone", "tx-new"} {
		mustStatus(t, s.Do(t, "GET", "Patient/"+id, nil), 200)
	}
}
