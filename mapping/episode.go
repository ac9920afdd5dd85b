package mapping

import (
	"context"
	"slices"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// Reader gives the rules what they need to know about stored resources.
// The server implements it over its store (inside a transaction it must
// also see the transaction's earlier writes).
type Reader interface {
	// Episode returns the current EpisodeOfCare with the given id. A missing
	// or deleted one is (nil, nil) or an *outcome.Error with code not-found
	// or deleted.
	Episode(ctx context.Context, id string) (map[string]any, error)
	// Linked returns the current resources of type typ linked to the
	// EpisodeOfCare with the given id (by the workflow-episodeOfCare
	// extension, or Encounter.episodeOfCare).
	Linked(ctx context.Context, episodeID, typ string) ([]map[string]any, error)
}

// IsManaged reports whether an EpisodeOfCare is a managed case: it carries
// the case-phase extension.
func IsManaged(eoc map[string]any) bool {
	return eoc != nil && extension(eoc, ExtPhase) != nil
}

// Phase returns the case phase code of a managed case ("" when unmanaged or
// when the extension has no valueCoding).
func Phase(eoc map[string]any) string {
	return str(obj(extension(eoc, ExtPhase), "valueCoding"), "code")
}

// Status returns EpisodeOfCare.status.
func Status(eoc map[string]any) string { return str(eoc, "status") }

// Patient returns EpisodeOfCare.patient.reference.
func Patient(eoc map[string]any) string { return refString(eoc["patient"]) }

// typeCodes returns the codes of EpisodeOfCare.type codings from system.
func typeCodes(eoc map[string]any, system string) []string {
	var out []string
	for _, cc := range objs(eoc, "type") {
		for _, c := range codings(cc) {
			if str(c, "system") == system {
				out = append(out, str(c, "code"))
			}
		}
	}
	return out
}

// Categories returns the case-category codes in EpisodeOfCare.type.
func Categories(eoc map[string]any) []string { return typeCodes(eoc, SystemCategory) }

// Category returns the case category when there is exactly one, else "".
func Category(eoc map[string]any) string {
	if c := Categories(eoc); len(c) == 1 {
		return c[0]
	}
	return ""
}

// Models returns the case-management-model codes in EpisodeOfCare.type.
func Models(eoc map[string]any) []string { return typeCodes(eoc, SystemModel) }

// Programs returns the programme codes in EpisodeOfCare.type (case-program
// and the THO episodeofcare-type codes).
func Programs(eoc map[string]any) []string {
	return append(typeCodes(eoc, SystemProgram), typeCodes(eoc, SystemEpisodeType)...)
}

// ClosureReason returns the case-closure-reason CodeableConcept, or nil.
func ClosureReason(eoc map[string]any) map[string]any {
	return obj(extension(eoc, ExtClosureReason), "valueCodeableConcept")
}

// PhaseHistory is one entry of the case-phase-history extension.
type PhaseHistory struct {
	Phase      string
	Start, End string // FHIR dateTimes; End "" while open
}

// PhaseHistoryOf returns the phase history of a case, oldest first.
func PhaseHistoryOf(eoc map[string]any) []PhaseHistory {
	var out []PhaseHistory
	for _, e := range extensions(eoc, ExtPhaseHistory) {
		var h PhaseHistory
		for _, sub := range objs(e, "extension") {
			switch str(sub, "url") {
			case "phase":
				h.Phase = str(obj(sub, "valueCoding"), "code")
			case "period":
				p := obj(sub, "valuePeriod")
				h.Start, h.End = str(p, "start"), str(p, "end")
			}
		}
		out = append(out, h)
	}
	return out
}

// CheckEpisodeWrite checks a create (prev nil) or update of an
// EpisodeOfCare against the case rules and returns the EpisodeOfCare to
// store. An EpisodeOfCare that is not and was not a managed case is
// returned as given. For a managed case the result carries the
// server-maintained statusHistory and case-phase-history (client values are
// replaced), the phase set to closed on a move to finished or cancelled that
// keeps the phase, and period.end set on a move to finished. next is not
// modified. now is the time of the change.
//
// Every broken rule is reported, one issue each, in one 422 *outcome.Error.
// Malformed input (a phase extension without a known phase code) is a 400.
func CheckEpisodeWrite(ctx context.Context, prev, next map[string]any, r Reader, now time.Time) (map[string]any, error) {
	if !IsManaged(prev) && !IsManaged(next) {
		return next, nil
	}
	if prev != nil && !IsManaged(prev) {
		// Becoming managed is the creation of a managed case: the creation
		// rules apply (allowed statuses, G-ACT, phase/status agreement) and
		// the server-kept histories start here.
		prev = nil
	}
	c := &change{prev: prev, next: Clone(next), now: now, phaseGiven: prev == nil || Phase(next) != Phase(prev)}
	// A reason for a new status may come on the client's statusHistory
	// entry for that status; it is kept on the server's entry.
	if hs := objs(next, "statusHistory"); len(hs) > 0 {
		last := hs[len(hs)-1]
		if str(last, "status") == Status(next) {
			if e := extension(last, ExtStatusReason); e != nil {
				c.statusReason = obj(e, "valueCodeableConcept")
			}
		}
	}
	if err := c.evaluate(ctx, r); err != nil {
		return nil, err
	}
	return c.next, nil
}

// change is one write of a managed case under evaluation.
type change struct {
	prev, next map[string]any // next is owned and modified
	now        time.Time
	// phaseGiven: the caller chose the phase (a $transition phase, or a
	// write changing the phase); when false, a move to finished or
	// cancelled closes the phase.
	phaseGiven bool
	// statusReason is the reason for the new status, stored on its
	// statusHistory entry (not for finished and cancelled).
	statusReason map[string]any
	cascade      bool
	// set by evaluate when cascade applies
	carePlans, tasks []map[string]any
}

const opEpisode = "mapping.CheckEpisodeWrite"

func (c *change) evaluate(ctx context.Context, r Reader) error {
	prev, next := c.prev, c.next
	v := &violations{}

	prevManaged, nextManaged := IsManaged(prev), IsManaged(next)
	if nextManaged && !IsPhase(Phase(next)) {
		return invalid(opEpisode, "the case-phase extension needs a valueCoding with a code from "+SystemPhase,
			"EpisodeOfCare.extension('"+ExtPhase+"')")
	}
	if prevManaged && !nextManaged {
		v.add(RuleManaged, "EpisodeOfCare.extension('"+ExtPhase+"')",
			"a managed case keeps its case-phase extension: send the current phase with the update")
	}

	from, to := Status(prev), Status(next)
	statusChanged := prev == nil || from != to
	if statusChanged {
		if ok, guard := TransitionAllowed(from, to); !ok {
			v.add(RuleTransition, "EpisodeOfCare.status", transitionDetail(from, to))
		} else if guard != "" || to == StatusOnhold {
			if err := c.guard(ctx, guard, v, r); err != nil {
				return err
			}
		}
	}

	prevPhase, nextPhase := Phase(prev), Phase(next)
	if statusChanged && (to == StatusFinished || to == StatusCancelled) && !c.phaseGiven && nextManaged {
		nextPhase = PhaseClosed
		setExtensions(next, ExtPhase, map[string]any{"url": ExtPhase, "valueCoding": phaseCoding(PhaseClosed)})
	}
	if prevManaged && nextManaged && nextPhase != prevPhase {
		switch {
		case from == StatusEnteredInError || to == StatusEnteredInError:
			v.add(RulePhaseOrder, "EpisodeOfCare.extension('"+ExtPhase+"')",
				"an entered-in-error case keeps its phase: send the current phase ("+prevPhase+")")
		case !PhaseMoveAllowed(prevPhase, nextPhase):
			v.add(RulePhaseOrder, "EpisodeOfCare.extension('"+ExtPhase+"')", phaseOrderDetail(prevPhase, nextPhase))
		}
	}
	if nextManaged && !PhaseStatusAgree(nextPhase, to) {
		v.add(RulePhaseStatus, "EpisodeOfCare.status",
			"phase "+nextPhase+" allows status "+join(PhaseStatuses(nextPhase))+", not "+to+
				": change the phase or the status so that they agree")
	}
	if prevManaged && refLocal(Patient(prev)) != refLocal(Patient(next)) {
		v.add(RuleSamePatient, "EpisodeOfCare.patient",
			"the patient of a managed case cannot change: open a new case for the other patient")
	}
	if !v.empty() {
		return v.err(opEpisode)
	}
	if !nextManaged {
		return nil
	}
	phaseChanged := prev == nil || !prevManaged || nextPhase != prevPhase
	if statusChanged || phaseChanged {
		if err := c.checkEffective(); err != nil {
			return err
		}
	}
	c.maintainStatusHistory(statusChanged)
	c.maintainPhaseHistory(prevManaged, phaseChanged, nextPhase)
	if statusChanged && to == StatusFinished {
		p := obj(next, "period")
		if p == nil {
			p = map[string]any{}
			next["period"] = p
		}
		if !present(p, "end") {
			p["end"] = formatTime(c.now)
		}
	}
	return nil
}

// checkEffective refuses a change dated before the start of the current
// status or phase.
func (c *change) checkEffective() error {
	var starts []string
	if hs := objs(c.prev, "statusHistory"); len(hs) > 0 && IsManaged(c.prev) {
		starts = append(starts, str(obj(hs[len(hs)-1], "period"), "start"))
	}
	if ph := PhaseHistoryOf(c.prev); len(ph) > 0 {
		starts = append(starts, ph[len(ph)-1].Start)
	}
	for _, s := range starts {
		if t, ok := parseDateTime(s); ok && c.now.Before(t) {
			return invalid(opEpisode, "the change is dated before the start of the current status or phase",
				"EpisodeOfCare.statusHistory.period.start")
		}
	}
	return nil
}

// maintainStatusHistory rebuilds next.statusHistory from the stored one:
// client-sent history is ignored; a status change closes the open entry
// and appends a new open one.
func (c *change) maintainStatusHistory(statusChanged bool) {
	var hist []map[string]any
	if c.prev != nil {
		for _, h := range objs(c.prev, "statusHistory") {
			hist = append(hist, Clone(h))
		}
	}
	at := formatTime(c.now)
	if statusChanged || len(hist) == 0 {
		if n := len(hist); n > 0 {
			p := obj(hist[n-1], "period")
			if p == nil {
				p = map[string]any{}
				hist[n-1]["period"] = p
			}
			if !present(p, "end") {
				p["end"] = at
			}
		}
		e := map[string]any{"status": Status(c.next), "period": map[string]any{"start": at}}
		if c.statusReason != nil && statusChanged {
			e["extension"] = []any{map[string]any{"url": ExtStatusReason, "valueCodeableConcept": Clone(c.statusReason)}}
		}
		hist = append(hist, e)
	}
	c.next["statusHistory"] = toAny(hist)
}

// maintainPhaseHistory rebuilds the case-phase-history extensions the same way.
func (c *change) maintainPhaseHistory(prevManaged, phaseChanged bool, phase string) {
	var hist []map[string]any
	if prevManaged {
		for _, h := range extensions(c.prev, ExtPhaseHistory) {
			hist = append(hist, Clone(h))
		}
	}
	at := formatTime(c.now)
	if phaseChanged || len(hist) == 0 {
		if n := len(hist); n > 0 {
			for _, sub := range objs(hist[n-1], "extension") {
				if str(sub, "url") != "period" {
					continue
				}
				p := obj(sub, "valuePeriod")
				if p == nil {
					p = map[string]any{}
					sub["valuePeriod"] = p
				}
				if !present(p, "end") {
					p["end"] = at
				}
			}
		}
		hist = append(hist, phaseHistoryEntry(phase, at))
	}
	setExtensions(c.next, ExtPhaseHistory, hist...)
}

func phaseHistoryEntry(phase, start string) map[string]any {
	return map[string]any{
		"url": ExtPhaseHistory,
		"extension": []any{
			map[string]any{"url": "phase", "valueCoding": phaseCoding(phase)},
			map[string]any{"url": "period", "valuePeriod": map[string]any{"start": start}},
		},
	}
}

// guard evaluates the guard of a status change (and the open-work check of
// a move to onhold, finished or cancelled), adding violations to v.
func (c *change) guard(ctx context.Context, guard Rule, v *violations, r Reader) error {
	next := c.next
	to := Status(next)
	switch guard {
	case RuleGAct:
		var missing []string
		if !present(next, "careManager") {
			missing = append(missing, "careManager")
		}
		if n := len(Categories(next)); n != 1 {
			missing = append(missing, "exactly one type coding from "+SystemCategory)
		}
		if !present(next, "managingOrganization") {
			missing = append(missing, "managingOrganization")
		}
		if !present(obj(next, "period"), "start") {
			missing = append(missing, "period.start")
		}
		if len(objs(next, "team")) == 0 {
			missing = append(missing, "a CareTeam in team")
		}
		if len(missing) > 0 {
			v.add(RuleGAct, "EpisodeOfCare", "to become active the case needs "+join(missing))
		}
		return nil
	case RuleGHold:
		if c.statusReason == nil {
			v.add(RuleGHold, "EpisodeOfCare.statusHistory",
				"give a reason to put the case on hold ($transition reason, or the "+ExtStatusReason+
					" extension on the new statusHistory entry)")
		}
	case RuleGFin, RuleGCan:
		if ClosureReason(next) == nil {
			v.add(guard, "EpisodeOfCare.extension('"+ExtClosureReason+"')",
				"give a closure reason ($transition reason, or the "+ExtClosureReason+" extension)")
		}
	}
	if guard == "" && to != StatusOnhold {
		return nil
	}
	if guard == "" {
		guard = RuleGHold
	}
	id := ID(next)
	linked := func(typ string) ([]map[string]any, error) {
		if id == "" || r == nil {
			return nil, nil
		}
		return r.Linked(ctx, id, typ)
	}
	if guard == RuleGFin {
		cis, err := linked("ClinicalImpression")
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(cis, isCompletedOutcomeEvaluation) {
			v.add(RuleGFin, "EpisodeOfCare",
				"link a completed ClinicalImpression with code "+SystemDocument+"#"+CodeOutcomeEvaluation+
					" to the case before finishing it")
		}
	}
	plans, err := linked("CarePlan")
	if err != nil {
		return err
	}
	tasks, err := linked("Task")
	if err != nil {
		return err
	}
	var open []string
	c.carePlans, c.tasks = nil, nil
	for _, p := range sortedByKey(plans) {
		if IsOpenCarePlan(p) {
			open = append(open, Key(p))
			c.carePlans = append(c.carePlans, p)
		}
	}
	for _, t := range sortedByKey(tasks) {
		if IsOpenTask(t) {
			open = append(open, Key(t))
			c.tasks = append(c.tasks, t)
		}
	}
	if len(open) > 0 && !c.cascade {
		what := "closing"
		if to == StatusOnhold {
			what = "pausing"
		}
		v.add(guard, "EpisodeOfCare",
			what+" the case needs its CarePlans and Tasks completed, revoked or cancelled (or $transition with cascade=true); still open: "+join(open))
	}
	if !c.cascade {
		c.carePlans, c.tasks = nil, nil
	}
	return nil
}

func sortedByKey(rs []map[string]any) []map[string]any {
	out := slices.Clone(rs)
	slices.SortStableFunc(out, func(a, b map[string]any) int {
		ka, kb := Key(a), Key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
	return out
}

// IsOpenCarePlan reports whether a CarePlan is still draft, active or on-hold.
func IsOpenCarePlan(cp map[string]any) bool {
	switch Status(cp) {
	case "draft", "active", "on-hold":
		return true
	}
	return false
}

// IsOpenTask reports whether a Task is not yet in a final state (completed,
// cancelled, rejected, failed, entered-in-error).
func IsOpenTask(t map[string]any) bool {
	switch Status(t) {
	case "completed", "cancelled", "rejected", "failed", "entered-in-error":
		return false
	}
	return true
}

func isCompletedOutcomeEvaluation(ci map[string]any) bool {
	return Status(ci) == "completed" && hasCoding(obj(ci, "code"), SystemDocument, CodeOutcomeEvaluation)
}

func transitionDetail(from, to string) string {
	if from == "" {
		return "a managed case is created with status " + join(allowedTargets("")) + ", not " + to
	}
	targets := allowedTargets(from)
	if len(targets) == 0 {
		return "status " + from + " is final: the case cannot change to " + to
	}
	d := "status may not change from " + from + " to " + to + "; from " + from + " it may change to " + join(targets)
	if from == StatusFinished || from == StatusCancelled {
		d += " only: a reopened case is a new EpisodeOfCare"
	}
	return d
}

func phaseOrderDetail(from, to string) string {
	if from == PhaseClosed {
		return "a closed case keeps phase closed: open a new case instead"
	}
	return "phase may not move back from " + from + " to " + to +
		": move forward, or back only from planning, implementation, monitoring or evaluation to risk-assessment, planning, implementation or monitoring"
}

// notFound reports whether err means "no such resource".
func notFound(err error) bool {
	return outcome.Is(err, outcome.NotFound) || outcome.Is(err, outcome.Deleted)
}
