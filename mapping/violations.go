package mapping

import (
	"github.com/casefhir/casefhir/fhir/outcome"
)

// violations collects broken rules, one issue each.
type violations struct {
	issues []outcome.Issue
}

// add records a broken rule. detail is PHI-free: it says what to do and may
// name resource references; expr is the FHIRPath of the offending element.
func (v *violations) add(rule Rule, expr, detail string) {
	i := outcome.Issue{
		Severity: outcome.ErrorSev,
		Code:     outcome.BusinessRule,
		Coding:   []outcome.Coding{{System: SystemRule, Code: string(rule), Display: rule.Display()}},
		Detail:   detail,
	}
	if expr != "" {
		i.Expression = []string{expr}
	}
	v.issues = append(v.issues, i)
}

func (v *violations) empty() bool { return len(v.issues) == 0 }

// err returns the collected violations as one 422 *outcome.Error (nil if
// none): the first issue is the primary one, the rest follow in Issues.
func (v *violations) err(op string) error {
	if len(v.issues) == 0 {
		return nil
	}
	first := v.issues[0]
	return &outcome.Error{
		Op:         op,
		Code:       outcome.BusinessRule,
		Severity:   outcome.ErrorSev,
		Detail:     first.Detail,
		Expression: first.Expression,
		Coding:     first.Coding,
		Issues:     append([]outcome.Issue(nil), v.issues[1:]...),
	}
}

// Rules returns the case-rule codes of the issues of err, in order (nil when
// err is not an *outcome.Error).
func Rules(err error) []Rule {
	e := outcome.As(err)
	if e == nil {
		return nil
	}
	var out []Rule
	for _, i := range e.AllIssues() {
		for _, c := range i.Coding {
			if c.System == SystemRule {
				out = append(out, Rule(c.Code))
			}
		}
	}
	return out
}

func invalid(op, detail string, expr ...string) error {
	e := outcome.New(outcome.Invalid, detail).WithOp(op)
	if len(expr) > 0 {
		e.WithExpression(expr...)
	}
	return e
}
