package bulk_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/bulk"
	"github.com/casefhir/casefhir/server/bulk/bulkbench"
	"github.com/casefhir/casefhir/server/interaction"
)

// fakeAccess is an interaction.Access with fixed grants.
type fakeAccess struct {
	subject  string
	types    []string          // readable types ("*" for all)
	patient  string            // compartment bound, if any
	restrict map[string]string // type -> granular query
}

func (a fakeAccess) Allow(_ interaction.Action, typ string) error {
	if slices.Contains(a.types, "*") || slices.Contains(a.types, typ) {
		return nil
	}
	return outcome.New(outcome.Forbidden, "scope missing")
}

func (a fakeAccess) Compartment(_ interaction.Action, _ string) (string, bool) {
	return a.patient, a.patient != ""
}

func (a fakeAccess) Restrictions(_ interaction.Action, typ string) []url.Values {
	q, ok := a.restrict[typ]
	if !ok {
		return nil
	}
	v, _ := url.ParseQuery(q)
	return []url.Values{v}
}

func (a fakeAccess) Subject() string { return a.subject }

type env struct {
	svc  *bulk.Service
	st   store.Store
	reg  *search.Registry
	dir  string
	keys []string
}

const base = "http://test.invalid/fhir"

func newEnv(t *testing.T, n int, o bulk.Options) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	emb, err := bulkbench.OpenEmbedded(ctx, filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	reg, err := bulkbench.Registry()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bulkbench.Seed(ctx, emb.Store, reg, n)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: emb.Store, reg: reg, dir: filepath.Join(dir, "exports"), keys: keys}
	o.Store, o.Jobs, o.Scanner, o.Registry, o.Dir, o.Exclusive = emb.Store, emb.Store, emb.Store, reg, e.dir, true
	if o.PollInterval == 0 {
		o.PollInterval = 20 * time.Millisecond
	}
	e.svc, err = bulk.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Start(ctx)
	t.Cleanup(func() { _ = e.svc.Close(ctx) })
	return e
}

func (e *env) kickoff(t *testing.T, a interaction.Access, typ, id, query string) (string, error) {
	t.Helper()
	q, _ := url.ParseQuery(query)
	r := &interaction.Request{Route: interaction.Route{Kind: interaction.KindOperation, Operation: "export", Type: typ, ID: id},
		Method: http.MethodGet, Query: q, Header: http.Header{"Prefer": {"respond-async"}}, BaseURL: base, Access: a}
	resp, err := e.svc.Kickoff(context.Background(), nil, r)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(resp.Header.Get("Content-Location"), base+"/$export-status/"), nil
}

