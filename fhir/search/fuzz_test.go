package search

import (
	"net/url"
	"testing"
)

// FuzzParse feeds arbitrary query strings to the parser: it must never
// panic, every accepted query must compile and match without panicking, and
// its canonical self link must parse back (strictly) to the same link.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"name=smith&birthdate=ge1980-01-01",
		"subject:Patient.organization.name=acme&_sort=-date,code",
		"_has:Observation:patient:_has:AuditEvent:entity:agent=x",
		"code=http://loinc.org|1234-5,|x&code:not=a&code:text=b",
		"value-quantity=ap5.4e-3|http://unitsofmeasure.org|mg&_count=10&_total=accurate",
		"code-value-quantity=http://loinc.org|8480-6$gt100",
		`name=a\,b\|c\$d&_include:iterate=Observation:subject:Patient&_revinclude=*`,
		"url:above=http://x/y/z&_elements=id,name&_summary=true",
		"date=2024-03-01T10:00:00%2B02:00&date:missing=false",
	} {
		f.Add("Observation", s)
	}
	f.Add("", "_type=Patient,Observation&_id=a,b&_lastUpdated=gt2020")
	r := testRegistry(f)
	all := loadFixtures(f, r)
	f.Fuzz(func(t *testing.T, typ, query string) {
		if typ != "" && len(typ) > 40 {
			return
		}
		vals, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for _, strict := range []bool{true, false} {
			q, err := r.Parse(typ, vals, strict)
			if err != nil {
				continue
			}
			for _, c := range q.Pending() {
				c.Resolve([]string{"Patient/p1"})
			}
			_ = q.Filter()
			for _, res := range all {
				sub := q.ForType(res.typ)
				_ = sub.Matches(res.index)
				for i := range sub.Sort {
					_ = sub.SortValue(res.index, i)
				}
			}
			self := q.SelfParams()
			q2, err := r.Parse(typ, self, true)
			if err != nil {
				t.Fatalf("self link %q of %q does not parse: %v", self.Encode(), query, err)
			}
			if a, b := self.Encode(), q2.SelfParams().Encode(); a != b {
				t.Fatalf("self link not canonical:\n%s\n%s", a, b)
			}
		}
	})
}
