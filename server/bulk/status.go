package bulk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/server/interaction"
)

// Manifest is the complete-status body
// (https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status).
type Manifest struct {
	TransactionTime     string           `json:"transactionTime"`
	Request             string           `json:"request"`
	RequiresAccessToken bool             `json:"requiresAccessToken"`
	Output              []ManifestOutput `json:"output"`
	Error               []ManifestOutput `json:"error"`
}

// ManifestOutput is one file of a manifest.
type ManifestOutput struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int64  `json:"count,omitempty"`
}

// job reads a job and checks the caller owns it.
func (s *Service) job(ctx context.Context, id string, a interaction.Access) (*store.Job, *State, error) {
	if !fhir.IsValidID(id) {
		return nil, nil, outcome.New(outcome.NotFound, "export job not found").WithStatus(http.StatusNotFound)
	}
	j, err := s.o.Jobs.GetJob(ctx, id)
	if err != nil {
		if outcome.Is(err, outcome.NotFound) {
			return nil, nil, outcome.New(outcome.NotFound, "export job not found").WithStatus(http.StatusNotFound)
		}
		return nil, nil, err
	}
	if j.Kind != JobKind {
		return nil, nil, outcome.New(outcome.NotFound, "export job not found").WithStatus(http.StatusNotFound)
	}
	if j.Owner != Owner(a) {
		return nil, nil, outcome.New(outcome.Forbidden, "the export job belongs to another client")
	}
	st, err := decodeState(j)
	if err != nil {
		return nil, nil, err
	}
	return j, st, nil
}

// Status implements the status request
// (https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-status-request):
// 202 with X-Progress and Retry-After while the job runs, 200 with the
// manifest once it completed, the job's error (500) once it failed. File
// URLs are built on baseURL, the answering server's public FHIR base.
func (s *Service) Status(ctx context.Context, id, baseURL string, a interaction.Access) (*interaction.Response, error) {
	j, st, err := s.job(ctx, id, a)
	if err != nil {
		return nil, err
	}
	resp := &interaction.Response{Header: http.Header{}}
	switch j.Status {
	case StatusCompleted:
		m := Manifest{
			TransactionTime:     st.Spec.TransactionTime.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			Request:             st.Spec.Request,
			RequiresAccessToken: true,
			Output:              []ManifestOutput{},
			Error:               []ManifestOutput{},
		}
		for _, o := range st.Done {
			if o.Count > 0 {
				m.Output = append(m.Output, ManifestOutput{Type: o.Type, URL: FileURL(baseURL, j.ID, o.File), Count: o.Count})
			}
		}
		if st.ErrorFile != "" {
			m.Error = append(m.Error, ManifestOutput{Type: "OperationOutcome", URL: FileURL(baseURL, j.ID, st.ErrorFile),
				Count: int64(len(st.Issues))})
		}
		body, err := json.Marshal(m)
		if err != nil {
			return nil, outcome.Wrap(err, outcome.Exception, "bulk.Status", "manifest could not be encoded")
		}
		resp.Status, resp.Body = http.StatusOK, body
		resp.Header.Set("Content-Type", "application/json")
		resp.Header.Set("Expires", st.FinishedAt.Add(s.o.Retention).UTC().Format(http.TimeFormat))
		return resp, nil
	case StatusFailed:
		return nil, outcome.New(outcome.Exception, "the export failed: "+st.Fatal).WithStatus(http.StatusInternalServerError)
	}
	resp.Status = http.StatusAccepted
	progress := "queued"
	if j.Status == StatusRunning {
		progress = fmt.Sprintf("exporting: %d of %d types done, %d resources written", len(st.Done), len(st.Types), st.exported())
	}
	resp.Header.Set("X-Progress", progress)
	resp.Header.Set("Retry-After", strconv.Itoa(int((s.o.RetryAfter+time.Second-1)/time.Second)))
	return resp, nil
}

// Cancel implements the delete request
// (https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-delete-request):
// the job is removed with its files (a worker still writing it stops at its
// next batch and removes what it wrote), and answers 202.
func (s *Service) Cancel(ctx context.Context, id string, a interaction.Access) (*interaction.Response, error) {
	j, _, err := s.job(ctx, id, a)
	if err != nil {
		return nil, err
	}
	if err := s.o.Jobs.DeleteJob(ctx, j.ID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	cancel := s.running[j.ID]
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	_ = os.RemoveAll(s.jobDir(j.ID))
	s.o.Logger.InfoContext(ctx, "export job cancelled", "job", j.ID)
	return &interaction.Response{Status: http.StatusAccepted, Header: http.Header{},
		Body: outcome.Info("export job cancelled")}, nil
}

// File is an output file ready to be served.
type File struct {
	// Path is the file on disk; open it and stream it (never read it whole).
	Path    string
	ModTime time.Time
	// ContentType is application/fhir+ndjson.
	ContentType string
}

// File returns a completed job's output file for the client that started
// the job (https://hl7.org/fhir/uv/bulkdata/export.html#file-request).
func (s *Service) File(ctx context.Context, id, name string, a interaction.Access) (*File, error) {
	j, st, err := s.job(ctx, id, a)
	if err != nil {
		return nil, err
	}
	notFound := outcome.New(outcome.NotFound, "export file not found").WithStatus(http.StatusNotFound)
	if j.Status != StatusCompleted || name == "" || strings.ContainsAny(name, `/\`) {
		return nil, notFound
	}
	known := name == st.ErrorFile
	for _, o := range st.Done {
		known = known || (o.Count > 0 && o.File == name)
	}
	if !known {
		return nil, notFound
	}
	p := filepath.Join(s.jobDir(j.ID), name)
	fi, err := os.Stat(p)
	if err != nil {
		return nil, notFound
	}
	return &File{Path: p, ModTime: fi.ModTime(), ContentType: "application/fhir+ndjson"}, nil
}