func (e *env) wait(t *testing.T, id string, a interaction.Access) bulk.Manifest {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := e.svc.Status(context.Background(), id, base, a)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if resp.Status == http.StatusOK {
			var m bulk.Manifest
			if err := json.Unmarshal(resp.Body, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("export did not finish")
	return bulk.Manifest{}
}

// read returns the keys in the manifest's files, fetched through File.
func (e *env) read(t *testing.T, id string, m bulk.Manifest, a interaction.Access) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, o := range m.Output {
		name := o.URL[strings.LastIndex(o.URL, "/")+1:]
		f, err := e.svc.File(context.Background(), id, name, a)
		if err != nil {
			t.Fatalf("file %s: %v", name, err)
		}
		fh, err := os.Open(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var r struct{ ResourceType, ID string }
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			got[r.ResourceType+"/"+r.ID]++
		}
		fh.Close()
	}
	return got
}

func TestScopesAndOwnership(t *testing.T) {
	e := newEnv(t, 200, bulk.Options{})
	insurer := fakeAccess{subject: "insurer", types: []string{"Patient", "Observation"}}

	// A _type the caller may not read is refused at kick-off.
	if _, err := e.kickoff(t, insurer, "", "", "_type=Patient,Condition"); statusOf(err) != http.StatusForbidden {
		t.Fatalf("kick-off with Condition not allowed: %v, want 403", err)
	}
	// Without _type, only the readable types are exported.
	id, err := e.kickoff(t, insurer, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	m := e.wait(t, id, insurer)
	got := e.read(t, id, m, insurer)
	for k, n := range got {
		if !strings.HasPrefix(k, "Patient/") && !strings.HasPrefix(k, "Observation/") {
			t.Errorf("exported %s without scope", k)
		}
		if n != 1 {
			t.Errorf("%s exported %d times", k, n)
		}
	}
	for _, k := range e.keys {
		if (strings.HasPrefix(k, "Patient/") || strings.HasPrefix(k, "Observation/")) && got[k] != 1 {
			t.Errorf("%s missing", k)
		}
	}

	// Another client sees neither the status nor the files.
	other := fakeAccess{subject: "someone-else", types: []string{"*"}}
	if _, err := e.svc.Status(context.Background(), id, base, other); statusOf(err) != http.StatusForbidden {
		t.Errorf("status by another client: %v, want 403", err)
	}
	name := m.Output[0].URL[strings.LastIndex(m.Output[0].URL, "/")+1:]
	if _, err := e.svc.File(context.Background(), id, name, other); statusOf(err) != http.StatusForbidden {
		t.Errorf("file by another client: %v, want 403", err)
	}
	if _, err := e.svc.File(context.Background(), id, name, nil); statusOf(err) != http.StatusForbidden {
		t.Errorf("file without a principal: %v, want 403", err)
	}
	if _, err := e.svc.File(context.Background(), id, "../../etc/passwd", insurer); statusOf(err) != http.StatusNotFound {
		t.Errorf("path traversal: %v, want 404", err)
	}
	if _, err := e.svc.Cancel(context.Background(), id, other); statusOf(err) != http.StatusForbidden {
		t.Errorf("cancel by another client: %v, want 403", err)
	}
}

func TestCompartmentAndRestrictions(t *testing.T) {
	e := newEnv(t, 200, bulk.Options{})
	// A patient-bounded caller gets only that patient's compartment.
	pt := fakeAccess{subject: "patient-app", types: []string{"*"}, patient: "b0000003"}
	id, err := e.kickoff(t, pt, "Patient", "", "")
	if err != nil {
		t.Fatal(err)
	}
	got := e.read(t, id, e.wait(t, id, pt), pt)
	if got["Patient/b0000003"] != 1 || len(got) < 2 {
		t.Fatalf("bounded export: %v", got)
	}
	for k := range got {
		res, err := e.st.Read(context.Background(), strings.Split(k, "/")[0], strings.Split(k, "/")[1])
		if err != nil {
			t.Fatal(err)
		}
		if !search.InPatientCompartment(res, "b0000003") {
			t.Errorf("%s is outside the caller's compartment", k)
		}
	}
	// Granular scopes restrict what is exported.
	gr := fakeAccess{subject: "granular", types: []string{"Condition"}, restrict: map[string]string{"Condition": "subject=Patient/b0000001"}}
	id, err = e.kickoff(t, gr, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	got = e.read(t, id, e.wait(t, id, gr), gr)
	if len(got) == 0 {
		t.Fatal("nothing exported")
	}
	for k := range got {
		res, _ := e.st.Read(context.Background(), "Condition", strings.TrimPrefix(k, "Condition/"))
		if res == nil || !strings.Contains(string(res.JSON), "Patient/b0000001\"") {
			t.Errorf("%s does not satisfy the granular scope", k)
		}
	}
}

func TestCancelRemovesFiles(t *testing.T) {
	e := newEnv(t, 3000, bulk.Options{BatchSize: 100, BatchPause: 50 * time.Millisecond})
	id, err := e.kickoff(t, nil, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	// Let it write something, then cancel.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(e.dir, id)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no output directory")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := e.svc.Cancel(context.Background(), id, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Status(context.Background(), id, base, nil); statusOf(err) != http.StatusNotFound {
		t.Fatalf("status after cancel: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(e.dir, id)); !os.IsNotExist(err) {
		t.Fatalf("files of a cancelled job remain: %v", err)
	}
}

func TestSweepAfterRetention(t *testing.T) {
	var mu = make(chan time.Time, 1)
	mu <- time.Now()
	clock := func() time.Time { t := <-mu; mu <- t; return t }
	e := newEnv(t, 50, bulk.Options{Retention: time.Hour, Now: clock})
	id, err := e.kickoff(t, nil, "", "", "_type=Patient")
	if err != nil {
		t.Fatal(err)
	}
	e.wait(t, id, nil)
	if err := e.svc.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Status(context.Background(), id, base, nil); err != nil {
		t.Fatalf("swept before the retention: %v", err)
	}
	now := <-mu
	mu <- now.Add(2 * time.Hour)
	if err := e.svc.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Status(context.Background(), id, base, nil); statusOf(err) != http.StatusNotFound {
		t.Fatalf("status after retention: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, id)); !os.IsNotExist(err) {
		t.Fatalf("files remain after retention: %v", err)
	}
}

// putJob stores a job record as a process that died mid-run left it.
func putJob(t *testing.T, e *env, st bulk.State) string {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	j := &store.Job{ID: interaction.NewUUID(), Kind: bulk.JobKind, Status: bulk.StatusRunning, Created: now, Updated: now,
		LeaseOwner: "a-process-that-died", LeaseUntil: now.Add(time.Hour), Data: data}
	if err := e.svc.Jobs().CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	return j.ID
}

func TestCrashedJobIsResumedOrFailed(t *testing.T) {
	e := newEnv(t, 300, bulk.Options{MaxAttempts: 2})
	spec := bulk.Spec{Level: bulk.LevelSystem, BaseURL: base, Request: base + "/$export",
		TransactionTime: time.Now().UTC().Truncate(time.Millisecond)}

	// Interrupted once: resumed (its lease is not expired, but no other
	// process uses this store) and completed, every resource once.
	id := putJob(t, e, bulk.State{Spec: spec, Attempts: 1})
	got := e.read(t, id, e.wait(t, id, nil), nil)
	for _, k := range e.keys {
		if got[k] != 1 {
			t.Errorf("%s exported %d times", k, got[k])
		}
	}
	if len(got) != len(e.keys) {
		t.Errorf("exported %d resources, seeded %d", len(got), len(e.keys))
	}

	// Interrupted as often as allowed: marked failed, reported as a 500.
	id = putJob(t, e, bulk.State{Spec: spec, Attempts: 2})
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := e.svc.Status(context.Background(), id, base, nil)
		if statusOf(err) == http.StatusInternalServerError {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not failed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusOf is the HTTP status of err (0 for nil).
func statusOf(err error) int {
	if err == nil {
		return 0
	}
	return outcome.StatusOf(err)
}

// principalAccess is an Access exposing a SMART principal, like the server's.
type principalAccess struct {
	fakeAccess
	p *auth.Principal
}

func (a principalAccess) Principal() *auth.Principal { return a.p }

func TestOwner(t *testing.T) {
	all := fakeAccess{types: []string{"*"}}
	a := principalAccess{all, &auth.Principal{ClientID: "insurer-a", Subject: "insurer-a"}}
	b := principalAccess{all, &auth.Principal{ClientID: "insurer-b", Subject: "insurer-a"}}
	if bulk.Owner(a) == bulk.Owner(b) {
		t.Error("two clients share an owner")
	}
	if bulk.Owner(a) != bulk.Owner(principalAccess{all, &auth.Principal{ClientID: "insurer-a", Subject: "insurer-a"}}) {
		t.Error("the same client with a new token is another owner")
	}
	if bulk.Owner(nil) != "" || bulk.Owner(principalAccess{all, auth.Unrestricted()}) != "" {
		t.Error("auth off must own jobs as anyone")
	}
}
