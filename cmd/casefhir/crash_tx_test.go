package main

import (
	"bytes"
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

// TestCrashTransactionAllOrNothing kills a server with SIGKILL while
// several 500-entry transactions are in flight, restarts it on the same
// data, and counts each transaction's resources (tagged with the
// transaction's own identifier): every transaction is wholly applied or
// wholly absent, and every acknowledged one is wholly applied.
func TestCrashTransactionAllOrNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	const entries, workers = 500, 4
	bin := buildBinary(t)
	dir := t.TempDir()
	cmd, addr := startServe(t, bin, dir)
	base := "http://" + addr + "/fhir"

	var mu sync.Mutex
	var sent []string          // every transaction tag posted
	acked := map[string]bool{} // tags answered 200
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Minute}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				tag := fmt.Sprintf("tx-%d-%d", w, i)
				var es []any
				for j := 0; j < entries; j++ {
					es = append(es, map[string]any{
						"resource": map[string]any{"resourceType": "Patient",
							"identifier": []any{map[string]any{"system": "urn:crash", "value": tag}},
							"name":       []any{map[string]any{"family": fmt.Sprintf("%s-%d", tag, j)}}},
						"request": map[string]any{"method": "POST", "url": "Patient"},
					})
				}
				body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": es})
				mu.Lock()
				sent = append(sent, tag)
				mu.Unlock()
				req, _ := http.NewRequest("POST", base, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/fhir+json")
				req.Header.Set("Prefer", "return=minimal")
				resp, err := client.Do(req)
				if err != nil {
					return // the server died
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked[tag] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	// Kill once some transactions are done and others are in flight.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	addr2 := killAndRestart(t, cmd, 700*time.Millisecond, cancel, &wg, bin, dir)
	base2 := "http://" + addr2 + "/fhir"
	whole, absent := 0, 0
	for _, tag := range sent {
		n := countTagged(t, base2, tag)
		switch {
		case n == entries:
			whole++
		case n == 0:
			absent++
			if acked[tag] {
				t.Errorf("acknowledged transaction %s lost", tag)
			}
		default:
			t.Errorf("transaction %s partly applied: %d of %d resources", tag, n, entries)
		}
	}
	t.Logf("%d transactions sent, %d acknowledged; after SIGKILL and restart %d whole, %d absent, none partial",
		len(sent), len(acked), whole, absent)
	if len(acked) == 0 {
		t.Fatal("no transaction completed before the kill")
	}
}

// countTagged counts the Patients carrying the transaction's identifier.
func countTagged(t *testing.T, base, tag string) int {
	t.Helper()
	resp, err := http.Get(base + "/Patient?identifier=urn:crash|" + tag + "&_total=accurate&_count=0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var bundle struct {
		Total *int `json:"total"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &bundle) != nil || bundle.Total == nil {
		t.Fatalf("search %s: %d %s", tag, resp.StatusCode, strings.TrimSpace(string(b[:min(len(b), 300)])))
	}
	return *bundle.Total
}
