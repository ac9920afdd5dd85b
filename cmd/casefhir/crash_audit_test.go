package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashLosesNoAcknowledgedAuditEvent kills a server under a create and
// read load with SIGKILL; after a restart every request that was answered
// has its AuditEvent (found by the request id the response carried).
func TestCrashLosesNoAcknowledgedAuditEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cmd, addr := startServe(t, bin, dir)
	base := "http://" + addr + "/fhir"

	var mu sync.Mutex
	acked := map[string]string{} // request id -> what was answered
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, url, body string) (*http.Response, error) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 {
			mu.Lock()
			acked[resp.Header.Get("X-Request-Id")] = method + " " + resp.Header.Get("Location")
			mu.Unlock()
		}
		return resp, nil
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				resp, err := do("POST", base+"/Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":"audit-%d-%d"}]}`, w, i))
				if err != nil {
					return // the server died
				}
				loc := resp.Header.Get("Location")
				if i := strings.Index(loc, "/fhir/"); i >= 0 && resp.StatusCode == 201 {
					path := loc[i+len("/fhir/"):]
					if _, err := do("GET", base+"/"+path[:strings.Index(path, "/_history/")], ""); err != nil {
						return
					}
				}
			}
		}()
	}
	addr2 := killAndRestart(t, cmd, 1500*time.Millisecond, cancel, &wg, bin, dir)
	if len(acked) < 20 {
		t.Fatalf("only %d requests acknowledged before the kill", len(acked))
	}
	stored := map[string]bool{}
	next := "http://" + addr2 + "/fhir/AuditEvent?_count=1000"
	for next != "" {
		resp, err := http.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource struct {
					Entity []struct {
						Detail []struct {
							Type        string
							ValueString string
						}
					}
				}
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("AuditEvent search: %d %v", resp.StatusCode, err)
		}
		for _, e := range b.Entry {
			for _, en := range e.Resource.Entity {
				for _, d := range en.Detail {
					if d.Type == "request-id" {
						stored[d.ValueString] = true
					}
				}
			}
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = strings.Replace(l.URL, unbound, addr2, 1)
			}
		}
	}
	for id, what := range acked {
		if !stored[id] {
			t.Errorf("acknowledged request %s (%s) has no AuditEvent after SIGKILL", id, what)
		}
	}
	t.Logf("%d acknowledged requests, all audited after SIGKILL (%d events stored)", len(acked), len(stored))
}
