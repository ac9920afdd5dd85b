package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const loadUsage = `Usage: casefhir load [flags] PATH...

Uploads FHIR R4 JSON to a server: resource files (.json), Bundles and NDJSON
files (.ndjson, one resource per line), or folders of them (recursively).
Transaction and batch Bundles are sent as they are; other Bundles
(collection, searchset, ...) are unpacked into their resources. Loose
resources are sent in transactions of --batch-size entries, --parallel of
them at a time: PUT Type/id when
the resource has an id (so loading again updates instead of duplicating),
POST otherwise. When a transaction fails, its resources are sent again as a
batch so that one bad resource does not hold back the others; resources
refused for a reason that loading order may explain (422, 404, 409: e.g. a
reference to a case not loaded yet) are sent once more at the end.

Flags:
`

// loadOptions are the load command's settings.
type loadOptions struct {
	base      string
	token     string
	batchSize int
	parallel  int
	client    *http.Client
	progress  io.Writer
	terminal  bool
	// retry holds resources refused for what may be an ordering problem
	// (e.g. a reference to a case loaded later): they are sent once more
	// at the end.
	retry   []loadItem
	retryMu sync.Mutex
}

// loadStats is what a load did.
type loadStats struct {
	mu                       sync.Mutex
	created, updated, failed int
	files, filesDone         int
	reasons                  []string
}

func (s *loadStats) fail(where, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed++
	s.reasons = append(s.reasons, where+": "+why)
}

func (s *loadStats) count(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case status == http.StatusCreated:
		s.created++
	case status >= 200 && status < 300:
		s.updated++
	}
}

// loadItem is one resource to send, with where it came from.
type loadItem struct {
	where    string
	typ, id  string
	resource json.RawMessage
}

func load(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fset, base, token := clientFlags("load", loadUsage, getenv, stderr)
	batch := envFlag(fset, getenv, "batch-size", "CASEFHIR_BATCH_SIZE", "100", "resources per transaction")
	parallel := envFlag(fset, getenv, "parallel", "CASEFHIR_LOAD_PARALLEL", "2", "transactions in flight at once")
	if code, ok := parseFlags(fset, args); !ok {
		return code
	}
	n, err := strconv.Atoi(*batch)
	if err != nil || n < 1 {
		fmt.Fprintln(stderr, "casefhir load: --batch-size must be a positive integer")
		return 2
	}
	if fset.NArg() == 0 {
		fmt.Fprintln(stderr, "casefhir load: no PATH given")
		fset.Usage()
		return 2
	}
	par, err := strconv.Atoi(*parallel)
	if err != nil || par < 1 {
		fmt.Fprintln(stderr, "casefhir load: --parallel must be a positive integer")
		return 2
	}
	o := &loadOptions{base: strings.TrimSuffix(*base, "/"), token: *token, batchSize: n, parallel: par,
		client: &http.Client{Timeout: 10 * time.Minute}, progress: stderr, terminal: isTerminal(stderr)}
	files, err := loadFiles(fset.Args())
	if err != nil {
		fmt.Fprintf(stderr, "casefhir load: %v\n", err)
		return 2
	}
	st := &loadStats{files: len(files)}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); o.report(st, done) }()
	err = o.run(ctx, files, st)
	close(done)
	wg.Wait()

	fmt.Fprintf(stdout, "loaded %d files: %d created, %d updated, %d failed\n", st.filesDone, st.created, st.updated, st.failed)
	const maxReasons = 100
	for i, r := range st.reasons {
		if i == maxReasons {
			fmt.Fprintf(stdout, "  ... and %d more failures\n", len(st.reasons)-maxReasons)
			break
		}
		fmt.Fprintf(stdout, "  failed: %s\n", r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "casefhir load: %v\n", err)
		return 1
	}
	if st.failed > 0 {
		return 1
	}
	return 0
}

// loadFiles expands the paths into .json/.ndjson files, folders walked
// recursively in name order.
func loadFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isLoadable(path) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

func isLoadable(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json", ".ndjson", ".jsonl":
		return true
	}
	return false
}

func isNDJSON(path string) bool {
	e := strings.ToLower(filepath.Ext(path))
	return e == ".ndjson" || e == ".jsonl"
}

