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
func (s *Store) indexModels(name string) []mongo.IndexModel {
	switch {
	case name == locksColl || name == jobsColl:
		return nil // read and written by _id only
	case strings.HasSuffix(name, historySuffix):
		return []mongo.IndexModel{
			// Type and system history: newest first, keyset by (lu, rid, v).
			named(bson.D{{Key: fLU, Value: -1}, {Key: fRID, Value: 1}, {Key: fVersion, Value: -1}}, "history_order"),
			// Instance history: the versions of one resource, newest first.
			named(bson.D{{Key: fRID, Value: 1}, {Key: fVersion, Value: -1}}, "instance_history"),
		}
	case !isResourceCollection(name):
		return nil
	}
	models := []mongo.IndexModel{
		// _lastUpdated filters and sorts (both directions, ties by id), and
		// the current collections' part of type and system history.
		named(bson.D{{Key: fLU, Value: 1}, {Key: fID, Value: 1}}, "lu_asc"),
		named(bson.D{{Key: fLU, Value: -1}, {Key: fID, Value: 1}}, "lu_desc"),
	}
	if !s.ferret {
		// Every search value path (x.<param>.<part>): equality on tokens
		// and references, ranges on dates and numbers, anchored prefixes
		// on strings, the patient compartment. FerretDB accepts the key
		// but builds a useless index for it.
		models = append(models, named(bson.D{{Key: fIndex + ".$**", Value: 1}}, "search_values"))
	}
	for _, p := range DefaultSortParams[name] {
		models = append(models, pathIndex("_sort."+p+".a"), pathIndex("_sort."+p+".d"))
	}
	return models
}

// pathIndex returns the index for an Index path: a sort path gets the
// compound index serving its sort with ties by id ascending, any other
// path a single-field index.
func pathIndex(p string) mongo.IndexModel {
	f := fIndex + "." + p
	if strings.HasPrefix(p, "_sort.") {
		switch {
		case strings.HasSuffix(p, ".a"):
			return mongo.IndexModel{Keys: bson.D{{Key: f, Value: 1}, {Key: fID, Value: 1}}}
		case strings.HasSuffix(p, ".d"):
			return mongo.IndexModel{Keys: bson.D{{Key: f, Value: -1}, {Key: fID, Value: 1}}}
		}
	}
	return mongo.IndexModel{Keys: bson.D{{Key: f, Value: 1}}}
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
