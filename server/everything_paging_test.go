package server_test

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestEverythingKeysetPaging: case $everything, case $timeline and
// Patient $everything page with keyset cursors: small pages visit every
// member (every version) exactly once, in the order of the whole result,
// and a cursor that was altered or made for another query or path is a
// 400.
func TestEverythingKeysetPaging(t *testing.T) {
	f := newEverythingFixture(t)
	s, id := f.s, f.oc.id
	f.activate(t, id)
	for _, status := range []string{"active", "completed"} {
		p := f.read(t, f.plan)
		p["status"] = status
		wantStatus(t, s.Do(t, "PUT", f.plan, p), 200)
	}
	ops := []string{"EpisodeOfCare/" + id + "/$everything", "EpisodeOfCare/" + id + "/$timeline", f.patient + "/$everything"}
	for _, op := range ops {
		t.Run(op, func(t *testing.T) {
			whole := s.Do(t, "GET", op, nil)
			wantStatus(t, whole, 200)
			if bundleLink(whole.JSON(), "next") != "" {
				t.Fatalf("the whole result has a next link: %s", whole.Body)
			}
			if n := len(bundleKeys(whole.JSON())); n < 6 {
				t.Fatalf("%d entries, want a few pages' worth", n)
			}
			for _, n := range []int{1, 2, 3} {
				first := op + "?_count=" + strconv.Itoa(n)
				if strings.HasSuffix(op, "$timeline") {
					if got, want := pageAll(t, s, first, n), bundleKeys(whole.JSON()); !slices.Equal(got, want) {
						t.Errorf("_count=%d: paged %v\nwant %v", n, got, want)
					}
					continue
				}
				checkPaged(t, s, first, n, whole.JSON())
			}

			// _type narrows every page alike (the cursor is bound to it).
			typed := op + "?_type=CarePlan,Goal,Observation&_count=1"
			for next := typed; next != ""; {
				r := s.Do(t, "GET", next, nil)
				wantStatus(t, r, 200)
				for _, k := range bundleKeys(r.JSON()) {
					if !strings.HasPrefix(k, "CarePlan/") && !strings.HasPrefix(k, "Goal/") && !strings.HasPrefix(k, "Observation/") &&
						!strings.HasPrefix(k, "EpisodeOfCare/"+id) && k != f.patient {
						t.Errorf("_type: %s", k)
					}
				}
				next = bundleLink(r.JSON(), "next")
			}

			// Cursors: altered, another query, another path.
			r := s.Do(t, "GET", op+"?_count=2", nil)
			wantStatus(t, r, 200)
			next := bundleLink(r.JSON(), "next")
			u, err := url.Parse(next)
			if err != nil || u.Query().Get("_cursor") == "" {
				t.Fatalf("next link %q", next)
			}
			cursor := u.Query().Get("_cursor")
			bad := func(what, path string) {
				t.Helper()
				r := s.Do(t, "GET", path, nil)
				wantStatus(t, r, 400)
				wantIssue(t, r, "invalid")
				if len(bundleKeys(r.JSON())) != 0 {
					t.Errorf("%s: entries in the refusal", what)
				}
			}
			payload, mac, _ := strings.Cut(cursor, ".")
			tampered := []byte(payload)
			tampered[len(tampered)/2] ^= 1
			bad("altered", op+"?_count=2&_cursor="+url.QueryEscape(string(tampered)+"."+mac))
			bad("no mac", op+"?_count=2&_cursor="+url.QueryEscape(payload))
			bad("another _count", op+"?_count=3&_cursor="+url.QueryEscape(cursor))
			bad("another _since", op+"?_count=2&_since=2000-01-01&_cursor="+url.QueryEscape(cursor))
			for _, other := range ops {
				if other != op {
					bad("another path", other+"?_count=2&_cursor="+url.QueryEscape(cursor))
				}
			}
			wantStatus(t, s.Do(t, "GET", next, nil), 200)
		})
	}
}
