// Package store is the storage contract of casefhir: the Store interface,
// the stored form of a resource version, and a small backend-neutral filter
// language that search compiles into and implementations translate.
//
// It has no database import. The embedded SQLite implementation lives in
// store/sqlitestore (the only package that imports the SQLite driver), the
// MongoDB one in store/mongostore (the only package that imports the MongoDB
// driver); store/storetest is the behaviour suite every implementation must
// pass.
//
// # What the database does
//
// Callers never collect every match or sort in Go: Find applies the filter,
// the sort, the keyset cursor (FindOptions.After) and the limit in the
// database, and Count counts there. Every implementation serves these
// filter shapes from an index (never by reading every stored resource of
// the type):
//
//   - Eq and In on PathID, on PathLastUpdated, and on any Index path leading
//     to strings, numbers, booleans or times (scalars or arrays of them);
//   - Lt, Lte, Gt, Gte on such paths (ranges: dates as {lo, hi}, numbers);
//   - Prefix on string paths;
//   - Exists on any Index path;
//   - And of any of these (the most selective child drives), Or of them
//     (a union of index reads).
//
// Contains (substring) and Not may read every value of the path (not every
// resource); they are used only by the :contains and :text modifiers and by
// :not, together with other clauses where the caller has them.
//
// Sorting by PathID, PathLastUpdated or a sort path (one scalar per
// resource, extracted by package search at write time) is served from an
// index, so the first page of a large sorted result costs one page.
package store
