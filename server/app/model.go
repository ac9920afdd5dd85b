package app

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/casefhir/casefhir/mapping"
)

// SystemRisk is THO risk-probability, the code system of qualitativeRisk.
const SystemRisk = "http://terminology.hl7.org/CodeSystem/risk-probability"

// riskLevels are the risk-probability codes, lowest first.
var riskLevels = []string{"negligible", "low", "moderate", "high", "certain"}

func riskRank(code string) int { return slices.Index(riskLevels, code) }

// caseRow is one line of the worklist.
type caseRow struct {
	ID, Patient, Phase, PhaseCode, Status, Category, Model, CareManager string
	Changed, ChangedISO                                                 string
	Risk, RiskCode                                                      string
}

// names resolves references to display names from included resources.
type names map[string]string

func namesOf(resources ...[]map[string]any) names {
	n := names{}
	for _, rs := range resources {
		for _, r := range rs {
			var name string
			switch str(r, "resourceType") {
			case "Patient", "Practitioner", "RelatedPerson":
				name = humanName(r)
			case "Organization", "CareTeam", "Location":
				name = str(r, "name")
			}
			if name != "" {
				n[key(r)] = name
			}
		}
	}
	return n
}

// of returns the name of a reference, or a readable fallback.
func (n names) of(reference string) string {
	if v, ok := n[reference]; ok {
		return v
	}
	return reference
}

// worklistRows builds the worklist lines from a search page.
func worklistRows(cases, included []map[string]any) []caseRow {
	nm := namesOf(included)
	highest := map[string]string{} // case key -> highest risk code
	for _, r := range included {
		if str(r, "resourceType") != "RiskAssessment" {
			continue
		}
		c := caseLink(r)
		for _, p := range objs(r, "prediction") {
			code := conceptCode(obj(p, "qualitativeRisk"), SystemRisk)
			if riskRank(code) > riskRank(highest[c]) {
				highest[c] = code
			}
		}
	}
	rows := make([]caseRow, 0, len(cases))
	for _, c := range cases {
		if str(c, "resourceType") != "EpisodeOfCare" {
			continue
		}
		phase := mapping.Phase(c)
		row := caseRow{ID: str(c, "id"), Patient: nm.of(ref(c, "patient")), PhaseCode: phase,
			Phase: mapping.PhaseDisplay(phase), Status: str(c, "status"),
			Category: mapping.Category(c), CareManager: nm.of(ref(c, "careManager")),
			RiskCode: highest[key(c)]}
		if ms := mapping.Models(c); len(ms) > 0 {
			row.Model = ms[0]
		}
		if row.CareManager == "" {
			row.CareManager = "—"
		}
		row.Risk = row.RiskCode
		lu := str(obj(c, "meta"), "lastUpdated")
		row.ChangedISO, row.Changed = lu, formatDateTime(lu)
		rows = append(rows, row)
	}
	return rows
}

// caseLink returns the case a resource is linked to ("EpisodeOfCare/id").
func caseLink(r map[string]any) string {
	for _, e := range objs(r, "extension") {
		if str(e, "url") == mapping.ExtEpisodeOfCare {
			return ref(e, "valueReference")
		}
	}
	if eps := objs(r, "episodeOfCare"); len(eps) > 0 {
		return str(eps[0], "reference")
	}
	return ""
}

// phaseStep is one phase of the phase track.
type phaseStep struct {
	Code, Display string
	State         string // done, current, todo
	Since         string // first entry
	Visits        int
}

// phaseEntry is one entry of the phase history.
type phaseEntry struct {
	Display, Code   string
	Start, End      string
	StartISO        string
	Current, Replan bool
	Duration        string
}

// statusEntry is one entry of the status history.
type statusEntry struct {
	Status, Start, End, Reason string
	Current, Hold              bool
}

// timeline is the case's history as drawn on the case page.
type timeline struct {
	Track   []phaseStep
	Phases  []phaseEntry
	Status  []statusEntry
	Replans int
}

