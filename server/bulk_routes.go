package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/casefhir/casefhir/conformance"
	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/server/bulk"
	"github.com/casefhir/casefhir/server/interaction"
	"github.com/casefhir/casefhir/server/middleware"
)

// Bulk Data endpoints below the FHIR base that are not FHIR interactions
// (https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-status-request).
const (
	exportStatusPrefix = "/fhir/$export-status/"
	exportFilePrefix   = "/fhir/$export-file/"
)

// openBulk starts the Bulk Data export service and registers the $export
// operation (system, Patient, Group/[id], EpisodeOfCare/[id] level) in o.
// It needs s.registry and must run before the handler is built.
func (s *Server) openBulk(ctx context.Context, o *interaction.Options) error {
	// The wrapped store has JobStore when the real one does; the
	// Scanner is the real store's own method.
	jobs, _ := s.store.(store.JobStore)
	scanner, _ := s.base.(bulk.Scanner)
	if jobs == nil {
		return errors.New("bulk export: the store does not keep jobs")
	}
	dir := s.cfg.ExportDir
	if dir == "" {
		dir = filepath.Join(s.cfg.DataDir, "exports")
	}
	svc, err := bulk.New(bulk.Options{
		Store: s.store, Jobs: jobs, Scanner: scanner, Registry: s.registry, Dir: dir,
		Concurrency: s.cfg.ExportConcurrency, Retention: s.cfg.ExportRetention,
		BatchPause: s.cfg.ExportBatchPause, Logger: s.log,
		// Not Exclusive: other processes may share the embedded store's data
		// folder too, so an interrupted job is resumed once its lease lapses.
	})
	if err != nil {
		return err
	}
	svc.Start(ctx)
	s.closers = append(s.closers, svc.Close)
	s.bulk = svc
	if o.Operations == nil {
		o.Operations = map[string]interaction.Operation{}
	}
	o.Operations[bulk.OperationName] = svc.Kickoff
	return nil
}

// bulkCapabilities lists the export operations in the CapabilityStatement.
func (s *Server) bulkCapabilities(in *conformance.CapabilityInput) {
	const ig = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
	in.SystemOperations = append(in.SystemOperations, conformance.OperationRef{Name: "export", Definition: ig + "export"})
	for typ, def := range map[string]string{"Patient": ig + "patient-export", "Group": ig + "group-export"} {
		if tc, ok := in.Types[typ]; ok {
			tc.Operations = append(tc.Operations, conformance.OperationRef{Name: "export", Definition: def})
			in.Types[typ] = tc
		}
	}
}

// bulkRoutes serves the status (GET, DELETE) and file (GET) URLs of export
// jobs. Gin cannot route them beside the /fhir catch-all, so they are
// answered by a middleware placed before it.
func (s *Server) bulkRoutes(e *gin.Engine) {
	e.Use(func(c *gin.Context) {
		p := c.Request.URL.Path
		switch {
		case strings.HasPrefix(p, exportStatusPrefix):
			s.serveExportStatus(c, strings.TrimPrefix(p, exportStatusPrefix))
		case strings.HasPrefix(p, exportFilePrefix):
			s.serveExportFile(c, strings.TrimPrefix(p, exportFilePrefix))
		default:
			c.Next()
			return
		}
		c.Abort()
	})
}

// bulkAccess authenticates a status or file request.
func (s *Server) bulkAccess(c *gin.Context) (interaction.Access, bool) {
	if s.bulk == nil {
		s.render(c, outcome.New(outcome.NotFound, "bulk export is not enabled").WithStatus(http.StatusNotFound))
		return nil, false
	}
	acc, err := s.access.authenticate(c)
	if err != nil {
		s.render(c, err)
		return nil, false
	}
	if acc != nil {
		middleware.SetSubject(c.Request.Context(), acc.Subject())
	}
	return acc, true
}

// serveExportStatus answers GET (status) and DELETE (cancel) on a job.
func (s *Server) serveExportStatus(c *gin.Context, id string) {
	acc, ok := s.bulkAccess(c)
	if !ok {
		return
	}
	var resp *interaction.Response
	var err error
	switch c.Request.Method {
	case http.MethodGet:
		resp, err = s.bulk.Status(c.Request.Context(), id, s.cfg.BaseURL, acc)
	case http.MethodDelete:
		resp, err = s.bulk.Cancel(c.Request.Context(), id, acc)
	default:
		err = outcome.New(outcome.NotSupported, "the export status URL accepts GET and DELETE").WithStatus(http.StatusMethodNotAllowed)
	}
	if err != nil {
		s.render(c, err)
		return
	}
	s.write(c, resp)
}

// serveExportFile streams an output file to the client that started the job.
func (s *Server) serveExportFile(c *gin.Context, rest string) {
	acc, ok := s.bulkAccess(c)
	if !ok {
		return
	}
	if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
		s.render(c, outcome.New(outcome.NotSupported, "export files are read with GET").WithStatus(http.StatusMethodNotAllowed))
		return
	}
	id, name, _ := strings.Cut(rest, "/")
	f, err := s.bulk.File(c.Request.Context(), id, name, acc)
	if err != nil {
		s.render(c, err)
		return
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		s.render(c, outcome.New(outcome.NotFound, "export file not found").WithStatus(http.StatusNotFound))
		return
	}
	defer fh.Close()
	c.Header("Content-Type", f.ContentType)
	http.ServeContent(c.Writer, c.Request, "", f.ModTime, fh)
}