// run sends every file; loose resources are batched across files.
func (o *loadOptions) run(ctx context.Context, files []string, st *loadStats) error {
	var pending []loadItem
	keys := map[string]bool{}
	// Up to o.parallel transactions are in flight: the server decodes and
	// validates one while it stores another.
	sem := make(chan struct{}, max(o.parallel, 1))
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var sendErr error
	failed := func() error {
		errMu.Lock()
		defer errMu.Unlock()
		return sendErr
	}
	flush := func() error {
		if len(pending) == 0 {
			return failed()
		}
		items := pending
		pending, keys = nil, map[string]bool{}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := o.sendResources(ctx, items, st, false); err != nil {
				errMu.Lock()
				if sendErr == nil {
					sendErr = err
				}
				errMu.Unlock()
			}
		}()
		return failed()
	}
	defer wg.Wait()
	add := func(it loadItem) error {
		k := it.typ + "/" + it.id
		if it.id != "" && keys[k] {
			// One resource may appear once per transaction.
			if err := flush(); err != nil {
				return err
			}
		}
		pending = append(pending, it)
		if it.id != "" {
			keys[k] = true
		}
		if len(pending) >= o.batchSize {
			return flush()
		}
		return nil
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := o.loadFile(ctx, f, st, add); err != nil {
			return err
		}
		st.mu.Lock()
		st.filesDone++
		st.mu.Unlock()
	}
	if err := flush(); err != nil {
		return err
	}
	wg.Wait()
	if err := failed(); err != nil {
		return err
	}
	again := o.retry
	o.retry = nil
	for i := 0; i < len(again); i += o.batchSize {
		if err := o.sendResources(ctx, again[i:min(i+o.batchSize, len(again))], st, true); err != nil {
			return err
		}
	}
	return nil
}

// loadFile reads one file, sending Bundles of type transaction or batch
// at once and handing every other resource to add.
func (o *loadOptions) loadFile(ctx context.Context, path string, st *loadStats, add func(loadItem) error) error {
	f, err := os.Open(path)
	if err != nil {
		st.fail(path, err.Error())
		return nil
	}
	defer f.Close()
	if !isNDJSON(path) {
		b, err := io.ReadAll(f)
		if err != nil {
			st.fail(path, err.Error())
			return nil
		}
		return o.loadResource(ctx, path, b, st, add)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := o.loadResource(ctx, path+":"+strconv.Itoa(line), bytes.Clone(b), st, add); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		st.fail(path, err.Error())
	}
	return nil
}

func (o *loadOptions) loadResource(ctx context.Context, where string, b []byte, st *loadStats, add func(loadItem) error) error {
	var head struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if err := json.Unmarshal(b, &head); err != nil || head.ResourceType == "" {
		st.fail(where, "not a FHIR JSON resource")
		return nil
	}
	if head.ResourceType == "Bundle" {
		var bundle struct {
			Type  string `json:"type"`
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &bundle); err != nil {
			st.fail(where, "not a valid Bundle")
			return nil
		}
		switch bundle.Type {
		case "transaction", "batch":
			return o.sendBundle(ctx, where, b, len(bundle.Entry), st)
		case "collection", "searchset", "history":
			for i, e := range bundle.Entry {
				if len(e.Resource) == 0 {
					continue
				}
				if err := o.loadResource(ctx, where+"#entry["+strconv.Itoa(i)+"]", e.Resource, st, add); err != nil {
					return err
				}
			}
			return nil
		}
		// document, message, ...: the Bundle is itself the resource.
	}
	return add(loadItem{where: where, typ: head.ResourceType, id: head.ID, resource: b})
}

// bundleEntry is an entry the loader sends.
type loadEntry struct {
	Resource json.RawMessage `json:"resource"`
	Request  struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
}

// sendResources sends items as one transaction; if it fails, as a batch,
// so that every item succeeds or fails with its own reason.
func (o *loadOptions) sendResources(ctx context.Context, items []loadItem, st *loadStats, last bool) error {
	build := func(typ string) []byte {
		es := make([]loadEntry, len(items))
		for i, it := range items {
			es[i].Resource = it.resource
			if it.id != "" {
				es[i].Request.Method, es[i].Request.URL = "PUT", it.typ+"/"+it.id
			} else {
				es[i].Request.Method, es[i].Request.URL = "POST", it.typ
			}
		}
		b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": typ, "entry": es})
		return b
	}
	status, body, err := o.post(ctx, build("transaction"))
	if err != nil {
		return err
	}
	if status == http.StatusOK {
		if statuses, _, ok := entryStatuses(body); ok && len(statuses) == len(items) {
			for _, s := range statuses {
				st.count(s)
			}
			return nil
		}
	}
	// The transaction failed as a whole: find out which resources fail.
	status, body, err = o.post(ctx, build("batch"))
	if err != nil {
		return err
	}
	statuses, reasons, ok := entryStatuses(body)
	if status != http.StatusOK || !ok || len(statuses) != len(items) {
		why := strconv.Itoa(status) + " " + outcomeText(body)
		for _, it := range items {
			st.fail(it.where, why)
		}
		return nil
	}
	for i, s := range statuses {
		switch {
		case !last && (s == http.StatusUnprocessableEntity || s == http.StatusNotFound || s == http.StatusConflict):
			o.retryMu.Lock()
			o.retry = append(o.retry, items[i])
			o.retryMu.Unlock()
		case s >= 400:
			st.fail(items[i].where, reasons[i])
		default:
			st.count(s)
		}
	}
	return nil
}

