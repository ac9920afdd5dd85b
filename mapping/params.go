package mapping

import (
	"slices"
	"time"
)

const opParams = "mapping.Parameters"

// ParamEntries returns the Parameters.parameter entries named name.
func ParamEntries(params map[string]any, name string) []map[string]any {
	var out []map[string]any
	for _, p := range objs(params, "parameter") {
		if str(p, "name") == name {
			out = append(out, p)
		}
	}
	return out
}

// CheckParameters checks that params is a Parameters resource whose
// parameters all have a name from allowed, each at most once. Failures are
// 400 invalid.
func CheckParameters(params map[string]any, allowed ...string) error {
	if ResourceType(params) != "Parameters" {
		return invalid(opParams, "the operation's body must be a Parameters resource")
	}
	seen := map[string]bool{}
	for _, p := range objs(params, "parameter") {
		n := str(p, "name")
		if !slices.Contains(allowed, n) {
			return invalid(opParams, "unknown parameter "+quoteName(n)+"; allowed: "+join(allowed))
		}
		if seen[n] {
			return invalid(opParams, "parameter "+n+" is given more than once")
		}
		seen[n] = true
	}
	return nil
}

// quoteName keeps a client-sent parameter name short and printable in a
// PHI-free detail.
func quoteName(n string) string {
	if len(n) > 40 {
		n = n[:40]
	}
	for _, r := range n {
		if r < 0x20 || r > 0x7e {
			return "(unprintable name)"
		}
	}
	return `"` + n + `"`
}

// paramValue returns the value[x] of the single parameter name with the
// given suffix (e.g. "Reference"), or nil when the parameter is absent.
func paramValue(params map[string]any, name, typ string) (any, error) {
	ps := ParamEntries(params, name)
	switch len(ps) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, invalid(opParams, "parameter "+name+" is given more than once")
	}
	v, ok := ps[0]["value"+typ]
	if !ok {
		return nil, invalid(opParams, "parameter "+name+" needs value"+typ, "Parameters.parameter('"+name+"')")
	}
	return v, nil
}

// ParamReference returns valueReference.reference of parameter name ("" if absent).
func ParamReference(params map[string]any, name string) (string, error) {
	v, err := paramValue(params, name, "Reference")
	if err != nil || v == nil {
		return "", err
	}
	s := refString(v)
	if s == "" {
		return "", invalid(opParams, "parameter "+name+" needs valueReference.reference", "Parameters.parameter('"+name+"')")
	}
	return s, nil
}

func paramObject(params map[string]any, name, typ string) (map[string]any, error) {
	v, err := paramValue(params, name, typ)
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, invalid(opParams, "parameter "+name+" needs a value"+typ+" object", "Parameters.parameter('"+name+"')")
	}
	return m, nil
}

// ParamCoding returns valueCoding of parameter name (nil if absent).
func ParamCoding(params map[string]any, name string) (map[string]any, error) {
	return paramObject(params, name, "Coding")
}

// ParamCodeableConcept returns valueCodeableConcept of parameter name (nil if absent).
func ParamCodeableConcept(params map[string]any, name string) (map[string]any, error) {
	return paramObject(params, name, "CodeableConcept")
}

// ParamCode returns valueCode of parameter name ("" if absent).
func ParamCode(params map[string]any, name string) (string, error) {
	v, err := paramValue(params, name, "Code")
	if err != nil || v == nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return "", invalid(opParams, "parameter "+name+" needs a valueCode string", "Parameters.parameter('"+name+"')")
	}
	return s, nil
}

// ParamBoolean returns valueBoolean of parameter name (false if absent).
func ParamBoolean(params map[string]any, name string) (bool, error) {
	v, err := paramValue(params, name, "Boolean")
	if err != nil || v == nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, invalid(opParams, "parameter "+name+" needs valueBoolean true or false", "Parameters.parameter('"+name+"')")
	}
	return b, nil
}

