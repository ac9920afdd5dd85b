package mongostore

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// The write-ahead journal, for backends without multi-document transactions.
//
// A transaction with id T is journaled in txlogColl as
//
//	{_id: "T/0", tx: "T", at: <date>, w: <BSON {w: [{t: <type>, p: <prev version or 0>, d: <new current document>}, ...]} as binary>}
//	{_id: "T/1", ...}                              (chunks of at most journalChunkBytes)
//	{_id: "T", n: <number of chunks>, at: <date>}  (the commit marker)
//
// or, when the writes fit one chunk, as the marker alone, holding them:
//
//	{_id: "T", n: 1, at: <date>, w: [...]}
//
// The writes travel as one binary value per chunk: FerretDB stores it as is
// instead of converting every nested document. Every write is a
// single-document write addressed by _id (the only kind
// FerretDB serves from an index), and each is durable when acknowledged.
// The marker insert is the commit point: before it, nothing of the
// transaction is visible and a crash leaves only chunks, which Open
// discards; after it, the transaction is applied (each write idempotently:
// history copy of the stored previous version, then replace or insert of
// the current document) and a crash leaves the marker, from which Open
// rolls the transaction forward before the store serves anything. The
// journal is deleted marker first, so a marker never outlives its chunks.
const (
	txlogColl         = "_txlog"
	journalChunkBytes = 4 << 20

	jTx     = "tx"
	jAt     = "at"
	jWrites = "w"
	jChunks = "n"
	jType   = "t"
	jPrev   = "p"
	jDoc    = "d"
)

// staleChunkAge is how old an uncommitted chunk must be before Open
// discards it on a backend other processes may share (a standalone
// mongod); the embedded store has one writer and discards all at once.
const staleChunkAge = time.Hour

// journalEntry is one write as journaled and as applied.
type journalEntry struct {
	typ  string
	id   string
	prev int64    // 0: create
	next int64    // the new version
	doc  bson.Raw // the new current document
	cur  bson.Raw // the stored current document (live path only)
}

