// Package store is the storage contract of casefhir: the Store interface,
// the stored form of a resource version, and a small backend-neutral filter
// language that search compiles into and implementations translate.
//
// It has no database import. The MongoDB implementation lives in
// store/mongostore (the only package that imports the MongoDB driver);
// store/embedded starts the in-process FerretDB; store/storetest is the
// behaviour suite every implementation must pass.
package store
