package mapping

import "slices"

// Base is the canonical base of every project artefact.
const Base = "https://casefhir.org/fhir"

// Code systems.
const (
	SystemPhase         = Base + "/CodeSystem/case-phase"
	SystemCategory      = Base + "/CodeSystem/case-category"
	SystemModel         = Base + "/CodeSystem/case-management-model"
	SystemProgram       = Base + "/CodeSystem/case-program"
	SystemClosureReason = Base + "/CodeSystem/case-closure-reason"
	SystemDocument      = Base + "/CodeSystem/case-document"
	SystemRule          = Base + "/CodeSystem/case-rule"
	SystemEpisodeType   = "http://terminology.hl7.org/CodeSystem/episodeofcare-type"
	SystemSNOMED        = "http://snomed.info/sct"
)

// Extensions.
const (
	ExtPhase         = Base + "/StructureDefinition/case-phase"
	ExtPhaseHistory  = Base + "/StructureDefinition/case-phase-history"
	ExtClosureReason = Base + "/StructureDefinition/case-closure-reason"
	ExtStatusReason  = Base + "/StructureDefinition/case-status-reason"
	// ExtEpisodeOfCare links any resource but Encounter to its case.
	ExtEpisodeOfCare = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare"
)

// Codes with a fixed meaning.
const (
	// CodeCaseManagerRole is the SNOMED CT role of the case manager in the CareTeam.
	CodeCaseManagerRole = "768832004"
	// CodeOutcomeEvaluation is the case-document code of the outcome-evaluation ClinicalImpression.
	CodeOutcomeEvaluation = "case-outcome-evaluation"
)

// Phases (codes of SystemPhase), in their order.
const (
	PhaseScreening      = "screening"
	PhaseAssessment     = "assessment"
	PhaseRiskAssessment = "risk-assessment"
	PhasePlanning       = "planning"
	PhaseImplementation = "implementation"
	PhaseMonitoring     = "monitoring"
	PhaseEvaluation     = "evaluation"
	PhaseClosed         = "closed"
)

// EpisodeOfCare.status codes.
const (
	StatusPlanned        = "planned"
	StatusWaitlist       = "waitlist"
	StatusActive         = "active"
	StatusOnhold         = "onhold"
	StatusFinished       = "finished"
	StatusCancelled      = "cancelled"
	StatusEnteredInError = "entered-in-error"
)

// Category codes (SystemCategory).
const (
	CategoryAcute        = "acute"
	CategoryIntermediate = "intermediate"
	CategoryLongTerm     = "long-term"
)

// Model codes (SystemModel).
const (
	ModelBrokerage      = "brokerage"
	ModelClinical       = "clinical"
	ModelStrengthsBased = "strengths-based"
	ModelIntensive      = "intensive"
)

// Rule is a code of SystemRule: the rule an issue reports as broken.
type Rule string

// The case rules.
const (
	RuleTransition     Rule = "transition"
	RuleGAct           Rule = "G-ACT"
	RuleGHold          Rule = "G-HOLD"
	RuleGFin           Rule = "G-FIN"
	RuleGCan           Rule = "G-CAN"
	RulePhaseOrder     Rule = "phase-order"
	RulePhaseStatus    Rule = "phase-status"
	RuleSamePatient    Rule = "same-patient"
	RuleClosedCase     Rule = "closed-case"
	RuleCarePlanActive Rule = "careplan-active"
	RuleManaged        Rule = "managed"
	// RuleCaseLink: the case link must point at an existing EpisodeOfCare.
	RuleCaseLink Rule = "case-link"
)

var ruleDisplay = map[Rule]string{
	RuleTransition:     "Status transition",
	RuleGAct:           "Guard to active",
	RuleGHold:          "Guard to on hold",
	RuleGFin:           "Guard to finished",
	RuleGCan:           "Guard to cancelled",
	RulePhaseOrder:     "Phase order",
	RulePhaseStatus:    "Phase and status agreement",
	RuleSamePatient:    "Same patient",
	RuleClosedCase:     "Closed case",
	RuleCarePlanActive: "Care plan active",
	RuleManaged:        "Managed case",
	RuleCaseLink:       "Case link",
}

// Display returns the rule's display text.
func (r Rule) Display() string { return ruleDisplay[r] }

var phases = [...]string{
	PhaseScreening, PhaseAssessment, PhaseRiskAssessment, PhasePlanning,
	PhaseImplementation, PhaseMonitoring, PhaseEvaluation, PhaseClosed,
}

var phaseDisplay = map[string]string{
	PhaseScreening:      "Screening",
	PhaseAssessment:     "Assessment",
	PhaseRiskAssessment: "Risk assessment",
	PhasePlanning:       "Planning",
	PhaseImplementation: "Implementation",
	PhaseMonitoring:     "Monitoring",
	PhaseEvaluation:     "Evaluation",
	PhaseClosed:         "Closed",
}

