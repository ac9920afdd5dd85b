package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// transaction is the hook for transaction throughput: 100-entry
// transaction Bundles of Patient creates over HTTP vs one bulk insert of
// 100 equivalent documents.
func (b *bench) transaction(ctx context.Context) (*section, error) {
	const entries, bundles = 100, 5
	sec := &section{
		title: "4a. Transaction throughput",
		head:  []string{"", "casefhir HTTP", "direct", "ratio"},
	}
	if !b.caps.transaction {
		sec.notes = append(sec.notes, "**Not measured: feature missing** (no `transaction` interaction in the CapabilityStatement).")
		return sec, nil
	}
	if b.e.fdb != nil {
		sec.notes = append(sec.notes, "**Not measured on the MongoDB-wire stand-in**: FerretDB has no transactions, so the server "+
			"refuses transaction Bundles there (HTTP 405 with an OperationOutcome), as it would on a standalone MongoDB. Transaction "+
			"Bundles on the embedded store are the load rate of the scale section (`casefhir load`, 500 entries per Bundle).")
		return sec, nil
	}
	lu := time.Now().UTC().Truncate(time.Millisecond)
	bundle := func(base int) []byte {
		var sb strings.Builder
		sb.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
		for j := 0; j < entries; j++ {
			if j > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":%s,"request":{"method":"POST","url":"Patient"}}`,
				base+j, sampleJSON("Patient", base+j))
		}
		sb.WriteString(`]}`)
		return []byte(sb.String())
	}
	docs := func(base int) ([]*store.Resource, error) {
		rs := make([]*store.Resource, entries)
		for j := range rs {
			id := fmt.Sprintf("t%07d", base+j)
			js := storedJSON("Patient", id, base+j, lu)
			idx, err := b.e.reg.Extract("Patient", js)
			if err != nil {
				return nil, err
			}
			rs[j] = &store.Resource{Type: "Patient", ID: id, VersionID: 1, LastUpdated: lu, JSON: js, Index: idx}
		}
		return rs, nil
	}
	seqH, seqD := 3_000_000, 3_000_000
	how := ""
	arms := []arm{
		{name: "http", run: func(ctx context.Context, _ int) (sample, error) {
			s, err := runLoad(ctx, bundles, 1, time.Minute, func(ctx context.Context, i int) error {
				st, _, _, err := b.e.do(ctx, http.MethodPost, b.e.base, bundle(seqH+i*entries))
				if err == nil && st != http.StatusOK {
					err = fmt.Errorf("POST transaction: HTTP %d", st)
				}
				return err
			})
			seqH += bundles * entries
			return s, err
		}},
		{name: "direct", run: func(ctx context.Context, _ int) (sample, error) {
			// Documents are built outside the timed call.
			batches := make([][]*store.Resource, bundles)
			for i := range batches {
				var err error
				if batches[i], err = docs(seqD + i*entries); err != nil {
					return sample{}, err
				}
			}
			seqD += bundles * entries
			return runLoad(ctx, bundles, 1, time.Minute, func(ctx context.Context, i int) error {
				var err error
				how, err = load(ctx, b.e.raw, batches[i])
				return err
			})
		}},
	}
	if err := warm(ctx, arms...); err != nil {
		return sec, err
	}
	res, err := interleave(ctx, b.c.rounds, arms...)
	if err != nil {
		return sec, err
	}
	per := func(s sample) float64 { return s.rate() * entries }
	h, d := med(res["http"], per), med(res["direct"], per)
	sec.intro = fmt.Sprintf("%d transaction Bundles of %d Patient `POST` entries each, sequentially, vs the same %d documents "+
		"(JSON and search index prepared beforehand) stored with the baseline's %s.", bundles, entries, entries, how)
	sec.rows = append(sec.rows,
		[]string{"resources per second", fRate(h), fRate(d), fRatio(h / d)},
		[]string{"time per 100-entry transaction", fDur(latMedian(res["http"])), fDur(latMedian(res["direct"])), ""})
	sec.notes = append(sec.notes, "No target is set by the issues yet; the direct side is a plain bulk insert without "+
		"all-or-nothing guarantees, so the ratio is the full price of an atomic, validated transaction.")
	return sec, nil
}
