package interaction

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/mapping"
)

// Operations returns the case operations for Options.Operations, keyed by
// name.
func (c *CaseRules) Operations() map[string]Operation {
	return map[string]Operation{
		"EpisodeOfCare/transition": c.Transition,
		"EpisodeOfCare/open-case":  c.OpenCase,
		"EpisodeOfCare/everything": c.Everything,
		"EpisodeOfCare/timeline":   c.Timeline,
	}
}

// Transition implements POST EpisodeOfCare/{id}/$transition
// (https://casefhir.org/fhir/OperationDefinition/EpisodeOfCare-transition):
// the status and/or phase change with its guards, cascading to open
// CarePlans and Tasks when asked, written atomically; dryRun writes nothing.
func (c *CaseRules) Transition(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	if r.Type != "EpisodeOfCare" || r.ID == "" || r.Method != http.MethodPost {
		return nil, outcome.New(outcome.NotSupported, "$transition is POST EpisodeOfCare/{id}/$transition").WithStatus(http.StatusNotFound)
	}
	if err := allow(r, ActionUpdate, "EpisodeOfCare"); err != nil {
		return nil, err
	}
	params, err := mapping.Decode(r.Body)
	if err != nil {
		return nil, err
	}
	p, err := mapping.ParseTransitionParams(params)
	if err != nil {
		return nil, err
	}
	cur, err := h.readVisible(ctx, r, "EpisodeOfCare", r.ID)
	if err != nil {
		return nil, err
	}
	if cur.Deleted {
		return nil, outcome.New(outcome.Deleted, "the case has been deleted")
	}
	eoc, err := mapping.Decode(cur.JSON)
	if err != nil {
		return nil, err
	}
	rd := &caseReader{c: c, h: h}
	res, err := mapping.Transition(ctx, eoc, p, rd, h.now(cur))
	if err != nil {
		return nil, err
	}
	if res.Changed {
		if err := resolveCaseRefs(ctx, h, r, res.Episode); err != nil {
			return nil, err
		}
	}
	if p.DryRun || !res.Changed {
		body, err := mapping.Encode(res.Episode)
		if err != nil {
			return nil, err
		}
		hdr := http.Header{}
		if !res.Changed {
			versionHeaders(hdr, cur)
			body = cur.JSON
		}
		return &Response{Status: http.StatusOK, Header: hdr, Body: body}, nil
	}
	if len(res.CarePlans) > 0 {
		if err := allow(r, ActionUpdate, "CarePlan"); err != nil {
			return nil, err
		}
	}
	if len(res.Tasks) > 0 {
		if err := allow(r, ActionUpdate, "Task"); err != nil {
			return nil, err
		}
	}
	tx := &TxContext{Pending: map[string]*store.Resource{}}
	var writes []store.Write
	var stored *store.Resource
	// Cascaded resources first, so that the case's own write sees them.
	for _, m := range append(append([]map[string]any(nil), res.CarePlans...), res.Tasks...) {
		p, err := c.prepareUpdate(ctx, h, r, tx, m)
		if err != nil {
			return nil, err
		}
		writes = append(writes, store.Write{Next: p.res, Prev: p.prev})
	}
	body, err := mapping.Encode(res.Episode)
	if err != nil {
		return nil, err
	}
	w := &Write{Type: "EpisodeOfCare", ID: r.ID, Prev: cur, Body: body, Access: r.Access, Batch: tx, CaseChecked: true}
	prep, err := h.prepare(ctx, w, nil)
	if err != nil {
		return nil, err
	}
	stored = prep.res
	writes = append(writes, store.Write{Next: prep.res, Prev: cur})
	if err := applyAll(ctx, h, writes); err != nil {
		return nil, err
	}
	resp := &Response{Status: http.StatusOK, Header: http.Header{}, Body: stored.JSON}
	versionHeaders(resp.Header, stored)
	return resp, nil
}

