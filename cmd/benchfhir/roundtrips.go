package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// requestCommands scrapes /metrics for the MongoDB commands the server
// sent on behalf of requests, summed over interactions, by command name
// (casefhir_mongodb_request_commands_total).
func (e *env) requestCommands(ctx context.Context) (map[string]int64, error) {
	sc, err := e.metrics(ctx)
	if err != nil {
		return nil, err
	}
	const name = "casefhir_mongodb_request_commands_total{"
	out := map[string]int64{}
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		i := strings.Index(line, `command="`)
		sp := strings.LastIndexByte(line, ' ')
		if i < 0 || sp < 0 {
			continue
		}
		cmd := line[i+len(`command="`):]
		cmd = cmd[:strings.IndexByte(cmd, '"')]
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics: %q: %w", line, err)
		}
		out[cmd] += int64(v)
	}
	return out, sc.Err()
}

// roundTrips measures, per interaction over HTTP, the commands the server
// sends to the database for one request: the deltas of the server's
// per-request command counters on /metrics around it (commands of
// background work, such as the export scheduler's poll, carry no request
// and are not counted).
func (b *bench) roundTrips(ctx context.Context) (*section, error) {
	sec := &section{
		title: "Round trips per interaction (MongoDB wire)",
		intro: "Commands the server sends to the database for one HTTP request, from its per-request counter " +
			"`casefhir_mongodb_request_commands_total{interaction,command}` on `/metrics` (the driver's command monitor, attributed " +
			"to the request through its context; background work such as the export scheduler's poll is not counted), the most over 3 tries. " +
			"One command is one round trip.",
		head: []string{"interaction", "commands", "round trips", "target"},
	}
	if err := b.seed.growTo(ctx, max(b.seed.have, 1000)); err != nil {
		return sec, err
	}
	pid := b.randPatient()
	upd, err := b.e.create(ctx, "Patient", sampleJSON("Patient", 1))
	if err != nil {
		return sec, err
	}
	// One update first, so the history collection exists (and is indexed).
	js := strings.Replace(string(sampleJSON("Patient", 3)), `{`, `{"id":"`+upd+`",`, 1)
	if st, _, _, err := b.e.do(ctx, http.MethodPut, b.e.base+"/Patient/"+upd, []byte(js)); err != nil || st != http.StatusOK {
		return sec, fmt.Errorf("first update: HTTP %d, %v", st, err)
	}
	if err := b.e.idIndexes(ctx); err != nil {
		return sec, err
	}
	version := 2
	next := ""
	ops := []struct {
		name, target string
		max          int
		req          func() (int, error)
	}{
		{"read `GET /Patient/{id}`", "1", 1, func() (int, error) {
			st, _, _, err := b.e.do(ctx, http.MethodGet, b.e.base+"/Patient/"+pid, nil)
			return st, err
		}},
		{"create `POST /Patient`", "≤ 2", 2, func() (int, error) {
			st, _, _, err := b.e.do(ctx, http.MethodPost, b.e.base+"/Patient", sampleJSON("Patient", 2))
			return st, err
		}},
		{"update `PUT /Patient/{id}` with `If-Match`", "≤ 2", 2, func() (int, error) {
			js := strings.Replace(string(sampleJSON("Patient", 3)), `{`, `{"id":"`+upd+`",`, 1)
			st, _, _, err := b.e.do(ctx, http.MethodPut, b.e.base+"/Patient/"+upd, []byte(js), "If-Match", fmt.Sprintf(`W/"%d"`, version))
			if err == nil && st == http.StatusOK {
				version++
			}
			return st, err
		}},
		{"search page `Observation?subject=Patient/{id}&_count=50`", "1", 1, func() (int, error) {
			st, _, _, err := b.e.do(ctx, http.MethodGet, b.e.base+"/Observation?subject="+url.QueryEscape("Patient/"+pid)+"&_count=50", nil)
			return st, err
		}},
		{"search page `Patient?family=Smith&_count=50`", "1", 1, func() (int, error) {
			st, _, body, err := b.e.do(ctx, http.MethodGet, b.e.base+"/Patient?family=Smith&_count=50", nil)
			next = nextLink(body)
			return st, err
		}},
		{"its next page (through the `next` link)", "1", 1, func() (int, error) {
			if next == "" {
				return 0, fmt.Errorf("no next link")
			}
			st, _, _, err := b.e.do(ctx, http.MethodGet, next, nil)
			return st, err
		}},
		{"search page with `_total=accurate`", "2", 2, func() (int, error) {
			st, _, _, err := b.e.do(ctx, http.MethodGet, b.e.base+"/Patient?family=Smith&_count=50&_total=accurate", nil)
			return st, err
		}},
		{"search page with `_include=Observation:subject`", "2", 2, func() (int, error) {
			st, _, _, err := b.e.do(ctx, http.MethodGet, b.e.base+"/Observation?subject="+url.QueryEscape("Patient/"+pid)+
				"&_include=Observation:subject&_count=50", nil)
			return st, err
		}},
	}
	over := 0
	for _, op := range ops {
		var best map[string]int64
		bestN := int64(-1)
		for range 3 {
			before, err := b.e.requestCommands(ctx)
			if err != nil {
				return sec, err
			}
			st, err := op.req()
			if err != nil {
				return sec, fmt.Errorf("%s: %w", op.name, err)
			}
			after, err := b.e.requestCommands(ctx)
			if err != nil {
				return sec, fmt.Errorf("%s: %w", op.name, err)
			}
			if st >= 300 {
				return sec, fmt.Errorf("%s: HTTP %d", op.name, st)
			}
			d := map[string]int64{}
			var n int64
			for k, v := range after {
				if x := v - before[k]; x > 0 {
					d[k] = x
					n += x
				}
			}
			if n > bestN {
				best, bestN = d, n
			}
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(best)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, best[k]))
		}
		verdictS := op.target
		if bestN > int64(op.max) {
			verdictS += " (**not met**)"
			over++
		}
		sec.rows = append(sec.rows, []string{op.name, strings.Join(parts, ", "), fmt.Sprint(bestN), verdictS})
	}
	if over > 0 {
		sec.notes = append(sec.notes, fmt.Sprintf("%d interactions send more commands than their target. Reads, creates and updates "+
			"are the store's own paths (mongostore, one command each; an update is the history insert plus the "+
			"compare-and-swap); searches depend on the search executor in `server/interaction`.", over))
	}
	sec.notes = append(sec.notes, "FerretDB runs in this process as the MongoDB-wire stand-in (no replica set), so transactions are "+
		"not measured here; on MongoDB a transaction Bundle is one session transaction (its writes, then `commitTransaction`).")
	return sec, nil
}

// nextLink returns the next link of a searchset Bundle, or "".
func nextLink(body []byte) string {
	var b struct {
		Link []struct {
			Relation, URL string
		} `json:"link"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}
