package mapping

import (
	"context"
	"time"
)

// TransitionParams are the inputs of $transition.
type TransitionParams struct {
	// Status is the new EpisodeOfCare.status ("" keeps it).
	Status string
	// Phase is the new phase code ("" keeps it, except that a move to
	// finished or cancelled closes it).
	Phase string
	// Reason is a CodeableConcept: the closure reason for finished and
	// cancelled, otherwise the reason stored on the new statusHistory entry.
	Reason map[string]any
	// Effective is when the change takes effect (zero: now).
	Effective time.Time
	// Cascade revokes open CarePlans and cancels open Tasks of the case
	// when it is closed or paused, instead of refusing.
	Cascade bool
	// DryRun checks and answers without writing.
	DryRun bool
}

// TransitionResult is what $transition writes, atomically, unless DryRun.
type TransitionResult struct {
	// Episode is the updated EpisodeOfCare.
	Episode map[string]any
	// CarePlans are the cascaded CarePlans, now revoked.
	CarePlans []map[string]any
	// Tasks are the cascaded Tasks, now cancelled.
	Tasks []map[string]any
	// Changed is false when the call changed nothing (same status and
	// phase); the server then writes nothing.
	Changed bool
	// DryRun echoes the parameter: the server must not write.
	DryRun bool
}

const opTransition = "mapping.Transition"

// Transition implements the domain part of $transition on the stored
// EpisodeOfCare eoc (not modified): it applies the status and/or phase
// change with the same rules as [CheckEpisodeWrite] (plus cascade), and
// returns the EpisodeOfCare and cascaded resources to write. eoc must be a
// managed case, or become one by the phase given. Unmet rules are one 422
// *outcome.Error; malformed parameters are 400.
func Transition(ctx context.Context, eoc map[string]any, p TransitionParams, r Reader, now time.Time) (*TransitionResult, error) {
	if p.Status == "" && p.Phase == "" {
		return nil, invalid(opTransition, "give a status and/or a phase")
	}
	if p.Status != "" && !IsStatus(p.Status) {
		return nil, invalid(opTransition, "status must be an EpisodeOfCare status code: "+join(Statuses()), "Parameters.parameter('status')")
	}
	if p.Phase != "" && !IsPhase(p.Phase) {
		return nil, invalid(opTransition, "phase must be a code from "+SystemPhase, "Parameters.parameter('phase')")
	}
	if !IsManaged(eoc) && p.Phase == "" {
		v := &violations{}
		v.add(RuleManaged, "EpisodeOfCare.extension('"+ExtPhase+"')",
			"the EpisodeOfCare is not a managed case: give a phase to make it one")
		return nil, v.err(opTransition)
	}
	at := now
	if !p.Effective.IsZero() {
		at = p.Effective
	}
	next := Clone(eoc)
	status := Status(eoc)
	statusChanged := p.Status != "" && p.Status != status
	if statusChanged {
		next["status"] = p.Status
		status = p.Status
	}
	if p.Phase != "" {
		setExtensions(next, ExtPhase, map[string]any{"url": ExtPhase, "valueCoding": phaseCoding(p.Phase)})
	}
	c := &change{prev: eoc, next: next, now: at, phaseGiven: p.Phase != "", cascade: p.Cascade}
	if p.Reason != nil {
		if !statusChanged {
			return nil, invalid(opTransition, "a reason goes with a status change", "Parameters.parameter('reason')")
		}
		if status == StatusFinished || status == StatusCancelled {
			setExtensions(next, ExtClosureReason, map[string]any{"url": ExtClosureReason, "valueCodeableConcept": Clone(p.Reason)})
		} else {
			c.statusReason = p.Reason
		}
	}
	if !statusChanged && IsManaged(eoc) && (p.Phase == "" || p.Phase == Phase(eoc)) {
		return &TransitionResult{Episode: Clone(eoc), DryRun: p.DryRun}, nil
	}
	if err := c.evaluate(ctx, r); err != nil {
		return nil, err
	}
	res := &TransitionResult{Episode: c.next, Changed: true, DryRun: p.DryRun}
	at2 := formatTime(at)
	for _, cp := range c.carePlans {
		cp = Clone(cp)
		cp["status"] = "revoked"
		res.CarePlans = append(res.CarePlans, cp)
	}
	for _, t := range c.tasks {
		t = Clone(t)
		t["status"] = "cancelled"
		t["lastModified"] = at2
		if !present(t, "statusReason") {
			t["statusReason"] = map[string]any{"text": "The case was " + caseVerb(status) + "."}
		}
		res.Tasks = append(res.Tasks, t)
	}
	return res, nil
}

func caseVerb(status string) string {
	switch status {
	case StatusOnhold:
		return "put on hold"
	case StatusFinished:
		return "finished"
	case StatusCancelled:
		return "cancelled"
	}
	return status
}