// Phases returns the phase codes in order.
func Phases() []string { return slices.Clone(phases[:]) }

// IsPhase reports whether code is a phase code.
func IsPhase(code string) bool { return phaseIndex(code) >= 0 }

// PhaseDisplay returns the display of a phase code ("" if unknown).
func PhaseDisplay(code string) string { return phaseDisplay[code] }

func phaseIndex(code string) int { return slices.Index(phases[:], code) }

// Statuses returns the EpisodeOfCare.status codes.
func Statuses() []string {
	return []string{StatusPlanned, StatusWaitlist, StatusActive, StatusOnhold,
		StatusFinished, StatusCancelled, StatusEnteredInError}
}

// IsStatus reports whether s is an EpisodeOfCare.status code.
func IsStatus(s string) bool { return slices.Contains(Statuses(), s) }

// IsTerminal reports whether no status change but to entered-in-error may
// follow s (finished, cancelled), or none at all (entered-in-error).
func IsTerminal(status string) bool {
	return status == StatusFinished || status == StatusCancelled || status == StatusEnteredInError
}

// backFrom and backTo bound the re-planning loop.
var (
	backFrom = []string{PhasePlanning, PhaseImplementation, PhaseMonitoring, PhaseEvaluation}
	backTo   = []string{PhaseRiskAssessment, PhasePlanning, PhaseImplementation, PhaseMonitoring}
)

// PhaseMoveAllowed reports whether a managed case may move from one phase
// to another (rule phase-order): forward to any later phase; back only from
// planning, implementation, monitoring or evaluation to risk-assessment,
// planning, implementation or monitoring; never out of closed. Staying is
// always allowed.
func PhaseMoveAllowed(from, to string) bool {
	if from == to {
		return true
	}
	f, t := phaseIndex(from), phaseIndex(to)
	if f < 0 || t < 0 || from == PhaseClosed {
		return false
	}
	if t > f {
		return true
	}
	return slices.Contains(backFrom, from) && slices.Contains(backTo, to)
}

var phaseStatuses = map[string][]string{
	PhaseScreening:      {StatusPlanned, StatusWaitlist, StatusCancelled},
	PhaseAssessment:     {StatusPlanned, StatusWaitlist},
	PhaseRiskAssessment: {StatusPlanned, StatusActive, StatusOnhold},
	PhasePlanning:       {StatusPlanned, StatusActive},
	PhaseImplementation: {StatusActive},
	PhaseMonitoring:     {StatusActive, StatusOnhold},
	PhaseEvaluation:     {StatusActive, StatusOnhold},
	PhaseClosed:         {StatusFinished, StatusCancelled},
}

// PhaseStatuses returns the EpisodeOfCare statuses a phase allows (rule
// phase-status). entered-in-error is exempt from the rule.
func PhaseStatuses(phase string) []string { return slices.Clone(phaseStatuses[phase]) }

// PhaseStatusAgree reports whether phase and status may go together.
func PhaseStatusAgree(phase, status string) bool {
	return status == StatusEnteredInError || slices.Contains(phaseStatuses[phase], status)
}

// transitions maps from-status ("" for create) to to-status to the guard
// that must hold ("" for none). A missing pair is not allowed.
var transitions = map[string]map[string]Rule{
	"": {StatusPlanned: "", StatusWaitlist: "", StatusActive: RuleGAct},
	StatusPlanned: {StatusWaitlist: "", StatusActive: RuleGAct, StatusOnhold: "",
		StatusCancelled: RuleGCan, StatusEnteredInError: ""},
	StatusWaitlist: {StatusPlanned: "", StatusActive: RuleGAct, StatusOnhold: "",
		StatusCancelled: RuleGCan, StatusEnteredInError: ""},
	StatusActive: {StatusOnhold: RuleGHold, StatusFinished: RuleGFin, StatusCancelled: RuleGCan,
		StatusEnteredInError: ""},
	StatusOnhold: {StatusActive: RuleGAct, StatusFinished: RuleGFin, StatusCancelled: RuleGCan,
		StatusEnteredInError: ""},
	StatusFinished:  {StatusEnteredInError: ""},
	StatusCancelled: {StatusEnteredInError: ""},
}

// TransitionAllowed reports whether a managed case's status may change from one
// value to another, and which guard must then hold ("" for none). from ""
// means create. A move to the same status is not a transition and is
// reported as not allowed; callers treat "unchanged" before asking.
func TransitionAllowed(from, to string) (allowed bool, guard Rule) {
	g, ok := transitions[from][to]
	return ok, g
}

// allowedTargets lists the statuses reachable from a status, in table order.
func allowedTargets(from string) []string {
	var out []string
	for _, s := range Statuses() {
		if _, ok := transitions[from][s]; ok {
			out = append(out, s)
		}
	}
	return out
}
