package demo

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
)

//go:embed cases
var files embed.FS

// Step is one request of a demo case.
type Step struct {
	// Name is the step's file name without .json, e.g. "03-assessment".
	Name        string `json:"-"`
	Description string `json:"description"`
	Request     struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Body json.RawMessage `json:"body"`
	// Status is the HTTP status the step must answer.
	Status int `json:"status"`
}

// Case is one demo case.
type Case struct {
	// Name is the folder name, e.g. "bicycle-tbi".
	Name string
	// Base is the transaction Bundle of the case's people, organisations
	// and referral.
	Base json.RawMessage
	// Steps take the case from the referral to its closure.
	Steps []Step
	// OpenUntil names the first step left out when the case should stay
	// open (Options.Complete false), or "" when the case is always replayed
	// to its end.
	OpenUntil string
}

// openUntil: the bicycle case stays in monitoring, so that a newcomer has
// an active case to work on; the stroke case shows a closed one.
var openUntil = map[string]string{"bicycle-tbi": "14-evaluation"}

// Cases returns the demo cases, ordered by name.
func Cases() ([]Case, error) {
	dirs, err := fs.ReadDir(files, "cases")
	if err != nil {
		return nil, err
	}
	var out []Case
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		c := Case{Name: d.Name(), OpenUntil: openUntil[d.Name()]}
		names, err := fs.Glob(files, path.Join("cases", d.Name(), "*.json"))
		if err != nil {
			return nil, err
		}
		slices.Sort(names)
		for i, n := range names {
			raw, err := files.ReadFile(n)
			if err != nil {
				return nil, err
			}
			if i == 0 {
				c.Base = raw
				continue
			}
			var st Step
			if err := json.Unmarshal(raw, &st); err != nil {
				return nil, fmt.Errorf("demo %s: %v", n, err)
			}
			st.Name = strings.TrimSuffix(path.Base(n), ".json")
			c.Steps = append(c.Steps, st)
		}
		out = append(out, c)
	}
	return out, nil
}

// Options configure Load.
type Options struct {
	// Base is the FHIR base URL, e.g. http://127.0.0.1:8080/fhir.
	Base string
	// Token, when set, is sent as a bearer access token.
	Token string
	// Client sends the requests (default http.DefaultClient).
	Client *http.Client
	// Complete replays every case to its end; otherwise a case with
	// OpenUntil stops before that step and stays open.
	Complete bool
	// Progress, when set, is called before each step (nil step: the base
	// Bundle).
	Progress func(c *Case, s *Step)
}

// Loaded is a case Load replayed.
type Loaded struct {
	Name string
	// IDs maps {{case}}, {{team}} and {{intake}} to the ids the server
	// assigned.
	IDs map[string]string
	// Steps is the number of steps replayed (the base Bundle not counted).
	Steps int
}

// CaseID is the id of the case's EpisodeOfCare.
func (l Loaded) CaseID() string { return l.IDs["{{case}}"] }

// Load replays the demo cases through the FHIR API of o.Base. It stops at
// the first step that does not answer its expected status.
func Load(ctx context.Context, o Options) ([]Loaded, error) {
	cases, err := Cases()
	if err != nil {
		return nil, err
	}
	var out []Loaded
	for i := range cases {
		l, err := o.Replay(ctx, &cases[i])
		if err != nil {
			return out, err
		}
		out = append(out, l)
	}
	return out, nil
}

// Replay replays one demo case through the FHIR API of o.Base.
func (o Options) Replay(ctx context.Context, c *Case) (Loaded, error) {
	l := Loaded{Name: c.Name, IDs: map[string]string{}}
	if o.Progress != nil {
		o.Progress(c, nil)
	}
	if _, _, err := o.send(ctx, "POST", "", c.Base, http.StatusOK); err != nil {
		return l, fmt.Errorf("demo %s: base bundle: %w", c.Name, err)
	}
	for i := range c.Steps {
		st := &c.Steps[i]
		if !o.Complete && c.OpenUntil != "" && st.Name >= c.OpenUntil {
			break
		}
		if o.Progress != nil {
			o.Progress(c, st)
		}
		url, body := st.Request.URL, []byte(st.Body)
		for k, v := range l.IDs {
			url = strings.ReplaceAll(url, k, v)
			body = bytes.ReplaceAll(body, []byte(k), []byte(v))
		}
		_, resp, err := o.send(ctx, st.Request.Method, url, body, st.Status)
		if err != nil {
			return l, fmt.Errorf("demo %s step %s: %w", c.Name, st.Name, err)
		}
		if strings.HasSuffix(st.Request.URL, "$open-case") {
			if err := collectIDs(resp, l.IDs); err != nil {
				return l, fmt.Errorf("demo %s step %s: %w", c.Name, st.Name, err)
			}
		}
		l.Steps++
	}
	return l, nil
}

// collectIDs reads the ids of the case, its team and its intake Task from
// the $open-case answer (a transaction-response Bundle).
func collectIDs(resp []byte, ids map[string]string) error {
	var b struct {
		Entry []struct {
			Response struct {
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(resp, &b); err != nil {
		return fmt.Errorf("$open-case answer: %v", err)
	}
	names := map[string]string{"EpisodeOfCare": "{{case}}", "CareTeam": "{{team}}", "Task": "{{intake}}"}
	for _, e := range b.Entry {
		// Location: [base/]Type/id/_history/v
		parts := strings.Split(e.Response.Location, "/")
		for i := 0; i+1 < len(parts); i++ {
			if name, ok := names[parts[i]]; ok {
				ids[name] = parts[i+1]
				break
			}
		}
	}
	if ids["{{case}}"] == "" {
		return fmt.Errorf("$open-case answer names no EpisodeOfCare")
	}
	return nil
}

func (o Options) send(ctx context.Context, method, rel string, body []byte, want int) (int, []byte, error) {
	u := strings.TrimSuffix(o.Base, "/")
	if rel != "" {
		u += "/" + rel
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	ct := "application/fhir+json"
	if method == http.MethodPatch {
		ct = "application/json-patch+json"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/fhir+json")
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode != want {
		return resp.StatusCode, b, fmt.Errorf("%s %s: status %d, want %d%s", method, rel, resp.StatusCode, want, issueSummary(b))
	}
	return resp.StatusCode, b, nil
}

// issueSummary returns the details texts of an OperationOutcome (rule
// names and references only, never resource content).
func issueSummary(b []byte) string {
	var oo struct {
		Issue []struct {
			Details struct {
				Text string `json:"text"`
			} `json:"details"`
		} `json:"issue"`
	}
	if json.Unmarshal(b, &oo) != nil || len(oo.Issue) == 0 {
		return ""
	}
	var parts []string
	for _, i := range oo.Issue {
		if i.Details.Text != "" {
			parts = append(parts, i.Details.Text)
		}
	}
	return ": " + strings.Join(parts, "; ")
}
