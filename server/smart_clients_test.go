package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/server/auth/authtest"
)

// clientsDir is the Node package with the real FHIR clients.
const clientsDir = "testdata/clients"

// ensureClients runs "npm ci" in dir unless node_modules matches
// package-lock.json (see authtest.EnsureNodeModules).
func ensureClients(t *testing.T, dir string) {
	t.Helper()
	if err := authtest.EnsureNodeModules(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
}

// clientsSummary is what clients.mjs prints.
type clientsSummary struct {
	FhirKit struct {
		Error       string   `json:"error"`
		ReadID      string   `json:"readId"`
		Pages       int      `json:"pages"`
		PagedIDs    []string `json:"pagedIds"`
		TxType      string   `json:"txType"`
		TxStatuses  []string `json:"txStatuses"`
		TxLocations []string `json:"txLocations"`
	} `json:"fhirKit"`
	FhirClient struct {
		Error                string   `json:"error"`
		TokenURI             string   `json:"tokenUri"`
		AuthorizeURI         string   `json:"authorizeUri"`
		CodeChallengeMethods []string `json:"codeChallengeMethods"`
		AuthorizeRedirect    string   `json:"authorizeRedirect"`
		PatientID            string   `json:"patientId"`
		ReadID               string   `json:"readId"`
		ObservationIDs       []string `json:"observationIds"`
		OtherObservationIDs  []string `json:"otherObservationIds"`
		OtherReadStatus      int      `json:"otherReadStatus"`
	} `json:"fhirClient"`
	Medplum struct {
		Error          string   `json:"error"`
		ReadID         string   `json:"readId"`
		SearchIDs      []string `json:"searchIds"`
		CreatedID      string   `json:"createdId"`
		CreatedVersion string   `json:"createdVersion"`
		ReadBackText   string   `json:"readBackText"`
	} `json:"medplum"`
}

// TestSMARTRealClients runs fhir-kit-client, fhirclient (SMART JS client)
// and @medplum/core from Node against the server with real tokens from
// the OpenID provider.
func TestSMARTRealClients(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found on PATH (Node.js 20+ is needed for the client tests): %v", err)
	}
	ensureClients(t, clientsDir)
	const pid, other = "client-pat", "client-other"
	e := startSMART(t, smartOptions{},
		authtest.Client{ID: "client-backend"},
		authtest.Client{ID: "client-patient-app", Claims: map[string]any{"patient": pid}},
	)
	sys := e.prov.Token(t, "client-backend", "system/*.cruds")
	for _, p := range []string{pid, other} {
		wantStatus(t, e.do(t, sys, "PUT", "Patient/"+p, map[string]any{"resourceType": "Patient", "id": p,
			"name": []any{map[string]any{"family": "Client"}}}), 201)
	}
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("client-obs-%d", i)
		want = append(want, "Observation/"+id)
		wantStatus(t, e.do(t, sys, "PUT", "Observation/"+id, map[string]any{"resourceType": "Observation", "id": id, "status": "final",
			"code": map[string]any{"text": "client"}, "subject": caseRef("Patient/" + pid)}), 201)
	}
	wantStatus(t, e.do(t, sys, "PUT", "Observation/client-other-obs", map[string]any{"resourceType": "Observation", "id": "client-other-obs",
		"status": "final", "code": map[string]any{"text": "other"}, "subject": caseRef("Patient/" + other)}), 201)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "clients.mjs")
	cmd.Dir = clientsDir
	cmd.Env = append(os.Environ(),
		"CASEFHIR_BASE="+e.s.URL,
		"CASEFHIR_SYSTEM_TOKEN="+sys,
		"CASEFHIR_PATIENT_TOKEN="+e.prov.Token(t, "client-patient-app", "patient/*.rs launch/patient"),
		"CASEFHIR_PATIENT="+pid,
		"CASEFHIR_OTHER_PATIENT="+other,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node clients.mjs: %v\n%s", err, stderr.Bytes())
	}
	var sum clientsSummary
	if err := json.Unmarshal(bytes.TrimSpace(out), &sum); err != nil {
		t.Fatalf("summary: %v: %s", err, out)
	}
	t.Logf("clients summary: %s", out)

	fk := sum.FhirKit
	if fk.Error != "" {
		t.Errorf("fhir-kit-client: %s", fk.Error)
	}
	if fk.ReadID != "Patient/"+pid {
		t.Errorf("fhir-kit-client read %q", fk.ReadID)
	}
	got := slices.Clone(fk.PagedIDs)
	slices.Sort(got)
	if fk.Pages != 3 || !slices.Equal(got, want) {
		t.Errorf("fhir-kit-client paged %d pages: %v, want 3 pages with %v", fk.Pages, fk.PagedIDs, want)
	}
	if fk.TxType != "transaction-response" || len(fk.TxStatuses) != 2 || !strings.HasPrefix(fk.TxStatuses[0], "201") || !strings.HasPrefix(fk.TxStatuses[1], "201") {
		t.Errorf("fhir-kit-client transaction: %s %v", fk.TxType, fk.TxStatuses)
	} else {
		// The urn:uuid reference was rewritten to the created Condition.
		cond := strings.TrimPrefix(fk.TxLocations[0], e.s.URL+"/")
		cond = cond[:strings.Index(cond, "/_history/")]
		obs := e.do(t, sys, "GET", strings.TrimPrefix(fk.TxLocations[1], e.s.URL+"/"), nil)
		wantStatus(t, obs, 200)
		if !strings.Contains(string(obs.Body), `"reference":"`+cond+`"`) {
			t.Errorf("transaction Observation does not reference %s: %s", cond, obs.Body)
		}
	}

	fc := sum.FhirClient
	if fc.Error != "" {
		t.Errorf("fhirclient: %s", fc.Error)
	}
	if fc.TokenURI != e.prov.TokenEndpoint || !strings.HasPrefix(fc.AuthorizeURI, e.prov.Issuer) || !slices.Equal(fc.CodeChallengeMethods, []string{"S256"}) {
		t.Errorf("fhirclient discovery: token %q authorize %q methods %v", fc.TokenURI, fc.AuthorizeURI, fc.CodeChallengeMethods)
	}
	if !strings.HasPrefix(fc.AuthorizeRedirect, fc.AuthorizeURI+"?") || !strings.Contains(fc.AuthorizeRedirect, "code_challenge_method=S256") ||
		!strings.Contains(fc.AuthorizeRedirect, "aud="+strings.ReplaceAll(strings.ReplaceAll(e.s.URL, ":", "%3A"), "/", "%2F")) {
		t.Errorf("fhirclient authorize redirect %q", fc.AuthorizeRedirect)
	}
	if fc.PatientID != pid || fc.ReadID != "Patient/"+pid {
		t.Errorf("fhirclient patient %q read %q", fc.PatientID, fc.ReadID)
	}
	// fhir-kit-client's transaction (run first) added one Observation.
	wantAll := slices.Clone(want)
	if len(fk.TxLocations) == 2 {
		loc := strings.TrimPrefix(fk.TxLocations[1], e.s.URL+"/")
		wantAll = append(wantAll, loc[:strings.Index(loc, "/_history/")])
		slices.Sort(wantAll)
	}
	got = slices.Clone(fc.ObservationIDs)
	slices.Sort(got)
	if !slices.Equal(got, wantAll) {
		t.Errorf("fhirclient observations %v, want %v", fc.ObservationIDs, wantAll)
	}
	if len(fc.OtherObservationIDs) != 0 || fc.OtherReadStatus != 404 {
		t.Errorf("fhirclient sees the other patient: observations %v, read status %d", fc.OtherObservationIDs, fc.OtherReadStatus)
	}

	mp := sum.Medplum
	if mp.Error != "" {
		t.Errorf("@medplum/core: %s", mp.Error)
	}
	if mp.ReadID != "Patient/"+pid {
		t.Errorf("@medplum/core read %q", mp.ReadID)
	}
	// The search ran before the create; fhir-kit-client's transaction
	// added one Observation.
	if len(mp.SearchIDs) != len(want)+1 || !slices.Contains(mp.SearchIDs, want[0]) {
		t.Errorf("@medplum/core search %v", mp.SearchIDs)
	}
	if mp.CreatedID == "" || mp.CreatedVersion != "1" || mp.ReadBackText != "medplum created" {
		t.Errorf("@medplum/core create: id %q version %q read back %q", mp.CreatedID, mp.CreatedVersion, mp.ReadBackText)
	} else {
		wantStatus(t, e.do(t, sys, "GET", "Observation/"+mp.CreatedID, nil), 200)
	}
}