func (s *Store) applyJournal(ctx context.Context, writes []store.Write) error {
	const op = "mongostore.Apply"
	if err := s.ensure(ctx, txlogColl); err != nil {
		return err
	}
	keys := make([]string, len(writes))
	for i, w := range writes {
		keys[i] = w.Next.Key()
	}
	unlock, err := s.tx.locks.lockAll(ctx, keys)
	if err != nil {
		return translate(op, err)
	}
	defer unlock()

	// Under the locks, check every resource is still where the caller saw
	// it (point reads by _id, a few at a time).
	entries := make([]*journalEntry, len(writes))
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, checkParallelism)
	for i, w := range writes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			entries[i], errs[i] = s.checkWrite(ctx, w)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}

	// Phase 1: the journal, then the commit marker. A journal that fits
	// one chunk is its own marker: one document, {_id: T, n: 1, w: [...]}.
	tx := token()
	now := bson.NewDateTimeFromTime(time.Now())
	log := s.db.Collection(txlogColl)
	var chunks []bson.Binary
	var batch bson.A
	size := 0
	pack := func() error {
		b, err := bson.Marshal(bson.D{{Key: jWrites, Value: batch}})
		if err != nil {
			return translate(op, err)
		}
		chunks = append(chunks, bson.Binary{Data: b})
		batch, size = nil, 0
		return nil
	}
	for _, e := range entries {
		ent, err := bson.Marshal(bson.D{{Key: jType, Value: e.typ}, {Key: jPrev, Value: e.prev}, {Key: jDoc, Value: e.doc}})
		if err != nil {
			return translate(op, err)
		}
		if size > 0 && size+len(ent) > journalChunkBytes {
			if err := pack(); err != nil {
				return err
			}
		}
		batch = append(batch, bson.Raw(ent))
		size += len(ent)
	}
	if err := pack(); err != nil {
		return err
	}
	marker := bson.D{{Key: fID, Value: tx}, {Key: jChunks, Value: int64(len(chunks))}, {Key: jAt, Value: now}}
	var chunkIDs []string
	if len(chunks) == 1 {
		marker = append(marker, bson.E{Key: jWrites, Value: chunks[0]})
	} else {
		for i, c := range chunks {
			id := tx + "/" + strconv.Itoa(i)
			if _, err := log.InsertOne(ctx, bson.D{{Key: fID, Value: id}, {Key: jTx, Value: tx}, {Key: jAt, Value: now}, {Key: jWrites, Value: c}}); err != nil {
				s.discard(context.WithoutCancel(ctx), chunkIDs)
				return translate(op, err)
			}
			chunkIDs = append(chunkIDs, id)
		}
	}
	if _, err := log.InsertOne(ctx, marker); err != nil {
		// The marker may or may not be durable (e.g. a lost reply): roll
		// forward if it is, discard the chunks if it is not.
		wctx := context.WithoutCancel(ctx)
		if n, cerr := log.CountDocuments(wctx, bson.D{{Key: fID, Value: tx}}); cerr != nil || n == 0 {
			if cerr == nil {
				s.discard(wctx, chunkIDs)
			}
			return translate(op, err)
		}
	}

	// Committed: finish whatever the caller's context says.
	wctx := context.WithoutCancel(ctx)
	if err := s.applyEntries(wctx, entries); err != nil {
		s.log.ErrorContext(wctx, "committed transaction not fully applied; it is completed when the store is opened again",
			"writes", len(entries), "error", err.Error())
		for _, e := range entries {
			s.mem.drop(e.typ, nil) // partly applied: searches reload what is stored
		}
		return outcome.Wrap(err, outcome.Exception, op, "the transaction is committed but could not be applied completely")
	}
	// Applied, and the keys still locked: the search index follows.
	for _, e := range entries {
		s.noteDoc(e.typ, e.doc)
	}
	if _, err := log.DeleteOne(wctx, bson.D{{Key: fID, Value: tx}}); err != nil {
		s.log.WarnContext(wctx, "deleting a transaction journal marker failed", "error", err.Error())
		return nil
	}
	s.discard(wctx, chunkIDs)
	return nil
}

// checkParallelism bounds the concurrent version checks of one Apply.
const checkParallelism = 4

// checkWrite reads the stored current document of w's resource and checks
// it is w.Prev (absent for a create); it returns the journal entry.
func (s *Store) checkWrite(ctx context.Context, w store.Write) (*journalEntry, error) {
	const op = "mongostore.Apply"
	raw, err := s.db.Collection(w.Next.Type).FindOne(ctx, bson.D{{Key: fID, Value: w.Next.ID}}).Raw()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		if w.Prev != nil {
			return nil, conflict(op, w.Next)
		}
		raw = nil
	case err != nil:
		return nil, translate(op, err)
	default:
		v, ok := raw.Lookup(fVersion).AsInt64OK()
		if !ok {
			return nil, corrupt(nil)
		}
		if w.Prev == nil {
			return nil, store.Conflict(op, w.Next, "resource already exists", w.Next.Key()+" already exists")
		}
		if v != w.Prev.VersionID {
			return nil, conflict(op, w.Next)
		}
	}
	doc, err := bson.Marshal(encode(w.Next))
	if err != nil {
		return nil, translate(op, err)
	}
	e := &journalEntry{typ: w.Next.Type, id: w.Next.ID, next: w.Next.VersionID, doc: doc, cur: raw}
	if w.Prev != nil {
		e.prev = w.Prev.VersionID
	}
	return e, nil
}

// discard deletes journal chunks (best effort: Open discards leftovers).
func (s *Store) discard(ctx context.Context, ids []string) {
	for _, id := range ids {
		if _, err := s.db.Collection(txlogColl).DeleteOne(ctx, bson.D{{Key: fID, Value: id}}); err != nil {
			s.log.WarnContext(ctx, "deleting a transaction journal chunk failed", "error", err.Error())
			return
		}
	}
}