func buildTimeline(eoc map[string]any) timeline {
	var tl timeline
	hist := mapping.PhaseHistoryOf(eoc)
	current := mapping.Phase(eoc)
	prev := -1
	for i, h := range hist {
		idx := slices.Index(mapping.Phases(), h.Phase)
		e := phaseEntry{Display: mapping.PhaseDisplay(h.Phase), Code: h.Phase, Start: formatDateTime(h.Start),
			End: formatEnd(h.Start, h.End), StartISO: h.Start, Current: i == len(hist)-1 && h.End == "",
			Replan: prev >= 0 && idx < prev, Duration: duration(h.Start, h.End)}
		if e.Replan {
			tl.Replans++
		}
		prev = idx
		tl.Phases = append(tl.Phases, e)
	}
	curIdx := slices.Index(mapping.Phases(), current)
	for i, p := range mapping.Phases() {
		st := phaseStep{Code: p, Display: mapping.PhaseDisplay(p), State: "todo"}
		for _, h := range hist {
			if h.Phase == p {
				if st.Visits == 0 {
					st.Since = formatDate(h.Start)
				}
				st.Visits++
			}
		}
		switch {
		case p == current:
			st.State = "current"
		case st.Visits > 0 || i < curIdx:
			st.State = "done"
		}
		tl.Track = append(tl.Track, st)
	}
	sh := objs(eoc, "statusHistory")
	for i, h := range sh {
		p := obj(h, "period")
		e := statusEntry{Status: str(h, "status"), Start: formatDateTime(str(p, "start")), End: formatEnd(str(p, "start"), str(p, "end")),
			Current: i == len(sh)-1 && str(p, "end") == ""}
		e.Hold = e.Status == mapping.StatusOnhold
		for _, x := range objs(h, "extension") {
			if str(x, "url") == mapping.ExtStatusReason {
				e.Reason = conceptText(obj(x, "valueCodeableConcept"))
			}
		}
		tl.Status = append(tl.Status, e)
	}
	if cr := mapping.ClosureReason(eoc); cr != nil && len(tl.Status) > 0 {
		last := &tl.Status[len(tl.Status)-1]
		if last.Reason == "" {
			last.Reason = conceptText(cr)
		}
	}
	return tl
}

// member is a care team member.
type member struct{ Name, Role string }

// goalView, activityView, planView: the care plan.
type goalView struct{ Text, Status, Achievement string }
type activityView struct{ Text, Kind, Status string }
type planView struct {
	Title, Status, Period string
	Goals                 []goalView
	Activities            []activityView
}

type riskView struct{ Domain, Level, LevelCode, Mitigation, Date string }
type coverageView struct{ Payor, Type, Period, Status, Member string }
type taskView struct{ ID, Text, Status, Owner, Due string }
type eventView struct{ When, WhenISO, Kind, Text, Status string }
type outcomeView struct{ Status, Date, Summary, Assessor string }

// caseView is everything the case page shows.
type caseView struct {
	ID, Status, Phase, PhaseCode, Category, Model, Start, End string
	Patient, PatientRef, Gender, BirthDate, Age               string
	CareManager, Organization, Referral, ClosureReason        string
	Timeline                                                  timeline
	Team                                                      []member
	Plans                                                     []planView
	Risks                                                     []riskView
	Coverage                                                  []coverageView
	OpenTasks                                                 []taskView
	DoneTasks                                                 int
	Events                                                    []eventView
	Outcome                                                   *outcomeView
	Conditions                                                []string
	Closed                                                    bool
}

