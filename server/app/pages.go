package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/casefhir/casefhir/mapping"
)

// pageSize is the number of cases per worklist page.
const pageSize = 20

// pageData is what every template gets.
type pageData struct {
	Root     string // the app's path, e.g. /app/
	Title    string
	User     string
	Patient  string // patient in context (display)
	CSRF     string
	Flash    string
	Errors   []issue
	ErrTitle string
	Message  *message
	Worklist *worklistView
	Case     *caseView
	Actions  *actionsView
	AuthOff  bool
	Signed   bool
}

type message struct{ Title, Text string }

// worklistView is the worklist page.
type worklistView struct {
	Filter     filter
	Rows       []caseRow
	Counts     []phaseCount
	MaxCount   int
	Total      int
	Next       template.URL // the next page (?query), built by url.Values.Encode
	Phases     []option
	Statuses   []option
	Categories []option
	Risks      []option
	Models     []option
	CanMine    bool
	Filtered   bool
}

type phaseCount struct {
	Code, Display string
	Count, Pct    int
	Query         template.URL // ?query of the phase's filter, built by url.Values.Encode
}

type option struct{ Code, Display string }

// filter is the worklist's filter (its query parameters).
type filter struct{ Phase, Status, Mine, Category, Risk, Page string }

func (f filter) query() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"phase": f.Phase, "status": f.Status, "mine": f.Mine, "category": f.Category, "risk": f.Risk} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// actionsView holds the choices of the case page's forms.
type actionsView struct {
	Phases         []option
	NextPhase      string
	Statuses       []option
	ClosureReasons []option
}

var closureReasons = []option{
	{"goals-met", "Goals met"}, {"transferred", "Transferred"}, {"declined", "Declined"}, {"ineligible", "Ineligible"},
	{"lost-to-follow-up", "Lost to follow-up"}, {"deceased", "Deceased"}, {"coverage-ended", "Coverage ended"}, {"moved", "Moved"},
}

var statusDisplay = map[string]string{
	"planned": "Planned", "waitlist": "Waitlist", "active": "Active", "onhold": "On hold",
	"finished": "Finished", "cancelled": "Cancelled", "entered-in-error": "Entered in error",
}

func (a *App) parseTemplates() error {
	funcs := template.FuncMap{
		"status": func(s string) string {
			if d, ok := statusDisplay[s]; ok {
				return d
			}
			return s
		},
		"phase": mapping.PhaseDisplay,
		"title": func(s string) string {
			if s == "" {
				return s
			}
			return strings.ToUpper(s[:1]) + strings.ReplaceAll(s[1:], "-", " ")
		},
		"pathEscape": url.PathEscape,
	}
	a.tmpl = map[string]*template.Template{}
	for _, page := range []string{"worklist", "case", "message"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return fmt.Errorf("app: templates: %v", err)
		}
		a.tmpl[page] = t
	}
	return nil
}