// applyEntries applies journaled writes whose stored state was checked
// under the locks: creates in one insert per type, history copies in one
// insert per type, then the replaces. Anything unexpected falls back to the
// idempotent per-write roll-forward.
func (s *Store) applyEntries(ctx context.Context, entries []*journalEntry) error {
	creates := map[string][]any{}
	history := map[string][]any{}
	var types []string
	for _, e := range entries {
		if _, ok := creates[e.typ]; !ok {
			types = append(types, e.typ)
			creates[e.typ] = nil
		}
		if e.prev == 0 {
			creates[e.typ] = append(creates[e.typ], e.doc)
			continue
		}
		h, err := toHistory(e.cur, e.id, e.prev)
		if err != nil {
			return err
		}
		history[e.typ] = append(history[e.typ], h)
	}
	slow := false
	unordered := options.InsertMany().SetOrdered(false)
	for _, t := range types {
		if docs := creates[t]; len(docs) > 0 {
			if _, err := s.db.Collection(t).InsertMany(ctx, docs, unordered); err != nil {
				slow = true
			}
		}
		if docs := history[t]; len(docs) > 0 {
			if _, err := s.db.Collection(t+historySuffix).InsertMany(ctx, docs, unordered); err != nil && !allDuplicates(err) {
				slow = true
			}
		}
	}
	if !slow {
		for _, e := range entries {
			if e.prev == 0 {
				continue
			}
			res, err := s.db.Collection(e.typ).ReplaceOne(ctx, bson.D{{Key: fID, Value: e.id}}, e.doc)
			if err != nil || res.MatchedCount == 0 {
				slow = true
				break
			}
		}
	}
	if !slow {
		return nil
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		last = nil
		for _, e := range entries {
			if err := s.rollForward(ctx, e); err != nil {
				last = err
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	return last
}

// allDuplicates reports whether every write error of a bulk insert is a
// duplicate key (history copies already there).
func allDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// rollForward applies one journaled write idempotently from whatever state
// an interrupted apply left: already at the new version (nothing to do), at
// the previous version (copy it to history, then replace it), absent for a
// create (insert). A resource already past the new version is left alone.
func (s *Store) rollForward(ctx context.Context, e *journalEntry) error {
	const op = "mongostore.recover"
	coll := s.db.Collection(e.typ)
	raw, err := coll.FindOne(ctx, bson.D{{Key: fID, Value: e.id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		if e.prev != 0 {
			s.log.ErrorContext(ctx, "journaled update of a missing resource skipped", "type", e.typ)
			return nil
		}
		if _, err := coll.InsertOne(ctx, e.doc); err != nil && !mongo.IsDuplicateKeyError(err) {
			return translate(op, err)
		}
		return nil
	}
	if err != nil {
		return translate(op, err)
	}
	v, ok := raw.Lookup(fVersion).AsInt64OK()
	if !ok {
		return corrupt(nil)
	}
	switch {
	case v >= e.next:
		return nil
	case v != e.prev:
		s.log.ErrorContext(ctx, "journaled write does not follow the stored version; skipped", "type", e.typ,
			"stored", v, "journaled", e.next)
		return nil
	}
	h, err := toHistory(raw, e.id, v)
	if err != nil {
		return err
	}
	if err := s.insertHistory(ctx, op, h, e.typ); err != nil {
		return err
	}
	if _, err := coll.ReplaceOne(ctx, bson.D{{Key: fID, Value: e.id}}, e.doc); err != nil {
		return translate(op, err)
	}
	return nil
}

// recoverJournal runs at Open, before the store serves anything: it rolls
// committed transactions forward and discards uncommitted journal chunks.
func (s *Store) recoverJournal(ctx context.Context) error {
	const op = "mongostore.recover"
	if s.sessionTransactions(ctx) {
		return nil
	}
	if err := s.ensure(ctx, txlogColl); err != nil {
		return err
	}
	log := s.db.Collection(txlogColl)
	cur, err := log.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: fID, Value: 1}, {Key: jTx, Value: 1}, {Key: jChunks, Value: 1}, {Key: jAt, Value: 1}}))
	if err != nil {
		return translate(op, err)
	}
	type item struct {
		ID string        `bson:"_id"`
		Tx string        `bson:"tx"`
		N  *int64        `bson:"n"`
		At bson.DateTime `bson:"at"`
	}
	var items []item
	if err := cur.All(ctx, &items); err != nil {
		return translate(op, err)
	}
	committed := map[string]bool{}
	rolled := 0
	for _, it := range items {
		if it.N == nil {
			continue
		}
		committed[it.ID] = true
		var entries []*journalEntry
		if *it.N == 1 {
			raw, err := log.FindOne(ctx, bson.D{{Key: fID, Value: it.ID}}).Raw()
			if err != nil {
				return translate(op, err)
			}
			if _, _, inline := raw.Lookup(jWrites).BinaryOK(); inline {
				if entries, err = journalEntries(raw); err != nil {
					return err
				}
			}
		}
		for c := int64(0); c < *it.N && entries == nil; c++ {
			raw, err := log.FindOne(ctx, bson.D{{Key: fID, Value: it.ID + "/" + strconv.FormatInt(c, 10)}}).Raw()
			if err != nil {
				return translate(op, err)
			}
			es, err := journalEntries(raw)
			if err != nil {
				return err
			}
			entries = append(entries, es...)
		}
		for _, e := range entries {
			if err := s.ensure(ctx, e.typ); err != nil {
				return err
			}
			if e.prev != 0 {
				if err := s.ensure(ctx, e.typ+historySuffix); err != nil {
					return err
				}
			}
			if err := s.rollForward(ctx, e); err != nil {
				return err
			}
		}
		if _, err := log.DeleteOne(ctx, bson.D{{Key: fID, Value: it.ID}}); err != nil {
			return translate(op, err)
		}
		rolled++
	}
	discarded := 0
	for _, it := range items {
		if it.N != nil {
			continue
		}
		if !committed[it.Tx] && !s.embedded && time.Since(it.At.Time()) < staleChunkAge {
			continue // maybe another process's transaction in progress
		}
		if _, err := log.DeleteOne(ctx, bson.D{{Key: fID, Value: it.ID}}); err != nil {
			return translate(op, err)
		}
		if !committed[it.Tx] {
			discarded++
		}
	}
	if rolled > 0 || discarded > 0 {
		s.log.WarnContext(ctx, "transaction journal recovered", "rolled_forward", rolled, "discarded_chunks", discarded)
	}
	return nil
}

// journalEntries decodes a journal chunk.
func journalEntries(chunk bson.Raw) ([]*journalEntry, error) {
	_, data, ok := chunk.Lookup(jWrites).BinaryOK()
	if !ok {
		return nil, corrupt(nil)
	}
	arr, ok := bson.Raw(data).Lookup(jWrites).ArrayOK()
	if !ok {
		return nil, corrupt(nil)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, corrupt(err)
	}
	out := make([]*journalEntry, 0, len(vals))
	for _, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, corrupt(nil)
		}
		typ, ok1 := d.Lookup(jType).StringValueOK()
		prev, ok2 := d.Lookup(jPrev).AsInt64OK()
		doc, ok3 := d.Lookup(jDoc).DocumentOK()
		if !ok1 || !ok2 || !ok3 {
			return nil, corrupt(nil)
		}
		id, ok4 := doc.Lookup(fID).StringValueOK()
		next, ok5 := doc.Lookup(fVersion).AsInt64OK()
		if !ok4 || !ok5 {
			return nil, corrupt(nil)
		}
		out = append(out, &journalEntry{typ: typ, id: id, prev: prev, next: next, doc: doc})
	}
	return out, nil
}
