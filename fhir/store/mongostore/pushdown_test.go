package mongostore

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/storetest"
)

// TestPushdownAgreesWithMatch runs every storetest filter on the embedded
// FerretDB with everything pushed down and no Go re-check, and compares the
// result with Filter.Match. A leaf operator FerretDB gets wrong must not be
// in ferretPushable; this test fails if it is.
func TestPushdownAgreesWithMatch(t *testing.T) {
	ctx := context.Background()
	s, _ := openEmbedded(t)
	defer s.Close(ctx)
	fx := storetest.Fixture()
	for _, r := range fx {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	all := func(*store.Filter) bool { return true }
	s.pushable = all
	wrong := map[store.Op]bool{}
	for i, f := range storetest.FindFilters() {
		f = normFilter(f)
		q, exact := s.query(f)
		if !exact {
			t.Fatalf("filter %d not fully translated with everything pushable", i)
		}
		cur, err := s.db.Collection("Patient").Find(ctx, q)
		if err != nil {
			t.Fatalf("filter %d: %v", i, err)
		}
		var got, want []string
		for cur.Next(ctx) {
			id, _ := cur.Current.Lookup(fID).StringValueOK()
			got = append(got, id)
		}
		cur.Close(ctx)
		for _, r := range fx {
			if f.Match(r) {
				want = append(want, r.ID)
			}
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			continue
		}
		t.Logf("FerretDB differs on filter %d (%s %s): got %v, want %v", i, f.Op, f.Path, got, want)
		s.pushable = nil
		if _, exact := s.query(f); exact {
			t.Errorf("filter %d (%s %s) is pushed down in embedded mode but FerretDB answers it wrongly", i, f.Op, f.Path)
		}
		s.pushable = all
		wrong[f.Op] = true
	}
	t.Logf("operators with a wrong FerretDB answer somewhere: %v", wrong)
}

// TestStoreEmbeddedGoFiltering runs the behaviour suite on the database
// scan (no in-memory search index) with nothing pushed down, so every
// filter, Skip, Limit and Count takes the Go-side path.
func TestStoreEmbeddedGoFiltering(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openEmbedded(t)
		s.scanOnly = true
		s.pushable = func(*store.Filter) bool { return false }
		return s
	})
}

func TestToBSONExactness(t *testing.T) {
	s := &Store{embedded: true}
	none := func(*store.Filter) bool { return false }
	eq := store.Eq("a", "b")
	cases := []struct {
		f      *store.Filter
		pushed bool // with nothing pushable: is the query still exact?
	}{
		{store.All(), true},
		{nil, true},
		{eq, false},
		{store.And(eq, store.Eq("c", "d")), false},
		{store.Or(eq, store.All()), true},
		{&store.Filter{Op: store.OpOr}, true},
		{store.Not(eq), false},
		{store.Not(store.All()), true},
		{&store.Filter{Op: store.OpPrefix, Path: "a", Value: 3}, false},
	}
	for i, c := range cases {
		s.pushable = none
		if _, exact := s.toBSON(c.f); exact != c.pushed {
			t.Errorf("case %d: exact = %v, want %v", i, exact, c.pushed)
		}
	}
	s.pushable = nil
	s.embedded = false
	d, exact := s.toBSON(store.And(store.Prefix("name", "a.b("), store.Not(store.Exists("x.y", true)), store.In(store.PathID, "1", "2")))
	if !exact {
		t.Fatal("MongoDB translation not exact")
	}
	want := `{"$and": [{"x.name": {"$regex": "^a\\.b\\("}},{"$nor": [{"x.x.y": {"$exists": true}}]},{"_id": {"$in": ["1","2"]}}]}`
	if got := bsonString(t, d); got != want {
		t.Errorf("toBSON =\n%s\nwant\n%s", got, want)
	}
}

func bsonString(t *testing.T, d bson.D) string {
	t.Helper()
	raw, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return bson.Raw(raw).String()
}
