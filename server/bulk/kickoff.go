package bulk

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/server/interaction"
)

// OperationName is the operation's name in interaction.Options.Operations.
const OperationName = "export"

// Kickoff implements the export kick-off request
// (https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-kick-off-request)
// at [base]/$export, [base]/Patient/$export, [base]/Group/[id]/$export and
// [base]/EpisodeOfCare/[id]/$export, by GET or by POST with a Parameters
// body. It records the job and answers 202 with Content-Location, the
// status URL. It is an interaction.Operation.
func (s *Service) Kickoff(ctx context.Context, h *interaction.Handler, r *interaction.Request) (*interaction.Response, error) {
	const op = "bulk.Kickoff"
	spec := Spec{BaseURL: r.BaseURL, TransactionTime: s.now()}
	switch {
	case r.Type == "" && r.ID == "":
		spec.Level = LevelSystem
	case r.Type == "Patient" && r.ID == "":
		spec.Level = LevelPatient
	case r.Type == "Group" && r.ID != "":
		spec.Level, spec.ID = LevelGroup, r.ID
	case r.Type == "EpisodeOfCare" && r.ID != "":
		spec.Level, spec.ID = LevelEpisode, r.ID
	default:
		return nil, outcome.New(outcome.NotSupported, "$export is supported at system, Patient, Group/[id] and EpisodeOfCare/[id] level").
			WithStatus(http.StatusNotFound).WithOp(op)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, outcome.New(outcome.NotSupported, "$export kick-off is GET or POST").WithStatus(http.StatusMethodNotAllowed).WithOp(op)
	}
	if !preferAsync(r.Header.Get("Prefer")) {
		return nil, outcome.New(outcome.Invalid, "$export requires the header Prefer: respond-async").WithOp(op)
	}
	params, err := kickoffParams(r)
	if err != nil {
		return nil, err
	}
	strict := preferStrict(r.Header.Get("Prefer"))
	for name := range params {
		switch name {
		case "_outputFormat", "_since", "_type", "_typeFilter", "patient", "_format", "_pretty":
		default:
			if strict {
				return nil, outcome.New(outcome.NotSupported, "unsupported $export parameter").
					WithDiagnostics("unsupported parameter " + name).WithStatus(http.StatusBadRequest).WithOp(op)
			}
		}
	}
	if f := params.Get("_outputFormat"); f != "" {
		switch f {
		case "application/fhir+ndjson", "application/ndjson", "ndjson":
		default:
			return nil, outcome.New(outcome.NotSupported, "_outputFormat must be application/fhir+ndjson").
				WithDiagnostics("unsupported _outputFormat " + f).WithStatus(http.StatusBadRequest).WithOp(op)
		}
	}
	if v := params.Get("_since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, outcome.New(outcome.Invalid, "_since must be a FHIR instant").WithDiagnostics("invalid _since " + v).WithOp(op)
		}
		spec.Since = t.UTC().Truncate(time.Millisecond)
	}
	for _, v := range params["_type"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			if !fhir.IsResourceType(t) {
				return nil, outcome.New(outcome.NotSupported, "unknown resource type in _type").WithDiagnostics("unknown type " + t).
					WithStatus(http.StatusBadRequest).WithOp(op)
			}
			if !slices.Contains(spec.Types, t) {
				spec.Types = append(spec.Types, t)
			}
		}
	}
	if err := s.typeFilters(&spec, params["_typeFilter"]); err != nil {
		return nil, err
	}
	if err := s.checkAccess(&spec, r.Access); err != nil {
		return nil, err
	}
	issues, err := s.resolveTarget(ctx, &spec, r, params["patient"])
	if err != nil {
		return nil, err
	}
	spec.Request = requestURL(r, params)

	st := &State{Spec: spec}
	for _, i := range issues {
		st.addIssue(i)
	}
	now := s.now()
	j := &store.Job{ID: interaction.NewUUID(), Kind: JobKind, Owner: Owner(r.Access), Status: StatusAccepted,
		Created: now, Updated: now}
	if err := encodeState(j, st); err != nil {
		return nil, err
	}
	if err := s.o.Jobs.CreateJob(ctx, j); err != nil {
		return nil, err
	}
	s.o.Logger.InfoContext(ctx, "export job accepted", "job", j.ID, "level", spec.Level, "types", len(spec.Types))
	s.poke()
	resp := &interaction.Response{Status: http.StatusAccepted, Header: http.Header{},
		Body: outcome.Resource(outcome.Issue{Severity: outcome.Information, Code: outcome.Informational,
			Detail: "export job accepted; poll the Content-Location URL for its status"})}
	resp.Header.Set("Content-Location", StatusURL(r.BaseURL, j.ID))
	return resp, nil
}