// sendBundle posts a transaction or batch Bundle as it is.
func (o *loadOptions) sendBundle(ctx context.Context, where string, b []byte, entries int, st *loadStats) error {
	status, body, err := o.post(ctx, b)
	if err != nil {
		return err
	}
	statuses, reasons, ok := entryStatuses(body)
	if status != http.StatusOK || !ok {
		why := strconv.Itoa(status) + " " + outcomeText(body)
		for i := 0; i < max(entries, 1); i++ {
			st.fail(where+"#entry["+strconv.Itoa(i)+"]", why)
		}
		return nil
	}
	for i, s := range statuses {
		if s >= 400 {
			st.fail(where+"#entry["+strconv.Itoa(i)+"]", reasons[i])
			continue
		}
		st.count(s)
	}
	return nil
}

// post sends a Bundle to the base. Only transport problems are errors.
func (o *loadOptions) post(ctx context.Context, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.base, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("POST %s: %w", o.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("POST %s: %w", o.base, err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return 0, nil, fmt.Errorf("POST %s: %d %s", o.base, resp.StatusCode, outcomeText(b))
	}
	return resp.StatusCode, b, nil
}

// entryStatuses reads the status (and, for failures, the outcome text) of
// each entry of a batch-response or transaction-response Bundle.
func entryStatuses(body []byte) ([]int, []string, bool) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &b) != nil || b.ResourceType != "Bundle" {
		return nil, nil, false
	}
	statuses := make([]int, len(b.Entry))
	reasons := make([]string, len(b.Entry))
	for i, e := range b.Entry {
		code, _, _ := strings.Cut(e.Response.Status, " ")
		statuses[i], _ = strconv.Atoi(code)
		if statuses[i] >= 400 || statuses[i] == 0 {
			reasons[i] = e.Response.Status + " " + outcomeText(e.Response.Outcome)
		}
	}
	return statuses, reasons, true
}

// outcomeText summarises an OperationOutcome (details, diagnostics and
// expression of each issue).
func outcomeText(body []byte) string {
	var oo struct {
		Issue []struct {
			Code    string `json:"code"`
			Details struct {
				Text string `json:"text"`
			} `json:"details"`
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || len(oo.Issue) == 0 {
		return strings.TrimSpace(string(body[:min(len(body), 200)]))
	}
	var parts []string
	for _, is := range oo.Issue {
		s := is.Code
		if is.Details.Text != "" {
			s += ": " + is.Details.Text
		}
		if is.Diagnostics != "" {
			s += " (" + is.Diagnostics + ")"
		}
		if len(is.Expression) > 0 {
			s += " at " + strings.Join(is.Expression, ", ")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// report draws a progress bar on a terminal, or prints a line every few
// seconds otherwise, until done.
func (o *loadOptions) report(st *loadStats, done <-chan struct{}) {
	every := 5 * time.Second
	if o.terminal {
		every = 200 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			o.draw(st, true)
			return
		case <-t.C:
			o.draw(st, false)
		}
	}
}

func (o *loadOptions) draw(st *loadStats, final bool) {
	st.mu.Lock()
	files, done, ok, failed := st.files, st.filesDone, st.created+st.updated, st.failed
	st.mu.Unlock()
	if !o.terminal {
		fmt.Fprintf(o.progress, "load: %d/%d files, %d resources stored, %d failed\n", done, files, ok, failed)
		return
	}
	const width = 30
	fill := width
	if files > 0 {
		fill = width * done / files
	}
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	fmt.Fprintf(o.progress, "\r[%s] %d/%d files, %d stored, %d failed", bar, done, files, ok, failed)
	if final {
		fmt.Fprintln(o.progress)
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
