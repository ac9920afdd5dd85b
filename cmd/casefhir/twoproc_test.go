package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fhirDo sends one request and returns status, ETag and body.
func fhirDo(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (int, string, []byte, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("ETag"), b, err
}

// TestTwoProcessesOneDataFolder runs two `casefhir serve` processes on one
// embedded data folder: concurrent identical conditional creates make one
// resource, If-Match updates from writers on both lose no update, and after
// a SIGKILL of one under load every acknowledged write is there and the
// other keeps serving.
func TestTwoProcessesOneDataFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cmdA, addrA := startServe(t, bin, dir)
	cmdB, addrB := startServe(t, bin, dir)
	defer func() { _ = cmdB.Process.Signal(syscall.SIGTERM); _ = cmdB.Wait() }()
	bases := []string{"http://" + addrA + "/fhir", "http://" + addrB + "/fhir"}
	client := &http.Client{Timeout: 60 * time.Second}

	t.Run("ConditionalCreate", func(t *testing.T) {
		for round := range 4 {
			ident := fmt.Sprintf("urn:two|c%d", round)
			body := fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"urn:two","value":"c%d"}]}`, round)
			var wg sync.WaitGroup
			var mu sync.Mutex
			created, found := 0, 0
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, _, b, err := fhirDo(t, client, "POST", bases[w%2]+"/Patient", body, "If-None-Exist", "identifier="+ident)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						t.Errorf("conditional create: %v", err)
					case st == 201:
						created++
					case st == 200:
						found++
					default:
						t.Errorf("conditional create: %d %s", st, b)
					}
				}()
			}
			wg.Wait()
			if created != 1 || found != 7 {
				t.Fatalf("round %d: %d created, %d found existing; want 1 and 7", round, created, found)
			}
			for _, base := range bases {
				st, _, b, err := fhirDo(t, client, "GET", base+"/Patient?identifier="+ident+"&_total=accurate", "")
				if err != nil || st != 200 {
					t.Fatalf("search: %d %v", st, err)
				}
				var bd struct{ Total int }
				_ = json.Unmarshal(b, &bd)
				if bd.Total != 1 {
					t.Fatalf("round %d: %d resources with %s, want 1", round, bd.Total, ident)
				}
			}
		}
	})

	t.Run("IfMatchNoLostUpdate", func(t *testing.T) {
		st, _, b, err := fhirDo(t, client, "POST", bases[0]+"/Patient", `{"resourceType":"Patient","active":true}`)
		if err != nil || st != 201 {
			t.Fatalf("create: %d %v %s", st, err, b)
		}
		var p struct{ ID string }
		_ = json.Unmarshal(b, &p)
		const writers, each = 6, 4
		var mu sync.Mutex
		versions := map[string]int{}
		successes := 0
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				base := bases[w%2]
				for done := 0; done < each; {
					st, etag, _, err := fhirDo(t, client, "GET", base+"/Patient/"+p.ID, "")
					if err != nil || st != 200 {
						t.Errorf("read: %d %v", st, err)
						return
					}
					body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":"w%d-%d"}]}`, p.ID, w, done)
					st, newTag, b, err := fhirDo(t, client, "PUT", base+"/Patient/"+p.ID, body, "If-Match", etag)
					switch {
					case err != nil:
						t.Errorf("update: %v", err)
						return
					case st == 200:
						mu.Lock()
						versions[newTag]++
						successes++
						mu.Unlock()
						done++
					case st == 412 || st == 409:
					default:
						t.Errorf("update: %d %s", st, b)
						return
					}
				}
			}()
		}
		wg.Wait()
		for tag, n := range versions {
			if n != 1 {
				t.Errorf("version %s acknowledged %d times", tag, n)
			}
		}
		st, etag, _, err := fhirDo(t, client, "GET", bases[1]+"/Patient/"+p.ID, "")
		if err != nil || st != 200 {
			t.Fatalf("final read: %d %v", st, err)
		}
		if want := fmt.Sprintf(`W/"%d"`, successes+1); etag != want || successes != writers*each {
			t.Fatalf("final version %s after %d successful updates, want %s", etag, successes, want)
		}
	})

	t.Run("KillOneUnderLoad", func(t *testing.T) {
		var mu sync.Mutex
		acked := map[string]bool{} // "Patient/id"
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				base := bases[w%2]
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					body := fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":"k%d-%d"}]}`, w, i)
					st, _, b, err := fhirDo(t, client, "POST", base+"/Patient", body)
					if err != nil {
						if w%2 == 0 {
							return // A was killed
						}
						t.Errorf("B failed: %v", err)
						return
					}
					if st == 201 {
						var p struct{ ID string }
						_ = json.Unmarshal(b, &p)
						mu.Lock()
						acked["Patient/"+p.ID] = true
						mu.Unlock()
					} else if w%2 == 1 {
						t.Errorf("B: %d %s", st, b)
					}
				}
			}()
		}
		time.Sleep(1500 * time.Millisecond)
		_ = cmdA.Process.Signal(syscall.SIGKILL)
		_ = cmdA.Wait()
		mu.Lock()
		atKill := len(acked)
		mu.Unlock()
		time.Sleep(1000 * time.Millisecond) // B keeps serving
		close(stop)
		wg.Wait()
		if atKill < 10 || len(acked) <= atKill {
			t.Fatalf("%d creates acknowledged before the kill, %d after: B did not keep serving", atKill, len(acked)-atKill)
		}
		for key := range acked {
			st, _, b, err := fhirDo(t, client, "GET", bases[1]+"/"+key, "")
			if err != nil || st != 200 {
				t.Fatalf("acknowledged %s lost: %d %v %s", key, st, err, b)
			}
		}
		t.Logf("%d creates acknowledged (%d before A was killed), all readable on B", len(acked), atKill)
	})
}
