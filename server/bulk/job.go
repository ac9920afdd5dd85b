package bulk

import (
	"encoding/json"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// JobKind is the store.Job Kind of export jobs.
const JobKind = "export"

// Job statuses (store.Job.Status).
const (
	StatusAccepted  = "accepted"  // waiting for a worker
	StatusRunning   = "running"   // claimed by a worker (or interrupted, until resumed)
	StatusCompleted = "completed" // manifest ready
	StatusFailed    = "failed"    // fatal error; Fatal says why
)

// Export levels (https://hl7.org/fhir/uv/bulkdata/export.html#endpoint).
const (
	LevelSystem  = "system"  // [base]/$export
	LevelPatient = "patient" // [base]/Patient/$export
	LevelGroup   = "group"   // [base]/Group/[id]/$export
	LevelEpisode = "episode" // [base]/EpisodeOfCare/[id]/$export (casefhir)
)

// Spec is what a job exports, fixed at kick-off.
type Spec struct {
	Level string `json:"level"`
	// ID is the Group or EpisodeOfCare id.
	ID string `json:"id,omitempty"`
	// Request is the kick-off URL, echoed in the manifest.
	Request string `json:"request"`
	// BaseURL is the FHIR base the output URLs are built on.
	BaseURL string `json:"base"`
	// TransactionTime is the kick-off time: nothing updated later is exported.
	TransactionTime time.Time `json:"transactionTime"`
	// Since is _since (zero: none).
	Since time.Time `json:"since,omitzero"`
	// Types is _type (nil: every type the level and the caller allow).
	Types []string `json:"types,omitempty"`
	// Allowed lists the types the caller may read (nil: all, auth off).
	Allowed []string `json:"allowed,omitempty"`
	// TypeFilters are the _typeFilter queries per type (OR-ed).
	TypeFilters map[string][]string `json:"typeFilters,omitempty"`
	// Restrictions are the caller's granular scope queries per type (OR-ed).
	Restrictions map[string][]string `json:"restrictions,omitempty"`
	// Compartment bounds the caller per type to one patient's compartment.
	Compartment map[string]string `json:"compartment,omitempty"`
	// Patients are the patient ids whose compartments a group export (or a
	// patient export with the patient parameter) covers.
	Patients []string `json:"patients,omitempty"`
	// Teams are the CareTeam ids an EpisodeOfCare names in its team.
	Teams []string `json:"teams,omitempty"`
}

// Output is one finished NDJSON file.
type Output struct {
	Type  string `json:"type"`
	File  string `json:"file"`
	Count int64  `json:"count"`
}

// Issue is a non-fatal problem reported in the error file (PHI-free Detail,
// Diagnostics only for the client).
type Issue struct {
	Code        string `json:"code"`
	Severity    string `json:"severity"`
	Detail      string `json:"detail"`
	Diagnostics string `json:"diagnostics,omitempty"`
}

// State is the job's persisted state (store.Job.Data).
type State struct {
	Spec Spec `json:"spec"`
	// Types are the types to export, in order, resolved when the job first
	// runs.
	Types    []string `json:"resolvedTypes,omitempty"`
	Resolved bool     `json:"resolved,omitempty"`
	// Done lists the completed types (Count 0: no file).
	Done []Output `json:"done,omitempty"`
	// Current is the type being written and CurrentCount its progress.
	Current      string `json:"current,omitempty"`
	CurrentCount int64  `json:"currentCount,omitempty"`
	// Issues are the non-fatal problems; ErrorFile holds them once done.
	Issues    []Issue `json:"issues,omitempty"`
	ErrorFile string  `json:"errorFile,omitempty"`
	// Attempts counts the times the job was started or resumed.
	Attempts int `json:"attempts,omitempty"`
	// Fatal is the PHI-free reason of a failed job.
	Fatal string `json:"fatal,omitempty"`
	// FinishedAt is when the job completed or failed.
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// maxIssues caps the issues kept in a job record.
const maxIssues = 1000

func (st *State) addIssue(i Issue) {
	if len(st.Issues) < maxIssues {
		st.Issues = append(st.Issues, i)
	}
}

func (st *State) done(typ string) bool {
	for _, o := range st.Done {
		if o.Type == typ {
			return true
		}
	}
	return false
}

// exported counts the resources written so far.
func (st *State) exported() int64 {
	n := st.CurrentCount
	for _, o := range st.Done {
		n += o.Count
	}
	return n
}

func decodeState(j *store.Job) (*State, error) {
	var st State
	if err := json.Unmarshal(j.Data, &st); err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "bulk.decodeState", "export job record is unreadable")
	}
	return &st, nil
}

func encodeState(j *store.Job, st *State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return outcome.Wrap(err, outcome.Exception, "bulk.encodeState", "export job state could not be encoded")
	}
	j.Data = b
	return nil
}
