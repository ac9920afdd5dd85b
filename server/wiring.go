package server

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/casefhir/casefhir/conformance"
	"github.com/casefhir/casefhir/fhir"
	"github.com/casefhir/casefhir/fhir/codec"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/server/interaction"
)

// buildHandler wires the FHIR handler: codec, search, the case rules and
// operations, and the CapabilityStatement generated from all of it.
func (s *Server) buildHandler(ctx context.Context, c *codec.Codec) error {
	reg, err := search.NewRegistry(conformance.SearchParameters(), conformance.CaseSearchParameters())
	if err != nil {
		return fmt.Errorf("search parameters: %v", err)
	}
	s.registry = reg
	// A store that can sort by the sources of sort values does not store
	// them (sqlitestore: fewer rows per write). Declared before any write.
	if d, ok := s.base.(store.SortDeriver); ok {
		d.DeriveSorts(reg.SortSources())
	}
	exec := &interaction.SearchExecutor{Registry: reg, Store: s.store}
	opts := interaction.Options{
		Store:            s.store,
		Codec:            c,
		Indexer:          reg,
		Resolver:         exec,
		Search:           exec,
		MaxBundleEntries: s.cfg.MaxBundleEntries,
		Transaction:      interaction.Transaction,
		Operations:       map[string]interaction.Operation{},
	}
	opts.Operations["versions"] = interaction.Versions
	opts.Operations["Patient/everything"] = interaction.PatientEverything
	cases := &interaction.CaseRules{Registry: reg, Base: s.cfg.BaseURL}
	opts.Hooks = append(opts.Hooks, cases.Hook)
	maps.Copy(opts.Operations, cases.Operations())
	if err := s.openBulk(ctx, &opts); err != nil {
		return err
	}
	// The cursor key lives in the database, so every instance sharing the
	// store accepts the others' paging cursors.
	js, _ := s.store.(store.JobStore)
	key, err := interaction.CursorKey(ctx, js, time.Now())
	if err != nil {
		return fmt.Errorf("cursor key: %v", err)
	}
	opts.Cursors = interaction.NewCursors(key)
	capability := conformance.CapabilityStatement(s.capabilityInput(opts))
	opts.Capabilities = func(string) []byte { return capability }
	s.handler = interaction.New(opts)
	if err := interaction.SeedCaseArtefacts(ctx, s.handler); err != nil {
		return fmt.Errorf("case-management artefacts: %w", err)
	}
	return nil
}

// capabilityInput describes what the handler implements.
func (s *Server) capabilityInput(o interaction.Options) conformance.CapabilityInput {
	in := conformance.CapabilityInput{
		Software: "casefhir", Version: s.cfg.Version, BaseURL: s.cfg.BaseURL, Date: s.started,
		Types:              map[string]conformance.TypeCapability{},
		SystemInteractions: []string{"batch", "history-system"},
	}
	if o.Transaction != nil {
		in.SystemInteractions = append(in.SystemInteractions, "transaction")
	}
	if o.Search != nil {
		in.SystemInteractions = append(in.SystemInteractions, "search-system")
	}
	for _, t := range fhir.ResourceTypes() {
		tc := conformance.TypeCapability{
			Interactions: []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create"},
			ReadHistory:  true, UpdateCreate: true,
		}
		if o.Resolver != nil {
			tc.ConditionalCreate, tc.ConditionalUpdate, tc.ConditionalDelete = true, true, "single"
		}
		if o.Search != nil {
			tc.Interactions = append(tc.Interactions, "search-type")
			for _, p := range s.registry.Params(t) {
				if p.Unsupported != "" {
					continue
				}
				tc.SearchParams = append(tc.SearchParams, conformance.SearchParamRef{Name: p.Code, Definition: p.URL, Type: string(p.Type)})
			}
			tc.SearchInclude = []string{"*"}
			tc.SearchRevInclude = []string{"*"}
		}
		in.Types[t] = tc
		in.TypeOrder = append(in.TypeOrder, t)
	}
	if s.verifier != nil {
		m := s.verifier.Metadata()
		in.Security = &conformance.SecurityInfo{Authorize: m.AuthorizationEndpoint, Token: m.TokenEndpoint,
			Revoke: m.RevocationEndpoint, Introspect: m.IntrospectionEndpoint, Register: m.RegistrationEndpoint}
	}
	in.SystemOperations = append(in.SystemOperations, conformance.OperationRef{Name: "versions",
		Definition: "http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions"})
	if tc, ok := in.Types["Patient"]; ok {
		tc.Operations = append(tc.Operations, conformance.OperationRef{Name: "everything",
			Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything"})
		in.Types["Patient"] = tc
	}
	s.bulkCapabilities(&in)
	for typ, ops := range conformance.CaseOperations() {
		if tc, ok := in.Types[typ]; ok {
			tc.Operations = append(tc.Operations, ops...)
			in.Types[typ] = tc
		}
	}
	return in
}
