package fhir

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Version is the FHIR version casefhir implements.
const Version = "4.0.1"

// ContentType is the FHIR JSON media type.
const ContentType = "application/fhir+json"

// IsValidID reports whether s is a valid FHIR id: [A-Za-z0-9\-\.]{1,64}.
func IsValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// FormatETag returns the weak ETag for a version id: W/"<v>".
func FormatETag(versionID string) string { return `W/"` + versionID + `"` }

// ParseETag extracts the version id from W/"v", "v" or v. ok is false when
// the value is empty or malformed.
func ParseETag(s string) (string, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	s = strings.TrimPrefix(s, "w/")
	if strings.HasPrefix(s, `"`) {
		if len(s) < 2 || !strings.HasSuffix(s, `"`) {
			return "", false
		}
		s = s[1 : len(s)-1]
	}
	if s == "" || strings.ContainsAny(s, "\" ,") {
		return "", false
	}
	return s, true
}

// FormatInstant formats t as a FHIR instant in UTC with millisecond
// precision, e.g. 2024-01-02T03:04:05.678Z.
func FormatInstant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// Reference is a parsed FHIR reference string.
type Reference struct {
	// Base is the service base of an absolute reference ("" for relative).
	Base string
	// Type is the resource type ("" when the reference is not Type/id shaped).
	Type string
	// ID is the logical id.
	ID string
	// Version is the version id of a versioned reference (Type/id/_history/v).
	Version string
	// Fragment is the local id of a contained reference ("#x"), without '#'.
	Fragment string
	// URN is the whole reference when it is a urn:uuid: or urn:oid:.
	URN string
	// Raw is the input.
	Raw string
}

// ParseReference parses a reference string: "Type/id", "Type/id/_history/v",
// an absolute URL ending in Type/id[/_history/v], "#frag", or a URN.
// ok is false when s matches none of these shapes.
func ParseReference(s string) (Reference, bool) {
	r := Reference{Raw: s}
	switch {
	case s == "":
		return r, false
	case strings.HasPrefix(s, "#"):
		r.Fragment = s[1:]
		return r, true
	case strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "urn:oid:"):
		r.URN = s
		return r, true
	}
	path := s
	if i := strings.Index(s, "://"); i >= 0 {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return r, false
		}
		path = strings.TrimPrefix(u.Path, "/")
		parts := strings.Split(path, "/")
		// find the trailing Type/id[/_history/v]
		n := len(parts)
		var typeAt int
		switch {
		case n >= 4 && parts[n-2] == "_history":
			typeAt = n - 4
		case n >= 2:
			typeAt = n - 2
		default:
			return r, false
		}
		r.Base = u.Scheme + "://" + u.Host
		if typeAt > 0 {
			r.Base += "/" + strings.Join(parts[:typeAt], "/")
		}
		path = strings.Join(parts[typeAt:], "/")
	}
	parts := strings.Split(path, "/")
	switch {
	case len(parts) == 2:
	case len(parts) == 4 && parts[2] == "_history" && IsValidID(parts[3]):
		r.Version = parts[3]
	default:
		return r, false
	}
	if !IsResourceType(parts[0]) || !IsValidID(parts[1]) {
		return r, false
	}
	r.Type, r.ID = parts[0], parts[1]
	return r, true
}

// Local returns "Type/id" for a Type/id shaped reference.
func (r Reference) Local() string {
	if r.Type == "" {
		return ""
	}
	return r.Type + "/" + r.ID
}

// VersionString formats an integer version id.
func VersionString(v int64) string { return strconv.FormatInt(v, 10) }
