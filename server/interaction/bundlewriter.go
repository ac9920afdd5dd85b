package interaction

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// BundleWriter builds a Bundle's JSON by splicing stored resource JSON in
// verbatim: no codec runs on the read path.
type BundleWriter struct {
	buf     bytes.Buffer
	entries int
}

// Link is a Bundle.link.
type Link struct {
	Relation, URL string
}

// EntryRequest is Bundle.entry.request.
type EntryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

// EntryResponse is Bundle.entry.response.
type EntryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// Entry is one Bundle.entry.
type Entry struct {
	FullURL string
	// Resource is raw resource JSON (may be nil).
	Resource []byte
	// SearchMode is "match", "include" or "outcome" (searchset only).
	SearchMode string
	Request    *EntryRequest
	Response   *EntryResponse
}

// NewBundleWriter starts a Bundle of the given type. total < 0 leaves
// Bundle.total out.
func NewBundleWriter(typ, id, lastUpdated string, total int, links []Link) *BundleWriter {
	b := &BundleWriter{}
	b.buf.WriteString(`{"resourceType":"Bundle"`)
	if id != "" {
		b.buf.WriteString(`,"id":`)
		writeString(&b.buf, id)
	}
	if lastUpdated != "" {
		b.buf.WriteString(`,"meta":{"lastUpdated":`)
		writeString(&b.buf, lastUpdated)
		b.buf.WriteString(`}`)
	}
	b.buf.WriteString(`,"type":`)
	writeString(&b.buf, typ)
	if total >= 0 {
		b.buf.WriteString(`,"total":`)
		b.buf.WriteString(strconv.Itoa(total))
	}
	if len(links) > 0 {
		b.buf.WriteString(`,"link":[`)
		for i, l := range links {
			if i > 0 {
				b.buf.WriteByte(',')
			}
			b.buf.WriteString(`{"relation":`)
			writeString(&b.buf, l.Relation)
			b.buf.WriteString(`,"url":`)
			writeString(&b.buf, l.URL)
			b.buf.WriteByte('}')
		}
		b.buf.WriteByte(']')
	}
	b.buf.WriteString(`,"entry":[`)
	return b
}

// Add appends an entry.
func (b *BundleWriter) Add(e Entry) {
	if b.entries > 0 {
		b.buf.WriteByte(',')
	}
	b.entries++
	b.buf.WriteByte('{')
	sep := ""
	if e.FullURL != "" {
		b.buf.WriteString(`"fullUrl":`)
		writeString(&b.buf, e.FullURL)
		sep = ","
	}
	if len(e.Resource) > 0 {
		b.buf.WriteString(sep + `"resource":`)
		b.buf.Write(e.Resource)
		sep = ","
	}
	if e.SearchMode != "" {
		b.buf.WriteString(sep + `"search":{"mode":`)
		writeString(&b.buf, e.SearchMode)
		b.buf.WriteByte('}')
		sep = ","
	}
	if e.Request != nil {
		js, _ := json.Marshal(e.Request)
		b.buf.WriteString(sep + `"request":`)
		b.buf.Write(js)
		sep = ","
	}
	if e.Response != nil {
		js, _ := json.Marshal(e.Response)
		b.buf.WriteString(sep + `"response":`)
		b.buf.Write(js)
	}
	b.buf.WriteByte('}')
}

// Len returns the number of entries added.
func (b *BundleWriter) Len() int { return b.entries }

// Bytes closes the Bundle and returns its JSON. An empty Bundle has no
// entry element.
func (b *BundleWriter) Bytes() []byte {
	out := b.buf.Bytes()
	if b.entries == 0 {
		out = bytes.TrimSuffix(out, []byte(`,"entry":[`))
		return append(out, '}')
	}
	return append(out, ']', '}')
}

// writeString writes s as a JSON string, without HTML escaping (links
// keep their '&').
func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	// Encode ends with a newline.
	buf.Truncate(buf.Len() - 1)
}