// buildCase assembles the case page from the case's $everything.
func buildCase(eoc map[string]any, all []map[string]any, now time.Time) caseView {
	byKey := map[string]map[string]any{}
	for _, r := range all {
		byKey[key(r)] = r
	}
	nm := namesOf(all)
	phase := mapping.Phase(eoc)
	v := caseView{ID: str(eoc, "id"), Status: str(eoc, "status"), PhaseCode: phase, Phase: mapping.PhaseDisplay(phase),
		Category: mapping.Category(eoc), PatientRef: ref(eoc, "patient"),
		Start: formatDate(str(obj(eoc, "period"), "start")), End: formatDate(str(obj(eoc, "period"), "end")),
		CareManager: nm.of(ref(eoc, "careManager")), Organization: nm.of(ref(eoc, "managingOrganization")),
		Timeline: buildTimeline(eoc)}
	v.Closed = mapping.IsTerminal(v.Status)
	if ms := mapping.Models(eoc); len(ms) > 0 {
		v.Model = ms[0]
	}
	if cr := mapping.ClosureReason(eoc); cr != nil {
		v.ClosureReason = conceptText(cr)
	}
	if p := byKey[v.PatientRef]; p != nil {
		v.Patient, v.Gender, v.BirthDate = humanName(p), str(p, "gender"), str(p, "birthDate")
		if bd, err := time.Parse("2006-01-02", v.BirthDate); err == nil {
			age := now.Year() - bd.Year()
			if now.YearDay() < bd.YearDay() {
				age--
			}
			v.Age = itoa(age)
		}
	} else {
		v.Patient = v.PatientRef
	}
	for _, rr := range objs(eoc, "referralRequest") {
		if sr := byKey[str(rr, "reference")]; sr != nil {
			v.Referral = conceptText(obj(sr, "code"))
		}
	}
	for _, t := range objs(eoc, "team") {
		if ct := byKey[str(t, "reference")]; ct != nil {
			for _, p := range objs(ct, "participant") {
				m := member{Name: nm.of(ref(p, "member"))}
				for _, r := range objs(p, "role") {
					m.Role = conceptText(r)
					break
				}
				v.Team = append(v.Team, m)
			}
		}
	}
	caseKey := key(eoc)
	for _, r := range all {
		if caseLink(r) != caseKey {
			continue
		}
		switch str(r, "resourceType") {
		case "CarePlan":
			v.Plans = append(v.Plans, buildPlan(r, byKey))
		case "RiskAssessment":
			for _, p := range objs(r, "prediction") {
				code := conceptCode(obj(p, "qualitativeRisk"), SystemRisk)
				level := conceptText(obj(p, "qualitativeRisk"))
				v.Risks = append(v.Risks, riskView{Domain: conceptText(obj(p, "outcome")), Level: level, LevelCode: code,
					Mitigation: str(r, "mitigation"), Date: formatDate(str(r, "occurrenceDateTime"))})
			}
		case "Coverage":
			var payors []string
			for _, p := range objs(r, "payor") {
				payors = append(payors, nm.of(str(p, "reference")))
			}
			v.Coverage = append(v.Coverage, coverageView{Payor: strings.Join(payors, ", "), Type: conceptText(obj(r, "type")),
				Period: period(obj(r, "period")), Status: str(r, "status"), Member: str(r, "subscriberId")})
		case "Task":
			st := str(r, "status")
			if taskOpen(st) {
				text := str(r, "description")
				if text == "" {
					text = conceptText(obj(r, "code"))
				}
				v.OpenTasks = append(v.OpenTasks, taskView{ID: str(r, "id"), Text: text, Status: st,
					Owner: nm.of(ref(r, "owner")), Due: period(obj(obj(r, "restriction"), "period"))})
			} else {
				v.DoneTasks++
			}
		case "Encounter":
			p := obj(r, "period")
			text := ""
			for _, t := range objs(r, "type") {
				text = conceptText(t)
				break
			}
			v.Events = append(v.Events, eventView{When: formatDateTime(str(p, "start")), WhenISO: str(p, "start"),
				Kind: "Encounter", Text: text, Status: str(r, "status")})
		case "Appointment":
			v.Events = append(v.Events, eventView{When: formatDateTime(str(r, "start")), WhenISO: str(r, "start"),
				Kind: "Appointment", Text: str(r, "description"), Status: str(r, "status")})
		case "ClinicalImpression":
			if conceptCode(obj(r, "code"), mapping.SystemDocument) == mapping.CodeOutcomeEvaluation {
				v.Outcome = &outcomeView{Status: str(r, "status"), Date: formatDate(str(r, "date")),
					Summary: str(r, "summary"), Assessor: nm.of(ref(r, "assessor"))}
			}
		case "Condition":
			v.Conditions = append(v.Conditions, conceptText(obj(r, "code")))
		}
	}
	slices.SortFunc(v.Risks, func(a, b riskView) int { return cmp.Compare(riskRank(b.LevelCode), riskRank(a.LevelCode)) })
	slices.SortFunc(v.Events, func(a, b eventView) int { return strings.Compare(b.WhenISO, a.WhenISO) })
	if len(v.Events) > 10 {
		v.Events = v.Events[:10]
	}
	return v
}