// StatusURL returns the status URL of a job.
func StatusURL(base, id string) string { return base + "/$export-status/" + id }

// FileURL returns the download URL of a job's file.
func FileURL(base, id, file string) string { return base + "/$export-file/" + id + "/" + file }

// preferAsync reports whether a Prefer header asks for respond-async.
func preferAsync(h string) bool {
	for _, p := range strings.FieldsFunc(h, func(r rune) bool { return r == ',' || r == ';' }) {
		if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
			return true
		}
	}
	return false
}

// preferStrict reports whether Prefer asks for handling=strict.
func preferStrict(h string) bool {
	for _, p := range strings.FieldsFunc(h, func(r rune) bool { return r == ',' || r == ';' }) {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "handling") && strings.EqualFold(strings.Trim(v, `"`), "strict") {
			return true
		}
	}
	return false
}

// kickoffParams returns the query parameters, joined by those of a POSTed
// Parameters resource (https://hl7.org/fhir/uv/bulkdata/export.html#query-parameters).
func kickoffParams(r *interaction.Request) (url.Values, error) {
	q := url.Values{}
	for k, vs := range r.Query {
		q[k] = append([]string(nil), vs...)
	}
	if r.Method != http.MethodPost || len(strings.TrimSpace(string(r.Body))) == 0 {
		return q, nil
	}
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name           string `json:"name"`
			ValueString    string `json:"valueString"`
			ValueInstant   string `json:"valueInstant"`
			ValueDateTime  string `json:"valueDateTime"`
			ValueCode      string `json:"valueCode"`
			ValueReference *struct {
				Reference string `json:"reference"`
			} `json:"valueReference"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, outcome.New(outcome.Structure, "the $export body must be a Parameters resource").WithExpression("Parameters")
	}
	for _, prm := range p.Parameter {
		v := prm.ValueString + prm.ValueInstant + prm.ValueDateTime + prm.ValueCode
		if prm.ValueReference != nil {
			v = prm.ValueReference.Reference
		}
		if prm.Name != "" && v != "" {
			q.Add(prm.Name, v)
		}
	}
	return q, nil
}

// typeFilters parses _typeFilter values ("Type?query") with the search
// registry; chained and _has parameters are not supported there.
func (s *Service) typeFilters(spec *Spec, vals []string) error {
	for _, v := range vals {
		for _, tf := range splitTypeFilters(v) {
			typ, query, ok := strings.Cut(tf, "?")
			if !ok || !fhir.IsResourceType(typ) {
				return outcome.New(outcome.Invalid, "_typeFilter must be [type]?[search query]").WithDiagnostics("invalid _typeFilter " + tf)
			}
			if _, err := s.parseQuery(typ, query); err != nil {
				return err
			}
			if spec.TypeFilters == nil {
				spec.TypeFilters = map[string][]string{}
			}
			spec.TypeFilters[typ] = append(spec.TypeFilters[typ], query)
		}
	}
	return nil
}

// splitTypeFilters splits a _typeFilter value at the commas that start a
// new "Type?" (a comma inside a query is an OR of values).
func splitTypeFilters(v string) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		if v[i] != ',' {
			continue
		}
		rest := v[i+1:]
		if t, _, ok := strings.Cut(rest, "?"); ok && fhir.IsResourceType(t) {
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// parseQuery parses a search query for typ, strictly; chains and _has are
// refused (they need the search executor).
func (s *Service) parseQuery(typ, query string) (*search.Query, error) {
	vals, err := url.ParseQuery(query)
	if err != nil {
		return nil, outcome.New(outcome.Invalid, "malformed search query").WithDiagnostics("cannot parse query for " + typ)
	}
	q, err := s.o.Registry.Parse(typ, vals, true)
	if err != nil {
		return nil, err
	}
	for _, c := range q.Clauses {
		if len(c.Chain) > 0 || c.Has != nil {
			return nil, outcome.New(outcome.NotSupported, "chained and _has parameters are not supported in _typeFilter").
				WithStatus(http.StatusBadRequest)
		}
	}
	return q, nil
}

// checkAccess records the caller's scopes in spec: the readable types, and
// per type any compartment bound and granular restrictions. A _type naming
// a type the caller may not read is refused (403).
func (s *Service) checkAccess(spec *Spec, a interaction.Access) error {
	if a == nil {
		return nil
	}
	for _, t := range spec.Types {
		if err := a.Allow(interaction.ActionRead, t); err != nil {
			return err
		}
	}
	spec.Allowed = []string{}
	for _, t := range fhir.ResourceTypes() {
		if a.Allow(interaction.ActionRead, t) != nil {
			continue
		}
		spec.Allowed = append(spec.Allowed, t)
		if pid, ok := a.Compartment(interaction.ActionRead, t); ok {
			if spec.Compartment == nil {
				spec.Compartment = map[string]string{}
			}
			spec.Compartment[t] = pid
		}
		for _, q := range a.Restrictions(interaction.ActionRead, t) {
			if spec.Restrictions == nil {
				spec.Restrictions = map[string][]string{}
			}
			spec.Restrictions[t] = append(spec.Restrictions[t], q.Encode())
		}
	}
	if len(spec.Allowed) == 0 {
		return outcome.New(outcome.Forbidden, "no read scope for any resource type")
	}
	return nil
}

// resolveTarget checks the Group or EpisodeOfCare exists and is visible to
// the caller, and records the group's members, the patient parameter and
// the episode's care teams. Group members that are not Patients are
// skipped and reported as issues for the error file.
func (s *Service) resolveTarget(ctx context.Context, spec *Spec, r *interaction.Request, patients []string) ([]Issue, error) {
	for _, p := range patients {
		id, ok := patientRef(p, r.BaseURL)
		if !ok {
			return nil, outcome.New(outcome.Invalid, "the patient parameter must reference a Patient").WithDiagnostics("invalid patient " + p)
		}
		spec.Patients = appendUnique(spec.Patients, id)
	}
	if len(patients) > 0 && spec.Level != LevelPatient && spec.Level != LevelGroup {
		return nil, outcome.New(outcome.NotSupported, "the patient parameter is supported at Patient and Group level").
			WithStatus(http.StatusBadRequest)
	}
	var typ string
	switch spec.Level {
	case LevelGroup:
		typ = "Group"
	case LevelEpisode:
		typ = "EpisodeOfCare"
	default:
		return nil, nil
	}
	if r.Access != nil {
		if err := r.Access.Allow(interaction.ActionRead, typ); err != nil {
			return nil, err
		}
	}
	res, err := s.o.Store.Read(ctx, typ, spec.ID)
	if err != nil {
		return nil, err
	}
	if res.Deleted || !visible(r.Access, res) {
		return nil, outcome.New(outcome.NotFound, "resource not found").WithDiagnostics(typ + "/" + spec.ID + " is not known")
	}
	if typ == "EpisodeOfCare" {
		for _, ref := range search.LocalRefs(res.Index, "team") {
			if id, ok := strings.CutPrefix(ref, "CareTeam/"); ok {
				spec.Teams = appendUnique(spec.Teams, id)
			}
		}
		return nil, nil
	}
	var g struct {
		Member []struct {
			Entity struct {
				Reference string `json:"reference"`
			} `json:"entity"`
			Inactive bool `json:"inactive"`
		} `json:"member"`
	}
	if err := json.Unmarshal(res.JSON, &g); err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "bulk.resolveTarget", "stored Group is unreadable")
	}
	var members []string
	var issues []Issue
	for _, m := range g.Member {
		if m.Inactive {
			continue
		}
		if id, ok := patientRef(m.Entity.Reference, r.BaseURL); ok {
			members = appendUnique(members, id)
			continue
		}
		issues = append(issues, Issue{Code: string(outcome.NotSupported), Severity: string(outcome.Warning),
			Detail:      "a Group member that is not a Patient reference was skipped",
			Diagnostics: "skipped member " + m.Entity.Reference})
	}
	if len(spec.Patients) > 0 { // the patient parameter narrows the group
		var keep []string
		for _, p := range spec.Patients {
			if slices.Contains(members, p) {
				keep = append(keep, p)
			}
		}
		members = keep
	}
	spec.Patients = members
	if spec.Patients == nil {
		spec.Patients = []string{}
	}
	return issues, nil
}

// visible reports whether res lies within a bounded caller's compartment.
func visible(a interaction.Access, res *store.Resource) bool {
	if a == nil {
		return true
	}
	pid, ok := a.Compartment(interaction.ActionRead, res.Type)
	return !ok || search.InPatientCompartment(res, pid)
}

// patientRef returns the id of a Patient reference ("Patient/x", or an
// absolute URL under base).
func patientRef(ref, base string) (string, bool) {
	if rest, ok := strings.CutPrefix(ref, base+"/"); ok {
		ref = rest
	}
	id, ok := strings.CutPrefix(ref, "Patient/")
	if !ok || !fhir.IsValidID(id) {
		return "", false
	}
	return id, true
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// requestURL rebuilds the kick-off URL for the manifest.
func requestURL(r *interaction.Request, q url.Values) string {
	u := r.BaseURL + "/"
	if r.Type != "" {
		u += r.Type + "/"
		if r.ID != "" {
			u += r.ID + "/"
		}
	}
	u += "$export"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}
