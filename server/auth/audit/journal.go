package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/server/interaction"
)

// journal is the durable local queue of the audit trail: a directory of
// append-only segment files of one line per record ({"id":..,"body":..}),
// each append made durable (fdatasync) before the requests it carries are
// answered. One process owns the segments named after its owner id while
// it holds an exclusive lock on <owner>.lock; the segments of an owner
// whose lock can be taken belong to a process that ended (or crashed) and
// are taken over at start. A segment is deleted once all its records are
// in the store.
type journal struct {
	dir   string
	owner string
	lock  *os.File
	mu    sync.Mutex // guards f and seq
	f     *os.File
	seq   int
}

const (
	segmentExt = ".jnl"
	lockExt    = ".lock"
)

// openJournal opens a journal in dir and returns the records left by
// ended processes, with the segment files they came from (delete them once
// the records are stored).
func openJournal(dir string) (*journal, []Record, []string, error) {
	const op = "audit.openJournal"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, outcome.Wrap(err, outcome.Exception, op, "cannot create the audit journal directory")
	}
	j := &journal{dir: dir, owner: interaction.NewUUID()}
	lock, err := os.OpenFile(filepath.Join(dir, j.owner+lockExt), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, nil, outcome.Wrap(err, outcome.Exception, op, "cannot create the audit journal lock")
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, nil, nil, outcome.Wrap(err, outcome.Exception, op, "cannot lock the audit journal")
	}
	j.lock = lock
	recs, files, err := j.takeOver()
	if err != nil {
		_ = j.close(false)
		return nil, nil, nil, err
	}
	if err := j.rotateLocked(); err != nil {
		_ = j.close(false)
		return nil, nil, nil, err
	}
	return j, recs, files, nil
}

// takeOver reads the segments of owners whose lock is free (processes that
// ended), removing their lock files.
func (j *journal) takeOver() ([]Record, []string, error) {
	const op = "audit.journal.takeOver"
	locks, err := filepath.Glob(filepath.Join(j.dir, "*"+lockExt))
	if err != nil {
		return nil, nil, outcome.Wrap(err, outcome.Exception, op, "cannot list the audit journal")
	}
	var recs []Record
	var files []string
	for _, lp := range locks {
		owner := strings.TrimSuffix(filepath.Base(lp), lockExt)
		if owner == j.owner {
			continue
		}
		f, err := os.OpenFile(lp, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			_ = f.Close() // a live process owns it
			continue
		}
		segs, _ := filepath.Glob(filepath.Join(j.dir, owner+"-*"+segmentExt))
		for _, sp := range segs {
			rs, err := readSegment(sp)
			if err != nil {
				_ = f.Close()
				return nil, nil, err
			}
			recs = append(recs, rs...)
			files = append(files, sp)
		}
		// Adopt the dead owner's segments: name them ours so that they
		// are not taken over twice, then drop its lock.
		for i, sp := range files[len(files)-len(segs):] {
			np := filepath.Join(j.dir, j.owner+"-adopted-"+owner+"-"+strconv.Itoa(i)+segmentExt)
			if err := os.Rename(sp, np); err == nil {
				files[len(files)-len(segs)+i] = np
			}
		}
		_ = os.Remove(lp)
		_ = f.Close()
	}
	return recs, files, nil
}

// readSegment reads the records of one segment. A last line cut short by
// a crash was never made durable, so never acknowledged: it is skipped.
func readSegment(path string) ([]Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, outcome.Wrap(err, outcome.Exception, "audit.readSegment", "cannot read an audit journal segment")
	}
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.ID == "" || len(r.Body) == 0 {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// append writes recs to the current segment and makes them durable.
//
// then, when set, runs under the journal's lock once the records are
// synced: what it records about them (the Recorder's backlog) changes
// together with the segment they are in, so a rotation never takes a
// segment whose records it does not also take.
func (j *journal) append(recs []Record, then func()) error {
	// The bodies are the Recorder's own compact JSON (no raw newlines):
	// written as they are, without re-encoding.
	var buf bytes.Buffer
	for _, r := range recs {
		buf.WriteString(`{"id":"`)
		buf.WriteString(r.ID)
		buf.WriteString(`","body":`)
		buf.Write(r.Body)
		buf.WriteString("}\n")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		return outcome.Wrap(err, outcome.Transient, "audit.journal.append", "cannot write the audit journal")
	}
	if err := syscall.Fdatasync(int(j.f.Fd())); err != nil {
		return outcome.Wrap(err, outcome.Transient, "audit.journal.append", "cannot sync the audit journal")
	}
	if then != nil {
		then()
	}
	return nil
}

// rotate starts a new segment and returns the path of the previous one.
// run, when set, is called under the journal's lock after the switch (it
// takes the records appended so far).
func (j *journal) rotate(run func()) (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	prev := j.f.Name()
	if err := j.rotateLocked(); err != nil {
		return "", err
	}
	if run != nil {
		run()
	}
	return prev, nil
}

func (j *journal) rotateLocked() error {
	j.seq++
	f, err := os.OpenFile(filepath.Join(j.dir, j.owner+"-"+strconv.Itoa(j.seq)+segmentExt), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return outcome.Wrap(err, outcome.Transient, "audit.journal.rotate", "cannot create an audit journal segment")
	}
	if j.f != nil {
		_ = j.f.Close()
	}
	j.f = f
	return nil
}

// close closes the journal; with clean, when every record is stored, it
// removes its files.
func (j *journal) close(clean bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	if j.f != nil {
		errs = append(errs, j.f.Close())
		if clean {
			errs = append(errs, os.Remove(j.f.Name()))
		}
		j.f = nil
	}
	if clean {
		errs = append(errs, os.Remove(j.lock.Name()))
	}
	errs = append(errs, j.lock.Close())
	return errors.Join(errs...)
}