func buildPlan(cp map[string]any, byKey map[string]map[string]any) planView {
	pv := planView{Title: str(cp, "title"), Status: str(cp, "status"), Period: period(obj(cp, "period"))}
	if pv.Title == "" {
		pv.Title = "Care plan"
	}
	for _, g := range objs(cp, "goal") {
		if goal := byKey[str(g, "reference")]; goal != nil {
			gv := goalView{Text: conceptText(obj(goal, "description")), Status: str(goal, "lifecycleStatus")}
			gv.Achievement = conceptText(obj(goal, "achievementStatus"))
			pv.Goals = append(pv.Goals, gv)
		}
	}
	for _, a := range objs(cp, "activity") {
		av := activityView{}
		if r := ref(a, "reference"); r != "" {
			av.Kind = strings.SplitN(r, "/", 2)[0]
			if res := byKey[r]; res != nil {
				switch av.Kind {
				case "ServiceRequest":
					av.Text, av.Status = conceptText(obj(res, "code")), str(res, "status")
				case "Task":
					av.Text, av.Status = str(res, "description"), str(res, "status")
					if av.Text == "" {
						av.Text = conceptText(obj(res, "code"))
					}
				case "Appointment":
					av.Text, av.Status = str(res, "description"), str(res, "status")
				default:
					av.Text = r
				}
			} else {
				av.Text = r
			}
		} else if d := obj(a, "detail"); d != nil {
			av.Kind, av.Text, av.Status = "Activity", str(d, "description"), str(d, "status")
			if av.Text == "" {
				av.Text = conceptText(obj(d, "code"))
			}
		}
		pv.Activities = append(pv.Activities, av)
	}
	return pv
}

func taskOpen(status string) bool {
	switch status {
	case "completed", "cancelled", "failed", "rejected", "entered-in-error":
		return false
	}
	return true
}

func period(p map[string]any) string {
	s, e := formatDate(str(p, "start")), formatDate(str(p, "end"))
	switch {
	case s == "" && e == "":
		return ""
	case e == "":
		return "since " + s
	case s == "":
		return "until " + e
	}
	return s + " – " + e
}

// formatDate shows a FHIR date or dateTime as a date ("12 Mar 2025").
func formatDate(v string) string {
	if v == "" {
		return ""
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, v); err == nil {
			switch layout {
			case "2006-01":
				return t.Format("Jan 2006")
			case "2006":
				return v
			}
			return t.Format("2 Jan 2006")
		}
	}
	return v
}

// formatDateTime shows a FHIR dateTime with minutes, in UTC when it has a
// time ("12 Mar 2025 09:41 UTC").
func formatDateTime(v string) string {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return formatDate(v)
	}
	return t.UTC().Format("2 Jan 2006 15:04") + " UTC"
}

// formatEnd shows the end of a period, with its time only when it falls on
// the start's day.
func formatEnd(start, end string) string {
	s, err1 := time.Parse(time.RFC3339Nano, start)
	e, err2 := time.Parse(time.RFC3339Nano, end)
	if err1 == nil && err2 == nil && s.UTC().Format("2006-01-02") == e.UTC().Format("2006-01-02") {
		return e.UTC().Format("15:04") + " UTC"
	}
	return formatDateTime(end)
}

func duration(start, end string) string {
	s, err1 := time.Parse(time.RFC3339Nano, start)
	e, err2 := time.Parse(time.RFC3339Nano, end)
	if err1 != nil || err2 != nil || e.Before(s) {
		return ""
	}
	d := e.Sub(s)
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		return itoa(int(d/time.Hour)) + " h"
	}
	return itoa(int(d/(24*time.Hour))) + " days"
}

func itoa(i int) string { return strconv.Itoa(i) }
