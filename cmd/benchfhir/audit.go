package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// auditOnOff is the audit trail scenario: two servers on fresh data
// directories in this process, one with the AuditEvent trail on and one
// with it off, measured with the same CRUD operations in alternating
// rounds. With the trail on every answered request waits for its
// AuditEvent to be durable (group commit), and the events are then stored
// as resources, so the ratio is the trail's whole cost.
func (b *bench) auditOnOff(ctx context.Context) (*section, error) {
	sec := &section{
		title: "Audit trail: CRUD throughput with the AuditEvent trail on and off",
		head:  []string{"", "audit on", "audit off", "ratio on/off", "target"},
	}
	sides := map[string]*env{}
	for _, side := range []string{"on", "off"} {
		e, err := startEmbedded(ctx, filepath.Join(b.dir, "audit-"+side), b.c.conc, side == "on", io.Discard)
		if err != nil {
			return sec, err
		}
		defer e.close()
		sides[side] = e
	}
	n := max(b.c.creates/2, 200)
	sec.intro = fmt.Sprintf("Two servers on the embedded store in one process, the trail on (`--audit=on`: each response waits until its "+
		"AuditEvent is durable in the trail's journal, one fdatasync shared by concurrent requests; the journal is moved to the store "+
		"in batches) and off. Per operation %d requests at concurrency %d, "+
		"over loopback HTTP: `POST /fhir/Patient`, `GET /fhir/Patient/{id}`, `PUT /fhir/Patient/{id}`, `DELETE /fhir/Patient/{id}`.", n, b.c.conc)
	// Seed ids to read and update.
	ids := map[string][]string{}
	for side, e := range sides {
		for i := range 200 {
			id, err := e.create(ctx, "Patient", sampleJSON("Patient", 3_000_000+i))
			if err != nil {
				return sec, err
			}
			ids[side] = append(ids[side], id)
		}
	}
	created := map[string][]string{}
	seq := 4_000_000
	var arms []arm
	for _, side := range []string{"on", "off"} {
		e := sides[side]
		arms = append(arms,
			arm{name: "create " + side, run: func(ctx context.Context, _ int) (sample, error) {
				seq += n
				start := seq
				got := make([]string, n)
				s, err := runLoad(ctx, n, b.c.conc, 2*time.Minute, func(ctx context.Context, i int) error {
					st, hdr, _, err := e.do(ctx, http.MethodPost, e.base+"/Patient", sampleJSON("Patient", start+i), "Prefer", "return=minimal")
					if err == nil && st != http.StatusCreated {
						err = fmt.Errorf("POST Patient: HTTP %d", st)
					}
					if err == nil {
						_, rest, _ := strings.Cut(hdr.Get("Location"), "/Patient/")
						got[i], _, _ = strings.Cut(rest, "/")
					}
					return err
				})
				created[side] = got
				return s, err
			}},
			arm{name: "read " + side, run: func(ctx context.Context, _ int) (sample, error) {
				return runLoad(ctx, n, b.c.conc, 2*time.Minute, func(ctx context.Context, i int) error {
					st, _, _, err := e.do(ctx, http.MethodGet, e.base+"/Patient/"+ids[side][i%len(ids[side])], nil)
					if err == nil && st != http.StatusOK {
						err = fmt.Errorf("GET Patient: HTTP %d", st)
					}
					return err
				})
			}},
			arm{name: "update " + side, run: func(ctx context.Context, _ int) (sample, error) {
				return runLoad(ctx, n, b.c.conc, 2*time.Minute, func(ctx context.Context, i int) error {
					// Distinct resources per concurrent request: no version races.
					id := created[side][i]
					body := strings.Replace(string(sampleJSON("Patient", 5_000_000+i)), `"resourceType":"Patient"`,
						`"resourceType":"Patient","id":"`+id+`"`, 1)
					st, _, _, err := e.do(ctx, http.MethodPut, e.base+"/Patient/"+id, []byte(body), "Prefer", "return=minimal")
					if err == nil && st != http.StatusOK {
						err = fmt.Errorf("PUT Patient: HTTP %d", st)
					}
					return err
				})
			}},
			arm{name: "delete " + side, run: func(ctx context.Context, _ int) (sample, error) {
				return runLoad(ctx, n, b.c.conc, 2*time.Minute, func(ctx context.Context, i int) error {
					st, _, _, err := e.do(ctx, http.MethodDelete, e.base+"/Patient/"+created[side][i], nil)
					if err == nil && st != http.StatusNoContent && st != http.StatusOK {
						err = fmt.Errorf("DELETE Patient: HTTP %d", st)
					}
					return err
				})
			}},
		)
	}
	// Each side runs create, read, update, delete in that order (update and
	// delete use the ids the create made); sides alternate per round.
	res := map[string][]sample{}
	for r := range b.c.rounds {
		order := []string{"on", "off"}
		if r%2 == 1 {
			order = []string{"off", "on"}
		}
		for _, side := range order {
			for _, a := range arms {
				if !strings.HasSuffix(a.name, " "+side) {
					continue
				}
				s, err := a.run(ctx, r)
				if err != nil {
					return sec, fmt.Errorf("%s: %w", a.name, err)
				}
				res[a.name] = append(res[a.name], s)
			}
		}
	}
	var sumOn, sumOff float64
	for _, op := range []string{"create", "read", "update", "delete"} {
		on, off := med(res[op+" on"], sample.rate), med(res[op+" off"], sample.rate)
		sumOn += 1 / on
		sumOff += 1 / off
		sec.rows = append(sec.rows, []string{op + " throughput", fRate(on), fRate(off), fRatio(on / off), verdict(on/off, 0.9, true)})
	}
	// The CRUD mix: one of each operation, time per mix.
	mix := sumOff / sumOn
	sec.rows = append(sec.rows, []string{"CRUD mix (one of each)", fRate(4 / sumOn), fRate(4 / sumOff), fRatio(mix), verdict(mix, 0.9, true)})
	sec.notes = append(sec.notes, fmt.Sprintf("Medians over %d rounds; the sides alternate which runs first.", b.c.rounds))
	return sec, nil
}
