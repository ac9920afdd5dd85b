package mongostore

import (
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Field names of a stored document.
const (
	fID      = "_id"
	fVersion = "v"
	fLU      = "lu"
	fDeleted = "del"
	fJSON    = "j"
	fIndex   = "x"
	fRID     = "rid"  // history documents only: the FHIR id
	fHDel    = "hdel" // history documents: the tombstone flag
	fHIndex  = "hx"   // history documents: the search index
)

// historySuffix names the history collections of earlier versions of this
// store, which kept non-current versions in <Type>_history; such names
// are never resource types.
const historySuffix = "_history"

// historyPrefix starts the _id of a history document. It sorts after
// every character of a FHIR id ([A-Za-z0-9.-]), so a walk of the _id
// index in id order meets the current documents first, and a history _id
// is never a FHIR id.
const historyPrefix = "~"

// historyID is the _id of a non-current version's document in <Type>.
func historyID(id string, v int64) string {
	return historyPrefix + id + "/" + strconv.FormatInt(v, 10)
}

// ms truncates t to BSON date precision, in UTC.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

// encode returns r as a current-version document.
func encode(r *store.Resource) bson.D {
	return bson.D{
		{Key: fID, Value: r.ID},
		{Key: fVersion, Value: r.VersionID},
		{Key: fLU, Value: bson.NewDateTimeFromTime(r.LastUpdated)},
		{Key: fDeleted, Value: r.Deleted},
		{Key: fJSON, Value: string(r.JSON)},
		{Key: fIndex, Value: indexDoc(r.Index)},
	}
}

// encodeHistory returns r as a history document of <Type>: it has no
// del and no x, the fields every query of current versions (and every
// index on them) selects on, but hdel and hx; rid is the FHIR id.
func encodeHistory(r *store.Resource) bson.D {
	return bson.D{
		{Key: fID, Value: historyID(r.ID, r.VersionID)},
		{Key: fRID, Value: r.ID},
		{Key: fVersion, Value: r.VersionID},
		{Key: fLU, Value: bson.NewDateTimeFromTime(r.LastUpdated)},
		{Key: fHDel, Value: r.Deleted},
		{Key: fJSON, Value: string(r.JSON)},
		{Key: fHIndex, Value: indexDoc(r.Index)},
	}
}

// indexDoc converts an index tree for BSON: times become BSON dates, maps
// keep their keys (order does not matter to queries).
func indexDoc(m map[string]any) bson.M {
	out := make(bson.M, len(m))
	for k, v := range m {
		out[k] = indexValue(v)
	}
	return out
}

func indexValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return indexDoc(x)
	case []any:
		a := make(bson.A, len(x))
		for i, e := range x {
			a[i] = indexValue(e)
		}
		return a
	case time.Time:
		return bson.NewDateTimeFromTime(x)
	}
	return v
}

// decode turns a stored document (current or history) into a Resource.
func decode(typ string, raw bson.Raw, withJSON bool) (*store.Resource, error) {
	r := &store.Resource{Type: typ}
	elems, err := raw.Elements()
	if err != nil {
		return nil, corrupt(err)
	}
	for _, e := range elems {
		v := e.Value()
		switch e.Key() {
		case fID:
			id, ok := v.StringValueOK()
			if !ok {
				return nil, corrupt(nil)
			}
			if r.ID == "" {
				r.ID = id
			}
		case fRID:
			id, ok := v.StringValueOK()
			if !ok {
				return nil, corrupt(nil)
			}
			r.ID = id // a history document: _id is "~<id>/<v>"
		case fVersion:
			n, ok := v.AsInt64OK()
			if !ok {
				return nil, corrupt(nil)
			}
			r.VersionID = n
		case fLU:
			dt, ok := v.DateTimeOK()
			if !ok {
				return nil, corrupt(nil)
			}
			r.LastUpdated = time.UnixMilli(dt).UTC()
		case fDeleted, fHDel:
			r.Deleted, _ = v.BooleanOK()
		case fJSON:
			if withJSON {
				if s, ok := v.StringValueOK(); ok && s != "" {
					r.JSON = []byte(s)
				}
			}
		case fIndex, fHIndex:
			d, ok := v.DocumentOK()
			if !ok {
				return nil, corrupt(nil)
			}
			m, err := rawDoc(d)
			if err != nil {
				return nil, corrupt(err)
			}
			r.Index = m
		}
	}
	return r, nil
}

func corrupt(cause error) error {
	return outcome.Wrap(driverError(fmt.Sprintf("undecodable document (%T)", cause), 0), outcome.Exception,
		"mongostore.decode", "stored document is malformed")
}

// rawDoc converts a BSON document to map[string]any with store.Resource.Index
// types: strings, float64 (from any number), bool, time.Time (UTC), nil,
// nested maps and []any.
func rawDoc(d bson.Raw) (map[string]any, error) {
	elems, err := d.Elements()
	if err != nil {
		return nil, err
	}
	m := make(map[string]any, len(elems))
	for _, e := range elems {
		v, err := rawValue(e.Value())
		if err != nil {
			return nil, err
		}
		m[e.Key()] = v
	}
	return m, nil
}

func rawValue(v bson.RawValue) (any, error) {
	switch v.Type {
	case bson.TypeString:
		return v.StringValue(), nil
	case bson.TypeDouble, bson.TypeInt32, bson.TypeInt64:
		return v.AsFloat64(), nil
	case bson.TypeDecimal128:
		f, err := strconv.ParseFloat(v.Decimal128().String(), 64)
		return f, err
	case bson.TypeBoolean:
		return v.Boolean(), nil
	case bson.TypeDateTime:
		return time.UnixMilli(v.DateTime()).UTC(), nil
	case bson.TypeNull, bson.TypeUndefined:
		return nil, nil
	case bson.TypeEmbeddedDocument:
		return rawDoc(v.Document())
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return nil, err
		}
		a := make([]any, len(vals))
		for i, e := range vals {
			if a[i], err = rawValue(e); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unsupported BSON type %v", v.Type)
}