// ParamDateTime returns valueDateTime of parameter name (zero if absent).
// Partial dates mean their first instant, in UTC.
func ParamDateTime(params map[string]any, name string) (time.Time, error) {
	v, err := paramValue(params, name, "DateTime")
	if err != nil || v == nil {
		return time.Time{}, err
	}
	s, _ := v.(string)
	t, ok := parseDateTime(s)
	if !ok {
		return time.Time{}, invalid(opParams, "parameter "+name+" needs a FHIR valueDateTime", "Parameters.parameter('"+name+"')")
	}
	return t, nil
}

// codingCode checks that a Coding parameter is from system and returns its code.
func codingCode(c map[string]any, name, system string, valid func(string) bool) (string, error) {
	if c == nil {
		return "", nil
	}
	code := str(c, "code")
	if (str(c, "system") != system && str(c, "system") != "") || !valid(code) {
		return "", invalid(opParams, "parameter "+name+" needs a code from "+system, "Parameters.parameter('"+name+"')")
	}
	return code, nil
}

// ParseTransitionParams reads the Parameters of $transition: status
// (valueCode), phase (valueCoding from case-phase; valueCode accepted),
// reason (valueCodeableConcept), effective (valueDateTime), cascade and
// dryRun (valueBoolean).
func ParseTransitionParams(params map[string]any) (TransitionParams, error) {
	var p TransitionParams
	if err := CheckParameters(params, "status", "phase", "reason", "effective", "cascade", "dryRun"); err != nil {
		return p, err
	}
	var err error
	if p.Status, err = ParamCode(params, "status"); err != nil {
		return p, err
	}
	if p.Status != "" && !IsStatus(p.Status) {
		return p, invalid(opParams, "status must be one of "+join(Statuses()), "Parameters.parameter('status')")
	}
	if ps := ParamEntries(params, "phase"); len(ps) == 1 && ps[0]["valueCode"] != nil {
		if p.Phase, err = ParamCode(params, "phase"); err != nil {
			return p, err
		}
		if !IsPhase(p.Phase) {
			return p, invalid(opParams, "parameter phase needs a code from "+SystemPhase, "Parameters.parameter('phase')")
		}
	} else {
		c, err := ParamCoding(params, "phase")
		if err != nil {
			return p, err
		}
		if p.Phase, err = codingCode(c, "phase", SystemPhase, IsPhase); err != nil {
			return p, err
		}
	}
	if p.Reason, err = ParamCodeableConcept(params, "reason"); err != nil {
		return p, err
	}
	if p.Effective, err = ParamDateTime(params, "effective"); err != nil {
		return p, err
	}
	if p.Cascade, err = ParamBoolean(params, "cascade"); err != nil {
		return p, err
	}
	if p.DryRun, err = ParamBoolean(params, "dryRun"); err != nil {
		return p, err
	}
	return p, nil
}

// ParseOpenCaseParams reads the Parameters of $open-case: referral
// (required), patient, careManager, managingOrganization (valueReference),
// category and model (valueCoding).
func ParseOpenCaseParams(params map[string]any) (OpenCaseParams, error) {
	var p OpenCaseParams
	if err := CheckParameters(params, "referral", "patient", "careManager", "managingOrganization", "category", "model"); err != nil {
		return p, err
	}
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"referral", &p.Referral}, {"patient", &p.Patient}, {"careManager", &p.CareManager},
		{"managingOrganization", &p.ManagingOrganization},
	} {
		if *f.dst, err = ParamReference(params, f.name); err != nil {
			return p, err
		}
	}
	if p.Referral == "" {
		return p, invalid(opParams, "parameter referral (a ServiceRequest reference) is required", "Parameters.parameter('referral')")
	}
	if p.Category, err = ParamCoding(params, "category"); err != nil {
		return p, err
	}
	if p.Model, err = ParamCoding(params, "model"); err != nil {
		return p, err
	}
	return p, nil
}
