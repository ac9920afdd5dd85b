package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/casefhir/casefhir/mapping"
)

// apiError is an answer of the FHIR API other than 2xx, reduced to what a
// person can read: the issues' texts and the case rules they name.
type apiError struct {
	Status int
	Issues []issue
}

// issue is one OperationOutcome issue.
type issue struct {
	Code string // the issue code, e.g. business-rule
	Rule string // the case-rule code, if any
	Text string // details.text (or diagnostics)
}

func (e *apiError) Error() string { return fmt.Sprintf("FHIR API answered %d", e.Status) }

// RuleTitle is a heading for the rule of an issue.
func (i issue) RuleTitle() string {
	if i.Rule == "" {
		return ""
	}
	if d := mapping.Rule(i.Rule).Display(); d != "" {
		return d
	}
	return i.Rule
}

// fhirDo sends one request to the session's FHIR server with its token.
// rel is relative to the FHIR base. A non-2xx answer is an *apiError.
func (a *App) fhirDo(ctx context.Context, s *session, method, rel string, body []byte, contentType string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+"/"+strings.TrimPrefix(rel, "/"), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &apiError{Status: resp.StatusCode, Issues: parseIssues(b)}
	}
	return b, nil
}

// getJSON reads a resource or Bundle.
func (a *App) getJSON(ctx context.Context, s *session, rel string) (map[string]any, error) {
	b, err := a.fhirDo(ctx, s, http.MethodGet, rel, nil, "")
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("FHIR API answer is not JSON")
	}
	return m, nil
}

// parseIssues reads the issues of an OperationOutcome body.
func parseIssues(b []byte) []issue {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code    string `json:"code"`
			Details struct {
				Coding []struct {
					System string `json:"system"`
					Code   string `json:"code"`
				} `json:"coding"`
				Text string `json:"text"`
			} `json:"details"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(b, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return nil
	}
	var out []issue
	for _, i := range oo.Issue {
		is := issue{Code: i.Code, Text: i.Details.Text}
		if is.Text == "" {
			is.Text = i.Diagnostics
		}
		for _, c := range i.Details.Coding {
			if c.System == mapping.SystemRule {
				is.Rule = c.Code
			}
		}
		out = append(out, is)
	}
	return out
}

// entries returns the resources of a Bundle, with their search mode.
func entries(bundle map[string]any) (matches, included []map[string]any) {
	for _, e := range mapping.Objs(bundle, "entry") {
		r := mapping.Obj(e, "resource")
		if r == nil {
			continue
		}
		if mapping.Str(mapping.Obj(e, "search"), "mode") == "include" {
			included = append(included, r)
		} else {
			matches = append(matches, r)
		}
	}
	return matches, included
}

// nextLink returns the Bundle's next link relative to base, or "".
func nextLink(bundle map[string]any, base string) string {
	for _, l := range mapping.Objs(bundle, "link") {
		if mapping.Str(l, "relation") == "next" {
			if u := mapping.Str(l, "url"); strings.HasPrefix(u, base+"/") {
				return strings.TrimPrefix(u, base+"/")
			}
		}
	}
	return ""
}

// ref returns the reference string of a Reference.
func ref(m map[string]any, k string) string { return mapping.Str(mapping.Obj(m, k), "reference") }

// conceptText is the readable text of a CodeableConcept.
func conceptText(cc map[string]any) string {
	if t := mapping.Str(cc, "text"); t != "" {
		return t
	}
	for _, c := range mapping.Objs(cc, "coding") {
		if d := mapping.Str(c, "display"); d != "" {
			return d
		}
	}
	for _, c := range mapping.Objs(cc, "coding") {
		if c := mapping.Str(c, "code"); c != "" {
			return c
		}
	}
	return ""
}

// conceptCode returns the code of the first coding of system.
func conceptCode(cc map[string]any, system string) string {
	for _, c := range mapping.Objs(cc, "coding") {
		if mapping.Str(c, "system") == system {
			return mapping.Str(c, "code")
		}
	}
	return ""
}

// humanName is the display name of a Patient or Practitioner.
func humanName(r map[string]any) string {
	names := mapping.Objs(r, "name")
	if len(names) == 0 {
		return ""
	}
	n := names[0]
	for _, c := range names {
		if mapping.Str(c, "use") == "official" {
			n = c
			break
		}
	}
	if t := mapping.Str(n, "text"); t != "" {
		return t
	}
	var parts []string
	given, _ := n["given"].([]any)
	for _, g := range given {
		if s, ok := g.(string); ok {
			parts = append(parts, s)
		}
	}
	if f := mapping.Str(n, "family"); f != "" {
		parts = append(parts, f)
	}
	return strings.Join(parts, " ")
}
