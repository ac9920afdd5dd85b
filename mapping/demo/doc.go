// Package demo holds the two demo cases of casefhir (embedded in the
// binary) and replays them into a server through its HTTP API, step by
// step, so that their status and phase histories are real: the young man
// after a bicycle accident (clinical model) and the elderly stroke patient
// with her insurer (brokerage model).
//
// Each case is a folder under cases/: 00-base.json, a transaction Bundle of
// the people, organisations and the referral, and one file per step
// ({"description", "request": {"method", "url"}, "body", "status"}), where
// {{case}}, {{team}} and {{intake}} stand for the ids $open-case assigned.
//
// The package speaks plain HTTP (net/http) to any FHIR server; it must not
// import server or a store, and it never logs resource contents.
package demo
