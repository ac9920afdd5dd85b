// Package sqlitestore is the embedded store of casefhir: store.Store,
// store.Transactional and store.JobStore on one SQLite database file
// (through modernc.org/sqlite, pure Go). It is the only package that
// imports the SQLite driver.
//
// # Layout
//
//   - history: every version (JSON, encoded search index), one row each;
//   - resources: the current version of each resource (rk, type, id,
//     version, lastUpdated, deleted, and the history row it points to);
//   - vals: the search values of current, non-deleted resources, one row
//     per leaf scalar of Resource.Index: (pid, v, rk), where pid interns
//     (type, dotted path, kind) in table paths and v is TEXT for strings,
//     REAL for numbers, INTEGER for times (Unix milliseconds) and 0/1 for
//     booleans. Its primary key (pid, v, rk) serves equality, ranges,
//     prefixes and sorting; a second index (rk, pid) serves deletion,
//     Exists checks and the sort value of one row;
//   - counts: per counted string value (pid, v) the number of current
//     resources that have it, and per type (pid 0) its live resources,
//     kept in step by every write transaction, so a count of a type or of
//     one value is one row;
//   - paths, types, locks, jobs: small bookkeeping tables.
//
// Kinds are part of the interned path, so a comparison only meets values
// of its own kind, as store.Filter.Match requires. Nothing per stored
// resource is kept in the process: the only in-process cache is the path
// table, bounded by the number of search parameters.
//
// # Durability and concurrency
//
// The database runs in WAL mode with synchronous=FULL: a write is
// acknowledged once its commit is on disk, so it survives a process crash
// and a power loss. Writes go through one connection and BEGIN IMMEDIATE
// transactions; readers use a pool and see committed data only. Several
// processes may open the same file: SQLite's own locks serialise writers
// (busy_timeout waits), versions are compared and swapped in SQL, and
// leases (Lock) are rows of the locks table, so two servers on one data
// folder stay correct.
//
// # Queries
//
// A filter becomes a predicate on rk made of index reads
// (rk IN (SELECT rk FROM vals WHERE pid=? AND v ...)). A single sort key
// on an Index path is walked in the vals index (the first page of a large
// sorted result reads one page), resources without a value follow, by id.
// Sort paths declared derived (DeriveSorts: package search's sort values
// that are a bound of another path) get no rows; a sort by one walks its
// source's rows. Without a sort key the order is creation (rk, which an
// update keeps): a page walks the type's live rows in a partial index on
// type, or the index entries of the filter's least common equality
// (counts table), which are in rk order, probing the rest of the filter
// per row.
// Several sort keys are sorted by SQLite over the matches. Filter leaves
// SQL cannot express exactly (a numeric path segment, equality with a
// whole array or object) are evaluated with store.Filter.Match over the
// rows SQL returns.
package sqlitestore
