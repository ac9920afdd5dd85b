package mongostore

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DefaultSortParams are the search parameters whose sort keys (package
// search's "_sort.<param>.a" and "_sort.<param>.d") get a compound sort
// index on every collection of that type the store creates: the sorts
// clients commonly ask for. Any other sortable parameter still sorts
// correctly, with the sort done by MongoDB in memory over the matches
// (allowDiskUse), unless EnsureIndexes declares its paths. A collection
// holds at most 64 indexes, so not every sortable parameter (Observation
// has about thirty) can have one. docs/mongodb-indexes.md explains each.
var DefaultSortParams = map[string][]string{
	"Observation":       {"date", "code", "status"},
	"Patient":           {"family", "given", "birthdate", "name"},
	"Encounter":         {"date", "status"},
	"Condition":         {"onset-date", "recorded-date"},
	"Procedure":         {"date"},
	"MedicationRequest": {"authoredon"},
	"EpisodeOfCare":     {"date", "status"},
	"CarePlan":          {"date"},
	"Task":              {"authored-on", "status"},
	"AuditEvent":        {"date"},
	"DocumentReference": {"date"},
}

// indexModels returns the indexes collection name needs (the _id index
// always exists).
//
// A resource collection holds current documents and history documents.
// Indexes for queries of current documents are partial on
// {del: {$exists: true}} (only current documents have del), and those
// queries repeat that condition so that MongoDB may use them; the history
// indexes are partial on {rid: {$exists: true}}. So neither kind adds
// entries to the other's indexes. FerretDB does not implement partial
// indexes (its indexes serve no query but _id equality anyway): there they
// are plain.
func (s *Store) indexModels(name string) []mongo.IndexModel {
	switch {
	case name == locksColl || name == jobsColl:
		return nil // read and written by _id only
	case !isResourceCollection(name):
		return nil
	}
	models := []mongo.IndexModel{
		// _lastUpdated filters and sorts (both directions, ties by id), and
		// the current documents' part of type and system history.
		s.current(bson.D{{Key: fLU, Value: 1}, {Key: fID, Value: 1}}, "lu_asc"),
		s.current(bson.D{{Key: fLU, Value: -1}, {Key: fID, Value: 1}}, "lu_desc"),
		// Type and system history: newest first, keyset by (lu, rid, v).
		s.history(bson.D{{Key: fLU, Value: -1}, {Key: fRID, Value: 1}, {Key: fVersion, Value: -1}}, "history_order"),
		// Instance history: the versions of one resource, newest first.
		s.history(bson.D{{Key: fRID, Value: 1}, {Key: fVersion, Value: -1}}, "instance_history"),
	}
	if !s.ferret {
		// Every search value path (x.<param>.<part>): equality on tokens
		// and references, ranges on dates and numbers, anchored prefixes
		// on strings, the patient compartment. History documents have no
		// x, so a wildcard index never holds them. FerretDB accepts the
		// key but builds a useless index for it.
		models = append(models, named(bson.D{{Key: fIndex + ".$**", Value: 1}}, "search_values"))
	}
	for _, p := range DefaultSortParams[name] {
		models = append(models, s.pathIndex("_sort."+p+".a"), s.pathIndex("_sort."+p+".d"))
	}
	return models
}

// partialCurrent and partialHistory are the partial filters of the
// indexes on current and on history documents.
var (
	partialCurrent = bson.D{{Key: fDeleted, Value: bson.D{{Key: "$exists", Value: true}}}}
	partialHistory = bson.D{{Key: fRID, Value: bson.D{{Key: "$exists", Value: true}}}}
)

// current returns an index on current documents (name "" lets the server
// name it).
func (s *Store) current(keys bson.D, name string) mongo.IndexModel {
	return s.partial(keys, name, partialCurrent)
}

// history returns an index on history documents.
func (s *Store) history(keys bson.D, name string) mongo.IndexModel {
	return s.partial(keys, name, partialHistory)
}

func (s *Store) partial(keys bson.D, name string, filter bson.D) mongo.IndexModel {
	o := options.Index()
	if name != "" {
		o.SetName(name)
	}
	if !s.ferret {
		o.SetPartialFilterExpression(filter)
	}
	return mongo.IndexModel{Keys: keys, Options: o}
}

// pathIndex returns the index for an Index path: a sort path gets the
// compound index serving its sort with ties by id ascending, any other
// path a single-field index.
func (s *Store) pathIndex(p string) mongo.IndexModel {
	f := fIndex + "." + p
	if strings.HasPrefix(p, "_sort.") {
		switch {
		case strings.HasSuffix(p, ".a"):
			return s.current(bson.D{{Key: f, Value: 1}, {Key: fID, Value: 1}}, "")
		case strings.HasSuffix(p, ".d"):
			return s.current(bson.D{{Key: f, Value: -1}, {Key: fID, Value: 1}}, "")
		}
	}
	return s.current(bson.D{{Key: f, Value: 1}}, "")
}

func named(keys bson.D, name string) mongo.IndexModel {
	return mongo.IndexModel{Keys: keys, Options: options.Index().SetName(name)}
}

// createIndexes creates those of models that coll does not have yet (by
// key), in one createIndexes command. Asking only for the missing ones
// costs a listIndexes but keeps createIndexes from ever seeing an
// existing index again (FerretDB's connection handler panics on that).
func (s *Store) createIndexes(ctx context.Context, coll string, models []mongo.IndexModel) error {
	if len(models) == 0 {
		return nil
	}
	c := s.db.Collection(coll)
	cur, err := c.Indexes().List(ctx)
	if err != nil {
		return err
	}
	var have []struct {
		Key bson.D `bson:"key"`
	}
	if err := cur.All(ctx, &have); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, h := range have {
		seen[keyString(h.Key)] = true
	}
	var todo []mongo.IndexModel
	for _, m := range models {
		k := keyString(m.Keys.(bson.D))
		if !seen[k] {
			seen[k] = true
			todo = append(todo, m)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	_, err = c.Indexes().CreateMany(ctx, todo)
	return err
}

// keyString renders an index key for comparison (directions as numbers).
func keyString(d bson.D) string {
	var b strings.Builder
	for _, e := range d {
		var dir any = e.Value
		switch v := e.Value.(type) {
		case int32:
			dir = int(v)
		case int64:
			dir = int(v)
		case float64:
			dir = int(v)
		}
		fmt.Fprintf(&b, "%s:%v,", e.Key, dir)
	}
	return b.String()
}
