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
			switch mapping.Str(r, "resourceType") {
			case "Patient", "Practitioner", "RelatedPerson":
				name = humanName(r)
			case "Organization", "CareTeam", "Location":
				name = mapping.Str(r, "name")
			}
			if name != "" {
				n[mapping.Key(r)] = name
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
		if mapping.Str(r, "resourceType") != "RiskAssessment" {
			continue
		}
		c := caseLink(r)
		for _, p := range mapping.Objs(r, "prediction") {
			code := conceptCode(mapping.Obj(p, "qualitativeRisk"), SystemRisk)
			if riskRank(code) > riskRank(highest[c]) {
				highest[c] = code
			}
		}
	}
	rows := make([]caseRow, 0, len(cases))
	for _, c := range cases {
		if mapping.Str(c, "resourceType") != "EpisodeOfCare" {
			continue
		}
		phase := mapping.Phase(c)
		row := caseRow{ID: mapping.Str(c, "id"), Patient: nm.of(ref(c, "patient")), PhaseCode: phase,
			Phase: mapping.PhaseDisplay(phase), Status: mapping.Str(c, "status"),
			Category: mapping.Category(c), CareManager: nm.of(ref(c, "careManager")),
			RiskCode: highest[mapping.Key(c)]}
		if ms := mapping.Models(c); len(ms) > 0 {
			row.Model = ms[0]
		}
		if row.CareManager == "" {
			row.CareManager = "—"
		}
		row.Risk = row.RiskCode
		lu := mapping.Str(mapping.Obj(c, "meta"), "lastUpdated")
		row.ChangedISO, row.Changed = lu, formatDateTime(lu)
		rows = append(rows, row)
	}
	return rows
}

