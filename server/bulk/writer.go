package bulk

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
)

// ndjsonWriter writes one resource per line (https://github.com/ndjson/ndjson-spec)
// through a fixed buffer, so memory does not grow with the file.
type ndjsonWriter struct {
	f   *os.File
	bw  *bufio.Writer
	buf bytes.Buffer // scratch for the rare JSON that is not on one line
	n   int64
}

// createNDJSON creates (or truncates) path.
func createNDJSON(path string) (*ndjsonWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &ndjsonWriter{f: f, bw: bufio.NewWriterSize(f, 256<<10)}, nil
}

// write appends one JSON value as a line. Stored JSON is compact already;
// a value with a line break is compacted first.
func (w *ndjsonWriter) write(js []byte) error {
	if bytes.IndexByte(js, '\n') >= 0 || bytes.IndexByte(js, '\r') >= 0 {
		w.buf.Reset()
		if err := json.Compact(&w.buf, js); err != nil {
			return err
		}
		js = w.buf.Bytes()
	}
	if _, err := w.bw.Write(js); err != nil {
		return err
	}
	w.n++
	return w.bw.WriteByte('\n')
}

// flush writes the buffer to the file.
func (w *ndjsonWriter) flush() error { return w.bw.Flush() }

// close flushes, syncs and closes: a completed file is durable before the
// job records it.
func (w *ndjsonWriter) close() error {
	err := w.bw.Flush()
	if e := w.f.Sync(); err == nil {
		err = e
	}
	if e := w.f.Close(); err == nil {
		err = e
	}
	return err
}

// abort closes without syncing (the file is discarded or rewritten).
func (w *ndjsonWriter) abort() { _ = w.f.Close() }
