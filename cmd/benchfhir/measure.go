package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"time"
)

// measure runs every scenario and returns the report (partial on error).
func measure(ctx context.Context, c config, logw io.Writer) (*report, error) {
	rep := &report{started: time.Now()}
	defer func() { rep.elapsed = time.Since(rep.started) }()
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "benchfhir: "+format+"\n", args...) }
	dir := c.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "benchfhir-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if len(c.only) == 1 && c.only[0] == "scale" {
		// The scale scenario runs its own server process.
		b := &bench{c: c, logf: logf}
		b.c.dir = dir
		sec, err := b.scale(ctx)
		if sec != nil {
			rep.add(sec)
		}
		return rep, err
	}
	e, err := start(ctx, dir, c.conc, c.audit, logw)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if c.audit {
		rep.setup = append(rep.setup, "Server: AuditEvent trail on (`--audit=on`): every request also queues an AuditEvent, written in batches.")
	} else {
		rep.setup = append(rep.setup, "Server: AuditEvent trail off (`-audit` turns it on): the figures are the FHIR path alone. "+
			"The trail's own cost is the audit section, with two servers (trail on and off) in the same run.")
	}
	rep.setup = append(rep.setup, "Backend: FerretDB v1 (SQLite) started in this process as the MongoDB-wire stand-in; the server "+
		"reaches it through mongostore over the MongoDB wire. Baseline: a direct store client on the same database and collections.")
	caps, err := e.capabilities(ctx)
	if err != nil {
		return rep, err
	}
	b := &bench{c: c, e: e, caps: caps, logf: logf, seed: &seeder{e: e}, dir: dir}
	scenarios := []struct {
		name string
		fn   func(context.Context) (*section, error)
	}{
		{"roundtrips", b.roundTrips},
		{"scale", b.scale},
		{"scaling", b.scaling},
		{"read", b.readThroughput},
		{"create", b.createThroughput},
		{"transaction", b.transaction},
		{"export", b.export},
		{"everything", b.everything},
		{"calibration", b.calibration},
		{"audit", b.auditOnOff},
	}
	var firstErr error
	for _, s := range scenarios {
		if len(c.only) > 0 && !slices.Contains(c.only, s.name) {
			continue
		}
		t0 := time.Now()
		logf("%s...", s.name)
		sec, err := s.fn(ctx)
		if err != nil {
			logf("%s: %v", s.name, err)
			if sec == nil {
				sec = &section{title: s.name}
			}
			sec.notes = append(sec.notes, fmt.Sprintf("**Incomplete**: %v", err))
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", s.name, err)
			}
		}
		logf("%s done in %v", s.name, time.Since(t0).Round(time.Millisecond))
		if sec != nil {
			rep.add(sec)
		}
		for _, x := range b.extra {
			rep.add(x)
		}
		b.extra = nil
	}
	if b.seed.how != "" {
		rep.setup = append(rep.setup, fmt.Sprintf("Seeding path: %s, batches of 1000.", b.seed.how))
	}
	return rep, firstErr
}

// bench holds what the scenarios share.
type bench struct {
	c    config
	e    *env
	caps capabilities
	logf func(string, ...any)
	seed *seeder
	// dir is the working directory.
	dir string
	// extra holds further sections a scenario produced.
	extra []*section
}

// randPatient returns a random seeded Patient id.
func (b *bench) randPatient() string { return patientID(rand.IntN(b.seed.have)) }