// caseLink returns the case a resource is linked to ("EpisodeOfCare/id").
func caseLink(r map[string]any) string {
	for _, e := range mapping.Objs(r, "extension") {
		if mapping.Str(e, "url") == mapping.ExtEpisodeOfCare {
			return ref(e, "valueReference")
		}
	}
	if eps := mapping.Objs(r, "episodeOfCare"); len(eps) > 0 {
		return mapping.Str(eps[0], "reference")
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
	sh := mapping.Objs(eoc, "statusHistory")
	for i, h := range sh {
		p := mapping.Obj(h, "period")
		e := statusEntry{Status: mapping.Str(h, "status"), Start: formatDateTime(mapping.Str(p, "start")), End: formatEnd(mapping.Str(p, "start"), mapping.Str(p, "end")),
			Current: i == len(sh)-1 && mapping.Str(p, "end") == ""}
		e.Hold = e.Status == mapping.StatusOnhold
		for _, x := range mapping.Objs(h, "extension") {
			if mapping.Str(x, "url") == mapping.ExtStatusReason {
				e.Reason = conceptText(mapping.Obj(x, "valueCodeableConcept"))
			}
		}
		tl.Status = append(tl.Status, e)
	}
	if cr := mapping.ClosureReason(eoc); cr != nil && len(tl.Status) > 0 {
		last := &tl.Status[len(tl.Status)-1]
		if last.Reason == "" {
			last.Reason = closureText(cr)
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
		byKey[mapping.Key(r)] = r
	}
	nm := namesOf(all)
	phase := mapping.Phase(eoc)
	v := caseView{ID: mapping.Str(eoc, "id"), Status: mapping.Str(eoc, "status"), PhaseCode: phase, Phase: mapping.PhaseDisplay(phase),
		Category: mapping.Category(eoc), PatientRef: ref(eoc, "patient"),
		Start: formatDate(mapping.Str(mapping.Obj(eoc, "period"), "start")), End: formatDate(mapping.Str(mapping.Obj(eoc, "period"), "end")),
		CareManager: nm.of(ref(eoc, "careManager")), Organization: nm.of(ref(eoc, "managingOrganization")),
		Timeline: buildTimeline(eoc)}
	v.Closed = mapping.IsTerminal(v.Status)
	if ms := mapping.Models(eoc); len(ms) > 0 {
		v.Model = ms[0]
	}
	if cr := mapping.ClosureReason(eoc); cr != nil {
		v.ClosureReason = closureText(cr)
	}
	if p := byKey[v.PatientRef]; p != nil {
		v.Patient, v.Gender, v.BirthDate = humanName(p), mapping.Str(p, "gender"), mapping.Str(p, "birthDate")
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
	for _, rr := range mapping.Objs(eoc, "referralRequest") {
		if sr := byKey[mapping.Str(rr, "reference")]; sr != nil {
			v.Referral = conceptText(mapping.Obj(sr, "code"))
		}
	}
	for _, t := range mapping.Objs(eoc, "team") {
		if ct := byKey[mapping.Str(t, "reference")]; ct != nil {
			for _, p := range mapping.Objs(ct, "participant") {
				m := member{Name: nm.of(ref(p, "member"))}
				for _, r := range mapping.Objs(p, "role") {
					m.Role = conceptText(r)
					break
				}
				v.Team = append(v.Team, m)
			}
		}
	}
	caseKey := mapping.Key(eoc)
	for _, r := range all {
		if caseLink(r) != caseKey {
			continue
		}
		switch mapping.Str(r, "resourceType") {
		case "CarePlan":
			v.Plans = append(v.Plans, buildPlan(r, byKey))
		case "RiskAssessment":
			for _, p := range mapping.Objs(r, "prediction") {
				code := conceptCode(mapping.Obj(p, "qualitativeRisk"), SystemRisk)
				level := conceptText(mapping.Obj(p, "qualitativeRisk"))
				v.Risks = append(v.Risks, riskView{Domain: conceptText(mapping.Obj(p, "outcome")), Level: level, LevelCode: code,
					Mitigation: mapping.Str(r, "mitigation"), Date: formatDate(mapping.Str(r, "occurrenceDateTime"))})
			}
		case "Coverage":
			var payors []string
			for _, p := range mapping.Objs(r, "payor") {
				payors = append(payors, nm.of(mapping.Str(p, "reference")))
			}
			v.Coverage = append(v.Coverage, coverageView{Payor: strings.Join(payors, ", "), Type: conceptText(mapping.Obj(r, "type")),
				Period: period(mapping.Obj(r, "period")), Status: mapping.Str(r, "status"), Member: mapping.Str(r, "subscriberId")})
		case "Task":
			st := mapping.Str(r, "status")
			if taskOpen(st) {
				text := mapping.Str(r, "description")
				if text == "" {
					text = conceptText(mapping.Obj(r, "code"))
				}
				v.OpenTasks = append(v.OpenTasks, taskView{ID: mapping.Str(r, "id"), Text: text, Status: st,
					Owner: nm.of(ref(r, "owner")), Due: period(mapping.Obj(mapping.Obj(r, "restriction"), "period"))})
			} else {
				v.DoneTasks++
			}
		case "Encounter":
			p := mapping.Obj(r, "period")
			text := ""
			for _, t := range mapping.Objs(r, "type") {
				text = conceptText(t)
				break
			}
			v.Events = append(v.Events, eventView{When: formatDateTime(mapping.Str(p, "start")), WhenISO: mapping.Str(p, "start"),
				Kind: "Encounter", Text: text, Status: mapping.Str(r, "status")})
		case "Appointment":
			v.Events = append(v.Events, eventView{When: formatDateTime(mapping.Str(r, "start")), WhenISO: mapping.Str(r, "start"),
				Kind: "Appointment", Text: mapping.Str(r, "description"), Status: mapping.Str(r, "status")})
		case "ClinicalImpression":
			if conceptCode(mapping.Obj(r, "code"), mapping.SystemDocument) == mapping.CodeOutcomeEvaluation {
				v.Outcome = &outcomeView{Status: mapping.Str(r, "status"), Date: formatDate(mapping.Str(r, "date")),
					Summary: mapping.Str(r, "summary"), Assessor: nm.of(ref(r, "assessor"))}
			}
		case "Condition":
			v.Conditions = append(v.Conditions, conceptText(mapping.Obj(r, "code")))
		}
	}
	slices.SortFunc(v.Risks, func(a, b riskView) int { return cmp.Compare(riskRank(b.LevelCode), riskRank(a.LevelCode)) })
	slices.SortFunc(v.Events, func(a, b eventView) int { return strings.Compare(b.WhenISO, a.WhenISO) })
	if len(v.Events) > 10 {
		v.Events = v.Events[:10]
	}
	return v
}

// closureText is the readable closure reason: the text, else the display
// of its case-closure-reason code.
func closureText(cr map[string]any) string {
	if t := mapping.Str(cr, "text"); t != "" {
		return t
	}
	code := conceptCode(cr, mapping.SystemClosureReason)
	for _, o := range closureReasons {
		if o.Code == code {
			return o.Display
		}
	}
	return conceptText(cr)
}

func buildPlan(cp map[string]any, byKey map[string]map[string]any) planView {
	pv := planView{Title: mapping.Str(cp, "title"), Status: mapping.Str(cp, "status"), Period: period(mapping.Obj(cp, "period"))}
	if pv.Title == "" {
		pv.Title = "Care plan"
	}
	for _, g := range mapping.Objs(cp, "goal") {
		if goal := byKey[mapping.Str(g, "reference")]; goal != nil {
			gv := goalView{Text: conceptText(mapping.Obj(goal, "description")), Status: mapping.Str(goal, "lifecycleStatus")}
			gv.Achievement = conceptText(mapping.Obj(goal, "achievementStatus"))
			pv.Goals = append(pv.Goals, gv)
		}
	}
	for _, a := range mapping.Objs(cp, "activity") {
		av := activityView{}
		if r := ref(a, "reference"); r != "" {
			av.Kind = strings.SplitN(r, "/", 2)[0]
			if res := byKey[r]; res != nil {
				switch av.Kind {
				case "ServiceRequest":
					av.Text, av.Status = conceptText(mapping.Obj(res, "code")), mapping.Str(res, "status")
				case "Task":
					av.Text, av.Status = mapping.Str(res, "description"), mapping.Str(res, "status")
					if av.Text == "" {
						av.Text = conceptText(mapping.Obj(res, "code"))
					}
				case "Appointment":
					av.Text, av.Status = mapping.Str(res, "description"), mapping.Str(res, "status")
				default:
					av.Text = r
				}
			} else {
				av.Text = r
			}
		} else if d := mapping.Obj(a, "detail"); d != nil {
			av.Kind, av.Text, av.Status = "Activity", mapping.Str(d, "description"), mapping.Str(d, "status")
			if av.Text == "" {
				av.Text = conceptText(mapping.Obj(d, "code"))
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
	s, e := formatDate(mapping.Str(p, "start")), formatDate(mapping.Str(p, "end"))
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
