package server_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/server/servertest"
)

func nextLink(t *testing.T, r *servertest.Response) string {
	t.Helper()
	links, _ := r.JSON()["link"].([]any)
	for _, l := range links {
		lm := l.(map[string]any)
		if lm["relation"] == "next" {
			return lm["url"].(string)
		}
	}
	return ""
}

func matchIDs(r *servertest.Response) []string {
	var out []string
	entries, _ := r.JSON()["entry"].([]any)
	for _, e := range entries {
		em := e.(map[string]any)
		if s, _ := em["search"].(map[string]any); s != nil && s["mode"] == "match" {
			out = append(out, em["resource"].(map[string]any)["id"].(string))
		}
	}
	return out
}

// TestCursorPaging pages a sorted search through its next links while
// resources are written, and checks that a cursor is bound to its query
// and cannot be altered: every unchanged match appears exactly once, in
// order, and a cursor used with another query, on another path or
// tampered with is a 400 OperationOutcome.
func TestCursorPaging(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	for i := range 23 {
		body := fmt.Sprintf(`{"resourceType":"Observation","id":"c%02d","status":"final","code":{"text":"x"},"effectiveDateTime":"2024-01-%02d"}`, i, 28-i%28)
		wantStatus(t, s.Do(t, "PUT", fmt.Sprintf("Observation/c%02d", i), []byte(body)), 201)
	}
	first := s.Do(t, "GET", "Observation?_sort=-date&_count=5&_total=accurate", nil)
	wantStatus(t, first, 200)
	if tot, _ := first.JSON()["total"].(float64); tot != 23 {
		t.Errorf("total %v, want 23", first.JSON()["total"])
	}
	var seen []string
	r := first
	for pages := 0; ; pages++ {
		seen = append(seen, matchIDs(r)...)
		next := nextLink(t, r)
		if next == "" {
			break
		}
		if pages == 0 {
			// A new match written meanwhile does not shift the pages.
			wantStatus(t, s.Do(t, "PUT", "Observation/new", []byte(`{"resourceType":"Observation","id":"new","status":"final","code":{"text":"x"},"effectiveDateTime":"2030-01-01"}`)), 201)
		}
		if pages > 10 {
			t.Fatal("too many pages")
		}
		r = s.Do(t, "GET", next, nil)
		wantStatus(t, r, 200)
	}
	want := make([]string, 23)
	for i := range want {
		want[i] = fmt.Sprintf("c%02d", i)
	}
	// -date: the latest date first (c00 has the 28th), ties by id.
	slices.SortStableFunc(want, func(a, b string) int {
		var x, y int
		fmt.Sscanf(a, "c%d", &x)
		fmt.Sscanf(b, "c%d", &y)
		dx, dy := 28-x%28, 28-y%28
		if dx != dy {
			return dy - dx
		}
		return strings.Compare(a, b)
	})
	if !slices.Equal(seen, want) {
		t.Errorf("paged\n %v\nwant\n %v", seen, want)
	}

	next := nextLink(t, first)
	u, err := url.Parse(next)
	if err != nil {
		t.Fatal(err)
	}
	cursor := u.Query().Get("_cursor")
	for name, target := range map[string]string{
		"another query":   "Observation?_sort=date&_count=5&_total=accurate&_cursor=" + url.QueryEscape(cursor),
		"another path":    "Condition?_sort=-date&_count=5&_total=accurate&_cursor=" + url.QueryEscape(cursor),
		"another count":   "Observation?_sort=-date&_count=6&_total=accurate&_cursor=" + url.QueryEscape(cursor),
		"tampered cursor": "Observation?_sort=-date&_count=5&_total=accurate&_cursor=" + url.QueryEscape("x"+cursor),
		"garbage":         "Observation?_count=5&_cursor=abc",
	} {
		r := s.Do(t, "GET", target, nil)
		wantStatus(t, r, 400)
		wantIssue(t, r, "invalid")
		_ = name
	}
	// History cursors are bound the same way.
	h := s.Do(t, "GET", "Observation/_history?_count=5", nil)
	hn := nextLink(t, h)
	hu, _ := url.Parse(hn)
	r = s.Do(t, "GET", "_history?_count=5&_cursor="+url.QueryEscape(hu.Query().Get("_cursor")), nil)
	wantStatus(t, r, 400)
}
