package interaction

import (
	"bytes"
	"context"
	"net/url"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/mapping"
)

// CaseRules enforces the case-management rules (package mapping) on every
// write path and serves the case operations. Wire Hook into
// Options.Hooks and Operations() into Options.Operations.
type CaseRules struct {
	// Registry finds the resources linked to a case (the episode-of-care
	// search parameter).
	Registry *search.Registry
	// Base is the server's public base URL.
	Base string
}

// Hook is the WriteHook of the case rules: an EpisodeOfCare write goes
// through mapping.CheckEpisodeWrite (its body is replaced by the one to
// store: server-maintained histories), any other resource linked to a case
// through mapping.CheckLinkedWrite. Deletes pass. Writes to the published
// case-management artefacts (see SeedCaseArtefacts) are refused.
func (c *CaseRules) Hook(ctx context.Context, h *Handler, w *Write) error {
	if err := artefactGuard(ctx, w); err != nil {
		return err
	}
	if w.Delete {
		return nil
	}
	var prevJSON []byte
	if w.Prev != nil && !w.Prev.Deleted {
		prevJSON = w.Prev.JSON
	}
	rd := &caseReader{c: c, h: h, tx: w.Batch}
	if w.Type == "EpisodeOfCare" {
		// Cheap test first: only managed cases (now or before) have rules.
		ext := []byte(mapping.ExtPhase)
		if !bytes.Contains(w.Body, ext) && !bytes.Contains(prevJSON, ext) {
			return nil
		}
		if w.CaseChecked {
			return nil
		}
		next, err := mapping.Decode(w.Body)
		if err != nil {
			return err
		}
		prev, err := decodeOptional(prevJSON)
		if err != nil {
			return err
		}
		next["id"] = w.ID
		out, err := mapping.CheckEpisodeWrite(ctx, prev, next, rd, h.now(w.Prev))
		if err != nil {
			return err
		}
		body, err := mapping.Encode(out)
		if err != nil {
			return err
		}
		w.Replace(body)
		return nil
	}
	if !bytes.Contains(w.Body, []byte(mapping.ExtEpisodeOfCare)) &&
		!(w.Type == "Encounter" && bytes.Contains(w.Body, []byte(`"episodeOfCare"`))) {
		return nil
	}
	next, err := mapping.Decode(w.Body)
	if err != nil {
		return err
	}
	prev, err := decodeOptional(prevJSON)
	if err != nil {
		return err
	}
	return mapping.CheckLinkedWrite(ctx, w.Type, prev, next, rd)
}

func decodeOptional(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	return mapping.Decode(b)
}

// caseReader implements mapping.Reader over the store, seeing the writes
// of the transaction in progress first.
type caseReader struct {
	c  *CaseRules
	h  *Handler
	tx *TxContext
}

func (r *caseReader) pending(key string) (*store.Resource, bool) {
	if r.tx == nil {
		return nil, false
	}
	p, ok := r.tx.Pending[key]
	return p, ok
}

// Episode implements mapping.Reader.
func (r *caseReader) Episode(ctx context.Context, id string) (map[string]any, error) {
	res, ok := r.pending("EpisodeOfCare/" + id)
	if !ok {
		var err error
		res, err = r.h.o.Store.Read(ctx, "EpisodeOfCare", id)
		if err != nil {
			return nil, err
		}
	}
	if res == nil || res.Deleted {
		return nil, nil
	}
	return mapping.Decode(res.JSON)
}

// Linked implements mapping.Reader.
func (r *caseReader) Linked(ctx context.Context, episodeID, typ string) ([]map[string]any, error) {
	return r.c.linked(ctx, r.h, r.tx, episodeID, typ)
}

// linkedResources returns the stored (and pending) resources of typ linked
// to the case, as store resources.
func (c *CaseRules) linkedResources(ctx context.Context, h *Handler, tx *TxContext, episodeID, typ string) ([]*store.Resource, error) {
	if c.Registry == nil {
		return nil, outcome.New(outcome.Exception, "case rules need the search registry")
	}
	q, err := c.Registry.Parse(typ, url.Values{"episode-of-care": {"EpisodeOfCare/" + episodeID}}, true)
	if err != nil {
		return nil, err
	}
	q.Base = c.Base
	cur, err := h.o.Store.Find(ctx, typ, q.Filter(), store.FindOptions{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	var out []*store.Resource
	seen := map[string]bool{}
	for {
		res, err := cur.Next(ctx)
		if err != nil {
			return nil, err
		}
		if res == nil {
			break
		}
		if !q.Matches(res.Index) {
			continue
		}
		if tx != nil {
			if _, ok := tx.Pending[res.Key()]; ok {
				continue // the pending version replaces it
			}
		}
		seen[res.Key()] = true
		out = append(out, res)
	}
	if tx != nil {
		for _, p := range tx.Pending {
			if p.Type != typ || p.Deleted || seen[p.Key()] {
				continue
			}
			m, err := mapping.Decode(p.JSON)
			if err != nil {
				return nil, err
			}
			for _, id := range mapping.CaseIDs(typ, m) {
				if id == episodeID {
					out = append(out, p)
					break
				}
			}
		}
	}
	return out, nil
}

func (c *CaseRules) linked(ctx context.Context, h *Handler, tx *TxContext, episodeID, typ string) ([]map[string]any, error) {
	rs, err := c.linkedResources(ctx, h, tx, episodeID, typ)
	if err != nil {
		return nil, err
	}
	return decodeAll(rs)
}