// prepareUpdate prepares the next version of a stored resource m (which
// carries its type and id), recording it as pending in tx.
func (c *CaseRules) prepareUpdate(ctx context.Context, h *Handler, r *Request, tx *TxContext, m map[string]any) (*prepared, error) {
	typ, id := mapping.ResourceType(m), mapping.ID(m)
	prev, err := h.o.Store.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if !h.visible(r, ActionUpdate, prev) {
		return nil, outcome.New(outcome.Forbidden, "the cascade would change a resource outside the patient compartment the access token is bound to").
			WithDiagnostics(typ + "/" + id)
	}
	body, err := mapping.Encode(m)
	if err != nil {
		return nil, err
	}
	p, err := h.prepare(ctx, &Write{Type: typ, ID: id, Prev: prev, Body: body, Access: r.Access, Batch: tx}, nil)
	if err != nil {
		return nil, err
	}
	tx.Pending[p.res.Key()] = p.res
	return p, nil
}

// applyAll stores writes atomically. The case operations are documented
// as atomic, so a store without transactions refuses them rather than
// writing one resource at a time.
func applyAll(ctx context.Context, h *Handler, writes []store.Write) error {
	ts, ok := h.o.Store.(store.Transactional)
	if !ok {
		return outcome.New(outcome.NotSupported, "this operation is atomic and the store has no transactions").
			WithStatus(http.StatusNotImplemented).WithOp("interaction.applyAll")
	}
	return ts.Apply(ctx, writes)
}

// OpenCase implements POST EpisodeOfCare/$open-case
// (https://casefhir.org/fhir/OperationDefinition/EpisodeOfCare-open-case):
// the EpisodeOfCare, its CareTeam and an intake Task created atomically;
// 201 with a transaction-response Bundle.
func (c *CaseRules) OpenCase(ctx context.Context, h *Handler, r *Request) (*Response, error) {
	if r.Type != "EpisodeOfCare" || r.ID != "" || r.Method != http.MethodPost {
		return nil, outcome.New(outcome.NotSupported, "$open-case is POST EpisodeOfCare/$open-case").WithStatus(http.StatusNotFound)
	}
	for _, t := range []string{"EpisodeOfCare", "CareTeam", "Task"} {
		if err := allow(r, ActionCreate, t); err != nil {
			return nil, err
		}
	}
	params, err := mapping.Decode(r.Body)
	if err != nil {
		return nil, err
	}
	p, err := mapping.ParseOpenCaseParams(params)
	if err != nil {
		return nil, err
	}
	// Every reference the case is built on must resolve, within the
	// caller's access: a referral (or patient, case manager, organisation)
	// that cannot be read opens nothing.
	if ref, ok := fhir.ParseReference(p.Referral); ok && ref.Type == "ServiceRequest" {
		sr, err := resolveParam(ctx, h, r, "referral", ref)
		if err != nil {
			return nil, err
		}
		if p.ReferralResource, err = mapping.Decode(sr.JSON); err != nil {
			return nil, err
		}
	}
	for _, prm := range []struct{ name, ref, typ string }{
		{"patient", p.Patient, "Patient"},
		{"careManager", p.CareManager, "Practitioner"},
		{"managingOrganization", p.ManagingOrganization, "Organization"},
	} {
		if ref, ok := fhir.ParseReference(prm.ref); ok && ref.Type == prm.typ {
			if _, err := resolveParam(ctx, h, r, prm.name, ref); err != nil {
				return nil, err
			}
		}
	}
	p.Now = h.now(nil)
	p.NewUUID = NewUUID
	oc, err := mapping.OpenCase(p)
	if err != nil {
		return nil, err
	}
	type item struct {
		m   map[string]any
		urn string
	}
	items := []item{{oc.Episode, oc.EpisodeURN}, {oc.CareTeam, oc.CareTeamURN}, {oc.Task, oc.TaskURN}}
	ids := map[string]string{} // urn -> assigned id
	for _, it := range items {
		ids[it.urn] = h.o.NewID()
	}
	tx := &TxContext{Pending: map[string]*store.Resource{}}
	var writes []store.Write
	var created []*store.Resource
	for _, it := range items {
		body, err := json.Marshal(it.m)
		if err != nil {
			return nil, outcome.Wrap(err, outcome.Exception, "interaction.OpenCase", "cannot encode resource")
		}
		s := string(body)
		for _, other := range items {
			s = strings.ReplaceAll(s, `"`+other.urn+`"`, `"`+mapping.ResourceType(other.m)+"/"+ids[other.urn]+`"`)
		}
		typ, id := mapping.ResourceType(it.m), ids[it.urn]
		w := &Write{Type: typ, ID: id, Body: []byte(s), Access: r.Access, Batch: tx}
		prep, err := h.prepare(ctx, w, nil)
		if err != nil {
			return nil, err
		}
		if err := h.checkStoredCompartment(r, ActionCreate, prep.res); err != nil {
			return nil, err
		}
		tx.Pending[prep.res.Key()] = prep.res
		writes = append(writes, store.Write{Next: prep.res})
		created = append(created, prep.res)
	}
	if err := applyAll(ctx, h, writes); err != nil {
		return nil, err
	}
	entries := make([]any, 0, len(created))
	for _, res := range created {
		entries = append(entries, map[string]any{
			"response": map[string]any{
				"status":       "201 Created",
				"location":     location(r.BaseURL, res),
				"etag":         fhir.FormatETag(fhir.VersionString(res.VersionID)),
				"lastModified": fhir.FormatInstant(res.LastUpdated),
			},
		})
	}
	body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
	if err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "interaction.OpenCase", "cannot encode bundle")
	}
	resp := &Response{Status: http.StatusCreated, Header: http.Header{}, Body: body}
	resp.Header.Set("Location", location(r.BaseURL, created[0]))
	return resp, nil
}

