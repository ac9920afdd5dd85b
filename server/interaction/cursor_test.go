package interaction

import (
	"net/url"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

type subjectAccess struct{ sub, client string }

func (subjectAccess) Allow(Action, string) error                { return nil }
func (subjectAccess) Compartment(Action, string) (string, bool) { return "", false }
func (subjectAccess) Restrictions(Action, string) []url.Values  { return nil }
func (a subjectAccess) Subject() string                         { return a.sub }
func (a subjectAccess) ClientID() string                        { return a.client }

// TestCursorsBoundToCaller: a cursor is refused for another caller (other
// subject or other client), another query or scope, or under another key;
// it round-trips every sort value kind for its own caller.
func TestCursorsBoundToCaller(t *testing.T) {
	c := NewCursors([]byte("0123456789abcdef0123456789abcdef"))
	alice := &Request{Access: subjectAccess{"alice", "app1"}}
	p := position{Type: "Observation", ID: "o1", Values: []any{"s", 1.5, time.Date(2024, 1, 2, 3, 4, 5, 6000000, time.UTC), true, nil}}
	tok := c.Make("Observation", "_count=5", alice, p)
	got, err := c.Check(tok, "Observation", "_count=5", alice)
	if err != nil || got.ID != "o1" || got.Type != "Observation" || len(got.Values) != 5 ||
		got.Values[0] != "s" || got.Values[1] != 1.5 || !got.Values[2].(time.Time).Equal(p.Values[2].(time.Time)) || got.Values[3] != true || got.Values[4] != nil {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for name, check := range map[string]func() error{
		"other subject": func() error {
			_, err := c.Check(tok, "Observation", "_count=5", &Request{Access: subjectAccess{"bob", "app1"}})
			return err
		},
		"other client": func() error {
			_, err := c.Check(tok, "Observation", "_count=5", &Request{Access: subjectAccess{"alice", "app2"}})
			return err
		},
		"no auth": func() error { _, err := c.Check(tok, "Observation", "_count=5", &Request{}); return err },
		"other query": func() error {
			_, err := c.Check(tok, "Observation", "_count=6", alice)
			return err
		},
		"other scope": func() error { _, err := c.Check(tok, "Condition", "_count=5", alice); return err },
		"other key": func() error {
			_, err := NewCursors([]byte("fedcba9876543210fedcba9876543210")).Check(tok, "Observation", "_count=5", alice)
			return err
		},
	} {
		if err := check(); !outcome.Is(err, outcome.Invalid) || outcome.As(err).HTTPStatus() != 400 {
			t.Errorf("%s: %v, want a 400", name, err)
		}
	}
}
