package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// httpArm is a concurrent HTTP arm that also records the store work the
// server's /metrics saw during the run.
func (b *bench) httpArm(name string, n int, op func(ctx context.Context, i int) error) arm {
	return arm{name: name, run: func(ctx context.Context, _ int) (sample, error) {
		m0, err := b.e.storeTotals(ctx)
		if err != nil {
			return sample{}, err
		}
		s, err := runLoad(ctx, n, b.c.conc, 2*time.Minute, op)
		if err != nil {
			return s, err
		}
		m1, err := b.e.storeTotals(ctx)
		if err != nil {
			return s, err
		}
		s.storeSec = m1[""][0] - m0[""][0]
		s.storeCalls = m1[""][1] - m0[""][1]
		return s, nil
	}}
}

// directArm is a concurrent baseline arm.
func (b *bench) directArm(name string, n int, op func(ctx context.Context, i int) error) arm {
	return arm{name: name, run: func(ctx context.Context, _ int) (sample, error) {
		return runLoad(ctx, n, b.c.conc, 2*time.Minute, op)
	}}
}

// throughputRows renders a casefhir-vs-direct throughput comparison.
func throughputRows(sec *section, res map[string][]sample, httpName, directName string) {
	h, d := res[httpName], res[directName]
	hr, dr := med(h, sample.rate), med(d, sample.rate)
	rate := hr / dr
	hc := time.Duration(med(h, func(s sample) float64 { return float64(s.cpuPerOp()) }))
	dc := time.Duration(med(d, func(s sample) float64 { return float64(s.cpuPerOp()) }))
	calls := med(h, func(s sample) float64 { return s.storeCalls / float64(s.ops) })
	storeT := time.Duration(med(h, func(s sample) float64 { return s.storeSec / float64(s.ops) * 1e9 }))
	dl := time.Duration(med(d, func(s sample) float64 { return float64(s.meanLat()) }))
	work := float64(storeT) / float64(dl)
	sec.rows = append(sec.rows,
		[]string{"throughput", fRate(hr), fRate(dr), fRatio(rate), verdict(rate, 0.8, true)},
		[]string{"process CPU per operation", fDur(hc), fDur(dc), fRatio(float64(hc) / float64(dc)), "reported"},
		[]string{"store calls per operation", fmt.Sprintf("%.2f", calls), "1", fRatio(calls), "no extra round trips"},
		[]string{"backend (store) time per operation", fDur(storeT), fDur(dl), fRatio(work), verdict(work, 1.3, false)},
		[]string{"client latency, mean", fDur(time.Duration(med(h, func(s sample) float64 { return float64(s.meanLat()) }))), fDur(dl), "", ""},
	)
	if f, ok := res["floor"]; ok {
		sec.notes = append(sec.notes, fmt.Sprintf("HTTP floor, `GET /healthz` at the same concurrency: %s, %s process CPU per request.",
			fRate(med(f, sample.rate)), fDur(time.Duration(med(f, func(s sample) float64 { return float64(s.cpuPerOp()) })))))
	}
	sec.notes = append(sec.notes, fmt.Sprintf("Medians over %d interleaved rounds of %d operations per arm.", len(h), h[0].ops))
}

// readThroughput is scenario 2: GET /fhir/Patient/{id} vs the direct Read.
func (b *bench) readThroughput(ctx context.Context) (*section, error) {
	sec := &section{
		title: "2. Read by id: throughput, CPU and backend work",
		intro: fmt.Sprintf("`GET /fhir/Patient/{id}` over loopback HTTP vs the direct `Read` (one `FindOne({_id})`), both at concurrency %d "+
			"on random ids of the %d seeded Patients.", b.c.conc, b.seed.have),
		head: []string{"", "casefhir HTTP", "direct", "ratio", "target"},
	}
	if b.seed.have == 0 {
		if err := b.seed.growTo(ctx, 1000); err != nil {
			return sec, err
		}
	}
	arms := []arm{
		b.httpArm("http", b.c.reads, func(ctx context.Context, _ int) error {
			return b.getOK(ctx, b.e.base+"/Patient/"+b.randPatient())
		}),
		b.directArm("direct", b.c.reads, func(ctx context.Context, _ int) error {
			_, err := b.e.raw.Read(ctx, "Patient", b.randPatient())
			return err
		}),
		b.directArm("floor", b.c.reads, func(ctx context.Context, _ int) error {
			return b.getOK(ctx, b.e.root+"/healthz")
		}),
	}
	if err := warm(ctx, arms...); err != nil {
		return sec, err
	}
	res, err := interleave(ctx, b.c.rounds, arms...)
	if err != nil {
		return sec, err
	}
	throughputRows(sec, res, "http", "direct")
	sec.notes = append(sec.notes, "HTTP adds a loopback round trip, request parsing, routing, middleware and response "+
		"writing that an in-process driver call does not pay; the store rows isolate what the server asks of the database.")
	return sec, nil
}