// render writes a page.
func (a *App) render(w http.ResponseWriter, r *http.Request, status int, page string, d pageData) {
	if s := a.sessionOf(r); s != nil {
		d.CSRF, d.Signed = s.csrf, true
		d.User, d.Patient = s.userName, s.patientName
	}
	d.AuthOff = a.cfg.AuthOff
	d.Root = a.cookiePath()
	var buf bytes.Buffer
	if err := a.tmpl[page].Execute(&buf, d); err != nil {
		a.log.Error("app: template", "page", page, "error", err.Error())
		http.Error(w, "The page could not be shown.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// errorPage shows a readable error: never raw JSON or a stack trace.
func (a *App) errorPage(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	a.render(w, r, status, "message", pageData{Title: title, Message: &message{Title: title, Text: text}})
}

// apiErrorPage shows a failed FHIR API call.
func (a *App) apiErrorPage(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		a.log.Warn("app: FHIR API unreachable", "error", err.Error())
		a.errorPage(w, r, http.StatusBadGateway, "The case server is unavailable", "The app could not reach the FHIR server. Try again in a moment.")
		return
	}
	switch ae.Status {
	case http.StatusUnauthorized:
		a.errorPage(w, r, http.StatusUnauthorized, "Your sign-in is no longer valid", "Launch the app again from your EHR, or open it at its address to sign in again.")
	case http.StatusForbidden:
		a.errorPage(w, r, http.StatusForbidden, "You may not see this", "Your access does not include this information. Ask your administrator if you need it.")
	case http.StatusNotFound, http.StatusGone:
		a.errorPage(w, r, http.StatusNotFound, "Not found", "This case does not exist or is not available to you.")
	default:
		a.render(w, r, http.StatusBadGateway, "message", pageData{Title: "The request failed", ErrTitle: "The server refused the request",
			Errors: ae.Issues, Message: &message{Title: "The request failed", Text: "The FHIR server answered with an error."}})
	}
}

// patientRef returns "Patient/id" for a patient claim.
func patientRef(p string) string {
	if strings.HasPrefix(p, "Patient/") {
		return p
	}
	return "Patient/" + p
}

// handleWorklist shows the managed cases the user may see.
func (a *App) handleWorklist(w http.ResponseWriter, r *http.Request, s *session) {
	a.worklist(w, r, s, http.StatusOK, nil)
}

func (a *App) worklist(w http.ResponseWriter, r *http.Request, s *session, status int, issues []issue) {
	q := r.URL.Query()
	f := filter{Phase: q.Get("phase"), Status: q.Get("status"), Mine: q.Get("mine"), Category: q.Get("category"),
		Risk: q.Get("risk"), Page: q.Get("page")}
	if f.Phase != "" && !mapping.IsPhase(f.Phase) || f.Status != "" && !mapping.IsStatus(f.Status) ||
		f.Risk != "" && riskRank(f.Risk) < 0 || f.Category != "" && !slices.Contains(categories(), f.Category) {
		a.errorPage(w, r, http.StatusBadRequest, "Unknown filter", "A filter of the worklist has a value the app does not know.")
		return
	}
	v := &worklistView{Filter: f, CanMine: strings.HasPrefix(s.fhirUser, "Practitioner/")}
	v.Filtered = f.Phase != "" || f.Status != "" || f.Mine != "" || f.Category != "" || f.Risk != ""
	search := a.caseSearch(s, f)
	rel := "EpisodeOfCare?" + search.Encode()
	if f.Page != "" {
		// A next link of an earlier page: only the server's paging
		// parameters of an EpisodeOfCare search, never a new search.
		if !pageLink(f.Page) {
			a.errorPage(w, r, http.StatusBadRequest, "Unknown page", "This worklist page link is not valid. Go back to the first page.")
			return
		}
		rel = f.Page
	}
	b, err := a.getJSON(r.Context(), s, rel)
	if err != nil {
		a.apiErrorPage(w, r, err)
		return
	}
	matches, included := entries(b)
	if s.patient != "" {
		// Only the patient of the launch, whatever the page holds.
		matches = slices.DeleteFunc(matches, func(m map[string]any) bool { return ref(m, "patient") != patientRef(s.patient) })
	}
	v.Rows = worklistRows(matches, included)
	if t, ok := b["total"].(float64); ok {
		v.Total = int(t)
	}
	if next := nextLink(b, s.base); next != "" {
		nq := f.query()
		nq.Set("page", next)
		v.Next = template.URL("?" + nq.Encode())
	}
	// Counts per phase, with the other filters.
	for _, p := range mapping.Phases() {
		cf := f
		cf.Phase, cf.Page = p, ""
		cq := a.caseSearch(s, cf)
		cq.Del("_include")
		cq.Del("_revinclude")
		cq.Del("_sort")
		cq.Set("_summary", "count")
		cb, err := a.getJSON(r.Context(), s, "EpisodeOfCare?"+cq.Encode())
		if err != nil {
			a.apiErrorPage(w, r, err)
			return
		}
		n, _ := cb["total"].(float64)
		pc := phaseCount{Code: p, Display: mapping.PhaseDisplay(p), Count: int(n), Query: template.URL("?" + cf.query().Encode())}
		v.Counts = append(v.Counts, pc)
		v.MaxCount = max(v.MaxCount, pc.Count)
	}
	for i := range v.Counts {
		if v.MaxCount > 0 {
			v.Counts[i].Pct = v.Counts[i].Count * 100 / v.MaxCount
		}
	}
	for _, p := range mapping.Phases() {
		v.Phases = append(v.Phases, option{p, mapping.PhaseDisplay(p)})
	}
	for _, st := range mapping.Statuses() {
		v.Statuses = append(v.Statuses, option{st, statusDisplay[st]})
	}
	for _, c := range categories() {
		v.Categories = append(v.Categories, option{c, strings.ToUpper(c[:1]) + strings.ReplaceAll(c[1:], "-", " ")})
	}
	for _, rl := range riskLevels[1:] {
		v.Risks = append(v.Risks, option{rl, strings.ToUpper(rl[:1]) + rl[1:] + " or higher"})
	}
	for _, m := range []string{mapping.ModelBrokerage, mapping.ModelClinical, mapping.ModelStrengthsBased, mapping.ModelIntensive} {
		v.Models = append(v.Models, option{m, strings.ToUpper(m[:1]) + strings.ReplaceAll(m[1:], "-", " ")})
	}
	d := pageData{Title: "Worklist", Worklist: v, Flash: a.takeFlash(s), Errors: issues}
	if len(issues) > 0 {
		d.ErrTitle = "The case was not opened"
	}
	a.render(w, r, status, "worklist", d)
}

// pageLink reports whether p is a paging link of an EpisodeOfCare search
// (EpisodeOfCare?_snapshot=...&_count=...&_offset=...).
func pageLink(p string) bool {
	q, ok := strings.CutPrefix(p, "EpisodeOfCare?")
	if !ok {
		return false
	}
	v, err := url.ParseQuery(q)
	if err != nil || v.Get("_snapshot") == "" {
		return false
	}
	for k := range v {
		if k != "_snapshot" && k != "_count" && k != "_offset" {
			return false
		}
	}
	return true
}

func categories() []string {
	return []string{mapping.CategoryAcute, mapping.CategoryIntermediate, mapping.CategoryLongTerm}
}

// caseSearch is the EpisodeOfCare search of the worklist for a filter.
func (a *App) caseSearch(s *session, f filter) url.Values {
	q := url.Values{}
	if f.Phase != "" {
		q.Set("phase", f.Phase)
	} else {
		q.Set("phase", strings.Join(mapping.Phases(), ",")) // managed cases only
	}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Mine != "" && strings.HasPrefix(s.fhirUser, "Practitioner/") {
		q.Set("care-manager", s.fhirUser)
	}
	if f.Category != "" {
		q.Set("type", mapping.SystemCategory+"|"+f.Category)
	}
	if f.Risk != "" {
		var codes []string
		for _, rl := range riskLevels[riskRank(f.Risk):] {
			codes = append(codes, SystemRisk+"|"+rl)
		}
		q.Set("_has:RiskAssessment:episode-of-care:risk", strings.Join(codes, ","))
	}
	if s.patient != "" {
		q.Set("patient", patientRef(s.patient))
	}
	q.Set("_sort", "-_lastUpdated")
	q.Set("_count", strconv.Itoa(pageSize))
	q.Set("_total", "accurate")
	q["_include"] = []string{"EpisodeOfCare:patient", "EpisodeOfCare:care-manager"}
	q.Set("_revinclude", "RiskAssessment:episode-of-care")
	return q
}

// loadCase reads the case with everything linked to it, refusing a case
// outside the launch's patient context.
func (a *App) loadCase(r *http.Request, s *session, id string) (map[string]any, []map[string]any, error) {
	if id == "" || strings.ContainsAny(id, "/?#%") {
		return nil, nil, &apiError{Status: http.StatusNotFound}
	}
	rel := "EpisodeOfCare/" + id + "/$everything?_count=1000"
	var eoc map[string]any
	var all []map[string]any
	// Each page includes what its members reference: a resource
	// referenced from several pages comes more than once.
	seen := map[string]bool{}
	for page := 0; rel != "" && page < 10; page++ {
		b, err := a.getJSON(r.Context(), s, rel)
		if err != nil {
			return nil, nil, err
		}
		m, inc := entries(b)
		for _, res := range append(m, inc...) {
			k := mapping.Key(res)
			if seen[k] {
				continue
			}
			seen[k] = true
			if eoc == nil && k == "EpisodeOfCare/"+id {
				eoc = res
			}
			all = append(all, res)
		}
		rel = nextLink(b, s.base)
	}
	if eoc == nil || !mapping.IsManaged(eoc) {
		return nil, nil, &apiError{Status: http.StatusNotFound}
	}
	if s.patient != "" && ref(eoc, "patient") != patientRef(s.patient) {
		return nil, nil, &apiError{Status: http.StatusNotFound}
	}
	return eoc, all, nil
}

// checkCase reads the case alone and refuses one that is not a managed
// case or lies outside the launch's patient context.
func (a *App) checkCase(r *http.Request, s *session, id string) (map[string]any, error) {
	if id == "" || strings.ContainsAny(id, "/?#%") {
		return nil, &apiError{Status: http.StatusNotFound}
	}
	eoc, err := a.getJSON(r.Context(), s, "EpisodeOfCare/"+id)
	if err != nil {
		return nil, err
	}
	if !mapping.IsManaged(eoc) || s.patient != "" && ref(eoc, "patient") != patientRef(s.patient) {
		return nil, &apiError{Status: http.StatusNotFound}
	}
	return eoc, nil
}

// handleCase shows the case page.
func (a *App) handleCase(w http.ResponseWriter, r *http.Request, s *session) {
	a.showCase(w, r, s, r.PathValue("id"), http.StatusOK, nil)
}

func (a *App) showCase(w http.ResponseWriter, r *http.Request, s *session, id string, status int, issues []issue) {
	eoc, all, err := a.loadCase(r, s, id)
	if err != nil {
		a.apiErrorPage(w, r, err)
		return
	}
	v := buildCase(eoc, all, a.now())
	d := pageData{Title: v.Patient + " – case", Case: &v, Actions: actionsFor(eoc), Flash: a.takeFlash(s), Errors: issues}
	if len(issues) > 0 {
		d.ErrTitle = "The case was not changed"
	}
	a.render(w, r, status, "case", d)
}

// actionsFor lists the phases and statuses a case may move to.
func actionsFor(eoc map[string]any) *actionsView {
	cur, st := mapping.Phase(eoc), mapping.Status(eoc)
	av := &actionsView{ClosureReasons: closureReasons}
	for _, p := range mapping.Phases() {
		if p != cur && mapping.PhaseMoveAllowed(cur, p) {
			label := mapping.PhaseDisplay(p)
			if slices.Index(mapping.Phases(), p) < slices.Index(mapping.Phases(), cur) {
				label += " (re-plan)"
			}
			av.Phases = append(av.Phases, option{p, label})
			if av.NextPhase == "" && slices.Index(mapping.Phases(), p) > slices.Index(mapping.Phases(), cur) {
				av.NextPhase = p
			}
		}
	}
	for _, to := range mapping.Statuses() {
		if ok, _ := mapping.TransitionAllowed(st, to); ok && to != st {
			av.Statuses = append(av.Statuses, option{to, statusDisplay[to]})
		}
	}
	return av
}

// handleTransition moves a case to another phase and/or status.
func (a *App) handleTransition(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if _, err := a.checkCase(r, s, id); err != nil {
		a.apiErrorPage(w, r, err)
		return
	}
	f := r.PostForm
	phase, status := f.Get("phase"), f.Get("status")
	reasonCode, note := f.Get("reason"), strings.TrimSpace(f.Get("note"))
	if phase != "" && !mapping.IsPhase(phase) || status != "" && !mapping.IsStatus(status) {
		a.errorPage(w, r, http.StatusBadRequest, "Unknown phase or status", "Choose a phase or status from the list.")
		return
	}
	if phase == "" && status == "" {
		a.showCase(w, r, s, id, http.StatusUnprocessableEntity, []issue{{Text: "Choose a new phase, a new status, or both."}})
		return
	}
	var params []any
	if status != "" {
		params = append(params, map[string]any{"name": "status", "valueCode": status})
	}
	if phase != "" {
		params = append(params, map[string]any{"name": "phase", "valueCoding": map[string]any{
			"system": mapping.SystemPhase, "code": phase, "display": mapping.PhaseDisplay(phase)}})
	}
	reason := map[string]any{}
	if (status == mapping.StatusFinished || status == mapping.StatusCancelled) && reasonCode != "" {
		for _, o := range closureReasons {
			if o.Code == reasonCode {
				reason["coding"] = []any{map[string]any{"system": mapping.SystemClosureReason, "code": o.Code, "display": o.Display}}
			}
		}
	}
	if note != "" {
		reason["text"] = note
	}
	if len(reason) > 0 {
		params = append(params, map[string]any{"name": "reason", "valueCodeableConcept": reason})
	}
	if f.Get("cascade") == "on" {
		params = append(params, map[string]any{"name": "cascade", "valueBoolean": true})
	}
	body, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
	if _, err := a.fhirDo(r.Context(), s, http.MethodPost, "EpisodeOfCare/"+id+"/$transition", body, "application/fhir+json"); err != nil {
		a.actionFailed(w, r, s, id, err)
		return
	}
	var done []string
	if phase != "" {
		done = append(done, "moved to "+mapping.PhaseDisplay(phase))
	}
	if status != "" {
		done = append(done, "now "+statusDisplay[status])
	}
	a.setFlash(s, "The case was "+strings.Join(done, " and ")+".")
	http.Redirect(w, r, a.cfg.AppBase+"/case/"+url.PathEscape(id), http.StatusSeeOther)
}

// actionFailed shows a refused action on the case page: a broken case rule
// as a readable message, never raw JSON.
func (a *App) actionFailed(w http.ResponseWriter, r *http.Request, s *session, id string, err error) {
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusBadRequest || ae.Status == http.StatusConflict || ae.Status == http.StatusPreconditionFailed) {
		issues := ae.Issues
		if len(issues) == 0 {
			issues = []issue{{Text: "The server refused the change."}}
		}
		if id == "" {
			a.worklistWithErrors(w, r, s, issues)
			return
		}
		a.showCase(w, r, s, id, ae.Status, issues)
		return
	}
	a.apiErrorPage(w, r, err)
}

// handleCompleteTask marks an open Task of the case completed.
func (a *App) handleCompleteTask(w http.ResponseWriter, r *http.Request, s *session) {
	id, task := r.PathValue("id"), r.PathValue("task")
	eoc, err := a.checkCase(r, s, id)
	if err != nil {
		a.apiErrorPage(w, r, err)
		return
	}
	var tk map[string]any
	if !strings.ContainsAny(task, "/?#%") {
		tk, err = a.getJSON(r.Context(), s, "Task/"+task)
	}
	if tk == nil || caseLink(tk) != mapping.Key(eoc) {
		if err != nil && !isNotFound(err) {
			a.apiErrorPage(w, r, err)
			return
		}
		a.errorPage(w, r, http.StatusNotFound, "Task not found", "This task does not belong to the case.")
		return
	}
	patch := []byte(`[{"op":"replace","path":"/status","value":"completed"}]`)
	if _, err := a.fhirDo(r.Context(), s, http.MethodPatch, "Task/"+task, patch, "application/json-patch+json"); err != nil {
		a.actionFailed(w, r, s, id, err)
		return
	}
	a.setFlash(s, "The task was marked completed.")
	http.Redirect(w, r, a.cfg.AppBase+"/case/"+url.PathEscape(id), http.StatusSeeOther)
}

func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusGone)
}

