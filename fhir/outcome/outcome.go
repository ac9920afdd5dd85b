package outcome

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Code is an R4 issue-type code (http://hl7.org/fhir/R4/valueset-issue-type.html).
type Code string

// The issue-type codes casefhir uses.
const (
	Invalid         Code = "invalid"
	Structure       Code = "structure"
	Required        Code = "required"
	Value           Code = "value"
	Invariant       Code = "invariant"
	Security        Code = "security"
	Login           Code = "login"
	Unknown         Code = "unknown"
	Expired         Code = "expired"
	Forbidden       Code = "forbidden"
	Suppressed      Code = "suppressed"
	Processing      Code = "processing"
	NotSupported    Code = "not-supported"
	Duplicate       Code = "duplicate"
	MultipleMatches Code = "multiple-matches"
	NotFound        Code = "not-found"
	Deleted         Code = "deleted"
	TooLong         Code = "too-long"
	CodeInvalid     Code = "code-invalid"
	Extension       Code = "extension"
	TooCostly       Code = "too-costly"
	BusinessRule    Code = "business-rule"
	Conflict        Code = "conflict"
	Transient       Code = "transient"
	LockError       Code = "lock-error"
	NoStore         Code = "no-store"
	Exception       Code = "exception"
	Timeout         Code = "timeout"
	Incomplete      Code = "incomplete"
	Throttled       Code = "throttled"
	Informational   Code = "informational"
)

// Severity is an R4 issue-severity code.
type Severity string

// Issue severities.
const (
	Fatal       Severity = "fatal"
	ErrorSev    Severity = "error"
	Warning     Severity = "warning"
	Information Severity = "information"
)

// Coding is a minimal FHIR Coding used in issue details.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// Issue is one OperationOutcome.issue.
type Issue struct {
	Severity Severity
	Code     Code
	// Coding, when set, goes into issue.details.coding (e.g. a case-rule code).
	Coding []Coding
	// Detail is PHI-free text for issue.details.text; it may be logged.
	Detail string
	// Diagnostics may carry PHI; it is sent to the client and never logged.
	Diagnostics string
	// Expression holds FHIRPath locations of the problem.
	Expression []string
}

// Error is casefhir's one error type.
type Error struct {
	// Op names the operation that failed, for logs (e.g. "mongostore.Create").
	Op string
	// Code is the issue type of the primary issue.
	Code Code
	// Severity of the primary issue; empty means error.
	Severity Severity
	// Status is the HTTP status; zero means derived from Code.
	Status int
	// Detail is PHI-free and safe to log.
	Detail string
	// Diagnostics may carry PHI: sent to clients, never logged.
	Diagnostics string
	// Expression holds FHIRPath locations of the primary issue.
	Expression []string
	// Coding goes into the primary issue's details.coding.
	Coding []Coding
	// Issues are further issues reported alongside the primary one.
	Issues []Issue
	// Header carries response headers the error needs (e.g. WWW-Authenticate).
	Header http.Header
	// Err is the underlying cause, if any. It is not rendered to clients.
	Err error
}

// New returns an Error with the given code and PHI-free detail.
func New(code Code, detail string) *Error {
	return &Error{Code: code, Detail: detail}
}

// Errorf is New with a fixed-format PHI-free detail.
// Callers must not pass PHI (resource content, search values) as arguments.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: sprintf(format, args...)}
}

// Wrap returns an Error of the given code wrapping cause. The cause's text is
// never rendered to clients and only logged via Error() when it is itself an
// *Error; raw causes are summarised by their Go type only.
func Wrap(cause error, code Code, op, detail string) *Error {
	return &Error{Op: op, Code: code, Detail: detail, Err: cause}
}

// WithOp sets Op and returns e.
func (e *Error) WithOp(op string) *Error { e.Op = op; return e }

// WithStatus sets an explicit HTTP status and returns e.
func (e *Error) WithStatus(s int) *Error { e.Status = s; return e }

// WithDiagnostics sets the PHI-bearing diagnostics and returns e.
func (e *Error) WithDiagnostics(d string) *Error { e.Diagnostics = d; return e }

// WithExpression appends FHIRPath expressions and returns e.
func (e *Error) WithExpression(x ...string) *Error {
	e.Expression = append(e.Expression, x...)
	return e
}

// WithCoding appends details codings and returns e.
func (e *Error) WithCoding(c ...Coding) *Error { e.Coding = append(e.Coding, c...); return e }

