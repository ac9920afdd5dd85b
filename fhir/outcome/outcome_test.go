package outcome

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestStatusFor(t *testing.T) {
	cases := map[Code]int{Invalid: 400, Structure: 400, Required: 400, Login: 401, Forbidden: 403, NotFound: 404,
		Deleted: 410, NotSupported: 405, Conflict: 409, Duplicate: 409, MultipleMatches: 412, BusinessRule: 422,
		Processing: 422, TooLong: 413, Throttled: 429, Timeout: 504, Transient: 503, Exception: 500}
	for c, want := range cases {
		if got := StatusFor(c); got != want {
			t.Errorf("%s: %d, want %d", c, got, want)
		}
	}
	if New(Conflict, "x").WithStatus(412).HTTPStatus() != 412 {
		t.Error("explicit status ignored")
	}
}

func TestErrorKeepsPHIOutOfErrorString(t *testing.T) {
	e := New(Invalid, "bad birth date").WithDiagnostics("birthDate 1974-13-45 of Chalmers").WithOp("codec.Decode").
		WithExpression("Patient.birthDate")
	if s := e.Error(); strings.Contains(s, "Chalmers") || strings.Contains(s, "1974") || !strings.Contains(s, "codec.Decode") {
		t.Errorf("Error() = %q", s)
	}
	raw := fmt.Errorf("driver said: secret value %s", "Chalmers")
	w := As(raw)
	if w.Code != Exception || strings.Contains(w.Error(), "Chalmers") {
		t.Errorf("As(raw) = %v", w)
	}
	status, body := Render(raw)
	if status != 500 || strings.Contains(string(body), "Chalmers") {
		t.Errorf("Render(raw) = %d %s", status, body)
	}
}

func TestRender(t *testing.T) {
	e := New(BusinessRule, "case rules broken").WithCoding(Coding{System: "https://casefhir.org/fhir/CodeSystem/case-rule", Code: "G-ACT"}).
		WithIssue(Issue{Code: BusinessRule, Detail: "phase order", Expression: []string{"EpisodeOfCare.extension"}})
	status, body := Render(fmt.Errorf("wrapped: %w", e))
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", status)
	}
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity, Code string
			Details        struct {
				Coding []Coding
				Text   string
			}
			Expression []string
		}
	}
	if err := json.Unmarshal(body, &oo); err != nil {
		t.Fatal(err)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 2 || oo.Issue[0].Details.Coding[0].Code != "G-ACT" ||
		oo.Issue[1].Severity != "error" || oo.Issue[1].Expression[0] != "EpisodeOfCare.extension" {
		t.Fatalf("rendered %s", body)
	}
	if !Is(fmt.Errorf("x: %w", e), BusinessRule) || Is(errors.New("x"), BusinessRule) {
		t.Error("Is")
	}
	if !strings.Contains(string(Info("ok")), `"severity":"information"`) {
		t.Error("Info")
	}
}
