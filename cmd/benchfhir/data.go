package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Synthetic data only: no real person is described anywhere here.

// family is the family name of seeded Patient i: one in ten is "Smith"
// (the broad search), the rest "FamNNNN" cycling over 1000 values (the
// selective search matches size/1000 of them).
func family(i int) string {
	if i%10 == 0 {
		return "Smith"
	}
	return fmt.Sprintf("Fam%04d", i%1000)
}

// selectiveFamily is matched by seeded Patients i with i%1000 == 7.
const selectiveFamily = "Fam0007"

func patientID(i int) string     { return fmt.Sprintf("s%07d", i) }
func observationID(i int) string { return fmt.Sprintf("o%07d", i) }

// sampleJSON is the body of an HTTP create (no id, no meta).
func sampleJSON(typ string, i int) []byte {
	switch typ {
	case "Observation":
		return fmt.Appendf(nil, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},`+
			`"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}`, patientID(i))
	default:
		return fmt.Appendf(nil, `{"resourceType":"Patient","identifier":[{"system":"urn:example:mrn","value":"m%07d"}],"active":true,`+
			`"name":[{"use":"official","family":"%s","given":["Alex","Sam"]}],"telecom":[{"system":"phone","value":"555-0100","use":"work"}],`+
			`"gender":"female","birthDate":"1970-01-01","address":[{"line":["1 Example St"],"city":"Exampleton","postalCode":"0000"}]}`, i, family(i))
	}
}

// storedJSON is a seeded resource's stored form: the create body with id
// and meta, as the server would store it.
func storedJSON(typ, id string, i int, lu time.Time) []byte {
	body := sampleJSON(typ, i)
	prefix := fmt.Sprintf(`{"resourceType":%q,"id":%q,"meta":{"versionId":"1","lastUpdated":%q},`, typ, id, lu.Format("2006-01-02T15:04:05.000Z07:00"))
	return append([]byte(prefix), body[len(`{"resourceType":"`+typ+`",`):]...)
}

// seeder grows the Patient and Observation collections (one Observation
// per Patient, its subject) to a given size.
type seeder struct {
	e    *env
	have int
	how  string
}

// growTo seeds Patients and Observations have..n-1 in batches of 1000 into
// the store the server reads (and into the baseline's own copy when the
// baseline runs on a second FerretDB).
func (s *seeder) growTo(ctx context.Context, n int) error {
	lu := time.Now().UTC().Truncate(time.Millisecond)
	const batch = 1000
	for s.have < n {
		end := min(s.have+batch, n)
		var rs []*store.Resource
		for i := s.have; i < end; i++ {
			for _, t := range [][2]string{{"Patient", patientID(i)}, {"Observation", observationID(i)}} {
				js := storedJSON(t[0], t[1], i, lu)
				idx, err := s.e.reg.Extract(t[0], js)
				if err != nil {
					return fmt.Errorf("index %s: %w", t[0], err)
				}
				rs = append(rs, &store.Resource{Type: t[0], ID: t[1], VersionID: 1, LastUpdated: lu, JSON: js, Index: idx})
			}
		}
		// Seed through the server's own store (the embedded store's
		// in-memory search index sees only its own writes); a baseline on a
		// second FerretDB gets its own copy.
		targets := []store.Store{s.e.srv.BaseStore()}
		if !s.e.shared {
			targets = append(targets, s.e.raw)
		}
		for _, st := range targets {
			how, err := load(ctx, st, rs)
			if err != nil {
				return fmt.Errorf("seed: %w", err)
			}
			s.how = how
		}
		s.have = end
	}
	return s.e.idIndexes(ctx)
}