// WithIssue appends a further issue and returns e.
func (e *Error) WithIssue(i Issue) *Error { e.Issues = append(e.Issues, i); return e }

// WithHeader adds a response header and returns e.
func (e *Error) WithHeader(k, v string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Add(k, v)
	return e
}

// Error returns a PHI-free description: op, code and detail only.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(string(e.Code))
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	var inner *Error
	if errors.As(e.Err, &inner) {
		b.WriteString(": ")
		b.WriteString(inner.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// HTTPStatus returns the response status for e.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return StatusFor(e.Code)
}

// StatusFor maps an issue-type code to its default HTTP status.
func StatusFor(c Code) int {
	switch c {
	case Invalid, Structure, Required, Value, Invariant, CodeInvalid, Extension:
		return http.StatusBadRequest
	case Login, Unknown, Expired:
		return http.StatusUnauthorized
	case Security, Forbidden, Suppressed:
		return http.StatusForbidden
	case NotFound:
		return http.StatusNotFound
	case Deleted:
		return http.StatusGone
	case NotSupported:
		return http.StatusMethodNotAllowed
	case Duplicate, Conflict, LockError:
		return http.StatusConflict
	case MultipleMatches:
		return http.StatusPreconditionFailed
	case BusinessRule, Processing:
		return http.StatusUnprocessableEntity
	case TooLong:
		return http.StatusRequestEntityTooLarge
	case TooCostly:
		return http.StatusForbidden
	case Throttled:
		return http.StatusTooManyRequests
	case Timeout:
		return http.StatusGatewayTimeout
	case Transient, NoStore:
		return http.StatusServiceUnavailable
	case Informational:
		return http.StatusOK
	default:
		return http.StatusInternalServerError
	}
}

// As returns err as an *Error. A nil error gives nil. Any other error is
// wrapped as a 500 exception whose client-visible text says nothing about
// the cause.
func As(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Exception, Detail: "internal server error", Err: err}
}

// Is reports whether err is an *Error with the given code.
func Is(err error, code Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// StatusOf returns the HTTP status err renders with.
func StatusOf(err error) int { return As(err).HTTPStatus() }

// AllIssues returns the primary issue followed by the further ones.
func (e *Error) AllIssues() []Issue {
	sev := e.Severity
	if sev == "" {
		sev = ErrorSev
	}
	out := make([]Issue, 0, 1+len(e.Issues))
	if e.Code != "" || e.Detail != "" || len(e.Issues) == 0 {
		out = append(out, Issue{Severity: sev, Code: e.Code, Coding: e.Coding, Detail: e.Detail,
			Diagnostics: e.Diagnostics, Expression: e.Expression})
	}
	for _, i := range e.Issues {
		if i.Severity == "" {
			i.Severity = ErrorSev
		}
		out = append(out, i)
	}
	return out
}

type jsonCC struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type jsonIssue struct {
	Severity    Severity `json:"severity"`
	Code        Code     `json:"code"`
	Details     *jsonCC  `json:"details,omitempty"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

type jsonOutcome struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id,omitempty"`
	Issue        []jsonIssue `json:"issue"`
}

// Resource renders issues as an OperationOutcome JSON document.
func Resource(issues ...Issue) []byte {
	o := jsonOutcome{ResourceType: "OperationOutcome", Issue: make([]jsonIssue, 0, len(issues))}
	for _, i := range issues {
		ji := jsonIssue{Severity: i.Severity, Code: i.Code, Diagnostics: i.Diagnostics, Expression: i.Expression}
		if ji.Severity == "" {
			ji.Severity = ErrorSev
		}
		if ji.Code == "" {
			ji.Code = Exception
		}
		if i.Detail != "" || len(i.Coding) > 0 {
			ji.Details = &jsonCC{Coding: i.Coding, Text: i.Detail}
		}
		o.Issue = append(o.Issue, ji)
	}
	b, err := json.Marshal(o)
	if err != nil { // cannot happen: only strings and slices of them
		return []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`)
	}
	return b
}

// Render returns err as an HTTP status and OperationOutcome JSON body.
func Render(err error) (int, []byte) {
	e := As(err)
	return e.HTTPStatus(), Resource(e.AllIssues()...)
}

// Info returns an OperationOutcome with one informational issue, used for
// Prefer: return=OperationOutcome and for successful deletes.
func Info(detail string) []byte {
	return Resource(Issue{Severity: Information, Code: Informational, Detail: detail})
}