// createThroughput is scenario 1: POST /fhir/Patient vs the direct Create
// of the same document.
func (b *bench) createThroughput(ctx context.Context) (*section, error) {
	sec := &section{
		title: "1. Create: throughput, CPU and backend work",
		head:  []string{"", "casefhir HTTP", "direct", "ratio", "target"},
	}
	// The document the direct arm inserts is the one the server stored for
	// the same body: same JSON (another id of the same length), same index.
	id, err := b.e.create(ctx, "Patient", sampleJSON("Patient", 1_000_000))
	if err != nil {
		return sec, err
	}
	var tmpl *store.Resource
	if b.e.shared {
		tmpl, err = b.e.raw.Read(ctx, "Patient", id)
	} else {
		tmpl, err = b.e.srv.Store().Read(ctx, "Patient", id)
	}
	if err != nil {
		return sec, err
	}
	sec.intro = fmt.Sprintf("`POST /fhir/Patient` (a %d-byte Patient, default `Prefer`, so the representation is returned) over loopback HTTP "+
		"vs the direct `Create` (one `InsertOne`) of the document the server stored for that body (%d bytes of JSON plus its "+
		"search index), into the same Patient collection; concurrency %d.", len(sampleJSON("Patient", 1_000_000)), len(tmpl.JSON), b.c.conc)
	oldID := `"id":"` + id + `"`
	seqHTTP, seqDirect := 2_000_000, 0
	arms := []arm{
		b.httpArm("http", b.c.creates, func(ctx context.Context, i int) error {
			st, _, _, err := b.e.do(ctx, http.MethodPost, b.e.base+"/Patient", sampleJSON("Patient", seqHTTP+i))
			if err == nil && st != http.StatusCreated {
				err = fmt.Errorf("POST Patient: HTTP %d", st)
			}
			return err
		}),
		b.directArm("direct", b.c.creates, func(ctx context.Context, i int) error {
			nid := fmt.Sprintf("d%0*d", max(len(id)-1, 9), seqDirect+i)
			r := *tmpl
			r.ID, r.LastUpdated = nid, time.Now().UTC()
			r.JSON = []byte(strings.Replace(string(tmpl.JSON), oldID, `"id":"`+nid+`"`, 1))
			return b.e.raw.Create(ctx, &r)
		}),
	}
	// Each run uses fresh ids.
	wrap := func(a arm, seq *int, step int) arm {
		return arm{name: a.name, run: func(ctx context.Context, r int) (sample, error) {
			s, err := a.run(ctx, r)
			*seq += step
			return s, err
		}}
	}
	arms[0] = wrap(arms[0], &seqHTTP, b.c.creates)
	arms[1] = wrap(arms[1], &seqDirect, b.c.creates)
	warmArms := []arm{
		b.httpArm("http", 100, func(ctx context.Context, i int) error {
			_, err := b.e.create(ctx, "Patient", sampleJSON("Patient", 1_500_000+i))
			return err
		}),
		b.directArm("direct", 100, func(ctx context.Context, i int) error {
			r := *tmpl
			r.ID = fmt.Sprintf("w%0*d", max(len(id)-1, 9), i)
			r.JSON = []byte(strings.Replace(string(tmpl.JSON), oldID, `"id":"`+r.ID+`"`, 1))
			return b.e.raw.Create(ctx, &r)
		}),
	}
	if err := warm(ctx, warmArms...); err != nil {
		return sec, err
	}
	res, err := interleave(ctx, b.c.rounds, arms...)
	if err != nil {
		return sec, err
	}
	throughputRows(sec, res, "http", "direct")
	sec.notes = append(sec.notes, "Every create is durable when answered on both sides: the FerretDB stand-in runs SQLite with "+
		"`synchronous=FULL`, so each insert is a commit with an fsync, which bounds both arms.")
	return sec, nil
}
