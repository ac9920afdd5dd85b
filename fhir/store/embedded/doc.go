// Package embedded runs FerretDB v1 (SQLite backend) inside the casefhir
// process and hands back a MongoDB URI for it, so the embedded store is
// reached through exactly the same driver code (package mongostore) as a
// real MongoDB.
//
// It owns the FerretDB lifecycle (Start, Close), the SQLite durability
// settings (synchronous=FULL in WAL mode, so an acknowledged write survives
// a crash), and the one SQLite-level tweak casefhir needs: an expression
// index on the exact expression FerretDB uses when it pushes a `{_id: ...}`
// filter down to SQLite ([Server.EnsureIDIndex]).
//
// It must not import the MongoDB driver, know about FHIR documents, or touch
// collection data: everything else goes through the wire protocol. It never
// logs document contents; FerretDB's own logs are passed on at warn level
// and above only.
package embedded
