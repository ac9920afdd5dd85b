// Command benchfhir measures casefhir against the database it runs on and
// writes the result tables to docs/benchmarks.md (make bench).
//
// It starts a real casefhir server in process (auth off, loopback only,
// the embedded FerretDB store in a temporary directory), finds that
// server's own FerretDB listener and opens a second, direct store client
// on it. Every casefhir figure is set against a baseline measured in the
// same run on the same backend and data, with the two interleaved
// (A/B then B/A) and medians taken, so that the ratios survive a noisy,
// shared machine.
//
// The direct baseline goes through fhir/store/mongostore's exported
// methods, each of which is one driver call (Read: one FindOne by _id;
// Create: one InsertOne; InsertMany: one insertMany), because the layering
// rules of the repository let only mongostore import the MongoDB driver.
// How far those methods are from bare driver calls is measured by
// mongostore's own benchmarks, which benchfhir runs as a calibration step.
//
// benchfhir owns nothing but measurement: it must not change the server
// or store packages' behaviour, it never logs resource content, and every
// loop it runs is bounded in count and time.
package main