// handleOpenCase opens a case from a referral ($open-case).
func (a *App) handleOpenCase(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	referral := strings.TrimSpace(f.Get("referral"))
	referral = strings.TrimPrefix(referral, "ServiceRequest/")
	if referral == "" || strings.ContainsAny(referral, "/?#% ") {
		a.worklistWithErrors(w, r, s, []issue{{Text: "Give the id of the referral (a ServiceRequest), e.g. ServiceRequest/123."}})
		return
	}
	params := []any{map[string]any{"name": "referral", "valueReference": map[string]any{"reference": "ServiceRequest/" + referral}}}
	if s.patient != "" {
		params = append(params, map[string]any{"name": "patient", "valueReference": map[string]any{"reference": patientRef(s.patient)}})
	}
	if strings.HasPrefix(s.fhirUser, "Practitioner/") {
		params = append(params, map[string]any{"name": "careManager", "valueReference": map[string]any{"reference": s.fhirUser}})
	}
	if org := strings.TrimSpace(f.Get("organization")); org != "" {
		org = strings.TrimPrefix(org, "Organization/")
		params = append(params, map[string]any{"name": "managingOrganization", "valueReference": map[string]any{"reference": "Organization/" + org}})
	}
	if c := f.Get("category"); slices.Contains(categories(), c) {
		params = append(params, map[string]any{"name": "category", "valueCoding": map[string]any{"system": mapping.SystemCategory, "code": c}})
	}
	if m := f.Get("model"); m != "" {
		params = append(params, map[string]any{"name": "model", "valueCoding": map[string]any{"system": mapping.SystemModel, "code": m}})
	}
	body, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
	resp, err := a.fhirDo(r.Context(), s, http.MethodPost, "EpisodeOfCare/$open-case", body, "application/fhir+json")
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && len(ae.Issues) > 0 {
			ae.Status = http.StatusUnprocessableEntity // the referral does not exist
		}
		a.actionFailed(w, r, s, "", err)
		return
	}
	var tr struct {
		Entry []struct {
			Response struct {
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(resp, &tr)
	for _, e := range tr.Entry {
		parts := strings.Split(e.Response.Location, "/")
		for i := 0; i+1 < len(parts); i++ {
			if parts[i] == "EpisodeOfCare" {
				a.setFlash(s, "The case was opened in screening, with its care team and an intake task.")
				http.Redirect(w, r, a.cfg.AppBase+"/case/"+url.PathEscape(parts[i+1]), http.StatusSeeOther)
				return
			}
		}
	}
	a.setFlash(s, "The case was opened.")
	http.Redirect(w, r, a.cfg.AppBase+"/", http.StatusSeeOther)
}

// worklistWithErrors shows the worklist's first page with the errors of a
// refused action.
func (a *App) worklistWithErrors(w http.ResponseWriter, r *http.Request, s *session, issues []issue) {
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = ""
	a.worklist(w, r2, s, http.StatusUnprocessableEntity, issues)
}

func (a *App) setFlash(s *session, msg string) {
	a.mu.Lock()
	s.flash = msg
	a.mu.Unlock()
}

func (a *App) takeFlash(s *session) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}