// resolveParam reads the resource an operation parameter references, as
// the caller may see it: one that is missing, deleted, on another server
// or outside the caller's access is a 422 naming the parameter, with
// nothing written.
func resolveParam(ctx context.Context, h *Handler, r *Request, name string, ref fhir.Reference) (*store.Resource, error) {
	return resolveRef(ctx, h, r, "Parameters.parameter('"+name+"')", ref)
}

// resolveRef is resolveParam for the reference at the FHIRPath expr.
func resolveRef(ctx context.Context, h *Handler, r *Request, expr string, ref fhir.Reference) (*store.Resource, error) {
	unresolved := func() error {
		return outcome.New(outcome.NotFound, "a referenced resource cannot be read").
			WithStatus(http.StatusUnprocessableEntity).
			WithDiagnostics(expr + ": " + ref.Local() + " does not resolve").
			WithExpression(expr)
	}
	if ref.Base != "" && ref.Base != r.BaseURL {
		return nil, unresolved()
	}
	if allow(r, ActionRead, ref.Type) != nil {
		return nil, unresolved()
	}
	res, err := h.readVisible(ctx, r, ref.Type, ref.ID)
	switch {
	case outcome.Is(err, outcome.NotFound) || outcome.Is(err, outcome.Deleted):
		return nil, unresolved()
	case err != nil:
		return nil, err
	case res.Deleted:
		return nil, unresolved()
	}
	return res, nil
}

// resolveCaseRefs checks, for a case moving to active, that what G-ACT
// relies on resolves within the caller's access: the case manager, the
// managing organisation and every CareTeam in team.
func resolveCaseRefs(ctx context.Context, h *Handler, r *Request, eoc map[string]any) error {
	if eoc["status"] != mapping.StatusActive {
		return nil
	}
	check := func(expr string, v any) error {
		m, _ := v.(map[string]any)
		s, _ := m["reference"].(string)
		ref, ok := fhir.ParseReference(s)
		if !ok || ref.Type == "" {
			return nil
		}
		_, err := resolveRef(ctx, h, r, expr, ref)
		return err
	}
	if err := check("EpisodeOfCare.careManager", eoc["careManager"]); err != nil {
		return err
	}
	if err := check("EpisodeOfCare.managingOrganization", eoc["managingOrganization"]); err != nil {
		return err
	}
	teams, _ := eoc["team"].([]any)
	for i, t := range teams {
		if err := check("EpisodeOfCare.team["+strconv.Itoa(i)+"]", t); err != nil {
			return err
		}
	}
	return nil
}
