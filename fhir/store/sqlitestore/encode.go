package sqlitestore

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// Value kinds, part of an interned path: a comparison only meets values
// of its own kind.
const (
	kString = 's'
	kNumber = 'n'
	kTime   = 't'
	kBool   = 'b'
	kNull   = 'z' // a null leaf (Eq nil, Exists)
	kEmpty  = 'x' // an empty array or object (Exists only)
)

// Index blobs: a small tagged binary form of the JSON-like index tree that
// gives back the same Go types (time.Time in UTC included).
const (
	tMap   = 'm'
	tArr   = 'a'
	tStr   = 's'
	tNum   = 'f'
	tTime  = 't'
	tTrue  = 'T'
	tFalse = 'F'
	tNil   = 'n'
)

var errCorrupt = errors.New("corrupt index blob")

func encodeIndex(m map[string]any) []byte {
	if len(m) == 0 {
		return nil
	}
	return appendValue(make([]byte, 0, 256), m)
}

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case map[string]any:
		b = append(b, tMap)
		b = binary.AppendUvarint(b, uint64(len(x)))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = appendValue(b, x[k])
		}
	case []any:
		b = append(b, tArr)
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, e := range x {
			b = appendValue(b, e)
		}
	case string:
		b = append(b, tStr)
		b = binary.AppendUvarint(b, uint64(len(x)))
		b = append(b, x...)
	case time.Time:
		b = append(b, tTime)
		b = binary.AppendVarint(b, x.Unix())
		b = binary.AppendUvarint(b, uint64(x.Nanosecond()))
	case bool:
		if x {
			return append(b, tTrue)
		}
		return append(b, tFalse)
	case nil:
		b = append(b, tNil)
	default:
		f, ok := store.Number(v)
		if !ok {
			return append(b, tNil) // not an index value
		}
		b = append(b, tNum)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	return b
}

func decodeIndex(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	v, rest, err := readValue(b)
	if err != nil || len(rest) != 0 {
		return nil, errCorrupt
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errCorrupt
	}
	return m, nil
}

func readValue(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errCorrupt
	}
	tag, b := b[0], b[1:]
	switch tag {
	case tMap, tArr:
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) {
			return nil, nil, errCorrupt
		}
		b = b[k:]
		if tag == tArr {
			a := make([]any, n)
			for i := range a {
				var err error
				if a[i], b, err = readValue(b); err != nil {
					return nil, nil, err
				}
			}
			return a, b, nil
		}
		m := make(map[string]any, n)
		for range n {
			var key string
			var err error
			if key, b, err = readString(b); err != nil {
				return nil, nil, err
			}
			if m[key], b, err = readValue(b); err != nil {
				return nil, nil, err
			}
		}
		return m, b, nil
	case tStr:
		return readStringAny(b)
	case tNum:
		if len(b) < 8 {
			return nil, nil, errCorrupt
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:], nil
	case tTime:
		sec, k := binary.Varint(b)
		if k <= 0 {
			return nil, nil, errCorrupt
		}
		b = b[k:]
		ns, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, nil, errCorrupt
		}
		return time.Unix(sec, int64(ns)).UTC(), b[k:], nil
	case tTrue:
		return true, b, nil
	case tFalse:
		return false, b, nil
	case tNil:
		return nil, b, nil
	}
	return nil, nil, errCorrupt
}

func readStringAny(b []byte) (any, []byte, error) {
	s, rest, err := readString(b)
	return s, rest, err
}

func readString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, errCorrupt
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}

// leaf is one search value row before its path is interned.
type leaf struct {
	path string
	kind byte
	v    any // string, float64, int64 (ms or 0/1)
}

// flatten lists the leaves of an index tree the way store.Filter.Match
// reaches them: maps by key, arrays by element (elements that are arrays
// are not traversed), with a kNull row for nil and a kEmpty row for an
// empty array or object.
func flatten(out []leaf, node any, path string) []leaf {
	switch x := node.(type) {
	case map[string]any:
		if len(x) == 0 && path != "" {
			return append(out, leaf{path, kEmpty, int64(0)})
		}
		for k, v := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			out = flatten(out, v, p)
		}
	case []any:
		if len(x) == 0 {
			return append(out, leaf{path, kEmpty, int64(0)})
		}
		for _, e := range x {
			if _, nested := e.([]any); nested {
				continue
			}
			out = flatten(out, e, path)
		}
	default:
		if l, ok := scalar(node); ok {
			l.path = path
			out = append(out, l)
		}
	}
	return out
}

// scalar returns the kind and SQL value of an index scalar.
func scalar(v any) (leaf, bool) {
	switch x := v.(type) {
	case nil:
		return leaf{kind: kNull, v: int64(0)}, true
	case string:
		return leaf{kind: kString, v: x}, true
	case time.Time:
		return leaf{kind: kTime, v: msOf(x)}, true
	case bool:
		if x {
			return leaf{kind: kBool, v: int64(1)}, true
		}
		return leaf{kind: kBool, v: int64(0)}, true
	}
	if f, ok := store.Number(v); ok && !math.IsNaN(f) {
		return leaf{kind: kNumber, v: f}, true
	}
	return leaf{}, false
}

// msOf is t as Unix milliseconds (floor), the precision of stored times.
func msOf(t time.Time) int64 { return t.UnixMilli() }

// numericSegment reports whether a dotted path has an array-index segment,
// which only store.Filter.Match evaluates exactly.
func numericSegment(path string) bool {
	start := 0
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == '.' {
			if _, err := strconv.Atoi(path[start:i]); err == nil {
				return true
			}
			start = i + 1
		}
	}
	return false
}
