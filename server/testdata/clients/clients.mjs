// Real FHIR client libraries against a running casefhir, started by the Go
// test TestSMARTRealClients (server/smart_clients_test.go).
//
// Usage: node clients.mjs
//
// Environment (set by the Go test; tokens come from the test's OpenID
// provider and are never printed):
//   CASEFHIR_BASE            FHIR base URL, e.g. http://127.0.0.1:PORT/fhir
//   CASEFHIR_SYSTEM_TOKEN    access token with system/*.cruds
//   CASEFHIR_PATIENT_TOKEN   access token with patient/*.rs and a patient claim
//   CASEFHIR_PATIENT         the patient claim's id
//   CASEFHIR_OTHER_PATIENT   another patient's id (must stay invisible)
//
// It prints one JSON line with what each client saw; the Go test asserts it.

import { createRequire } from 'node:module';
import { Client as FhirKitClient } from 'fhir-kit-client';
import { MedplumClient } from '@medplum/core';

const require = createRequire(import.meta.url);
const smart = require('fhirclient'); // the Node entry: smart(request, response, storage)
const { getSecurityExtensions } = require('fhirclient/lib/smart');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('CASEFHIR_BASE');
const systemToken = env('CASEFHIR_SYSTEM_TOKEN');
const patientToken = env('CASEFHIR_PATIENT_TOKEN');
const patient = env('CASEFHIR_PATIENT');
const other = env('CASEFHIR_OTHER_PATIENT');

const ids = (bundle) => (bundle.entry ?? []).filter((e) => e.resource).map((e) => `${e.resource.resourceType}/${e.resource.id}`);

// fhir-kit-client: read, search with paging through nextPage, a transaction.
async function fhirKit() {
  const c = new FhirKitClient({ baseUrl: base, bearerToken: systemToken });
  const pat = await c.read({ resourceType: 'Patient', id: patient });
  let page = await c.search({ resourceType: 'Observation', searchParams: { patient, _count: 2 } });
  const pagedIds = [...ids(page)];
  let pages = 1;
  for (;;) {
    const next = await c.nextPage({ bundle: page });
    if (!next) break;
    pages++;
    pagedIds.push(...ids(next));
    page = next;
    if (pages > 100) throw new Error('too many pages');
  }
  const tx = await c.transaction({
    body: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:6f1f3e52-5d8e-4c1a-9d3e-1a2b3c4d5e6f',
          resource: { resourceType: 'Condition', subject: { reference: `Patient/${patient}` }, code: { text: 'fhir-kit tx' } },
          request: { method: 'POST', url: 'Condition' },
        },
        {
          resource: {
            resourceType: 'Observation', status: 'final', code: { text: 'fhir-kit tx' },
            subject: { reference: `Patient/${patient}` },
            hasMember: [{ reference: 'urn:uuid:6f1f3e52-5d8e-4c1a-9d3e-1a2b3c4d5e6f' }],
          },
          request: { method: 'POST', url: 'Observation' },
        },
      ],
    },
  });
  return {
    readId: `${pat.resourceType}/${pat.id}`,
    pages,
    pagedIds,
    txType: tx.type,
    txStatuses: (tx.entry ?? []).map((e) => e.response?.status),
    txLocations: (tx.entry ?? []).map((e) => e.response?.location),
  };
}

// fhirclient (SMART JS client): smart-configuration discovery, the
// authorization redirect it builds from it, and patient-scoped requests
// with a token response in hand.
async function fhirClient() {
  const ext = await getSecurityExtensions(base);
  // The standalone-launch redirect (PKCE S256) built from discovery, in a
  // Node request/response pair the client library drives.
  let redirect = '';
  const request = { url: '/launch', headers: { host: 'app.example.org' }, socket: {}, session: {} };
  const response = {
    writeHead: (_status, headers) => { redirect = headers.location; },
    end: () => {},
  };
  const store = new Map();
  const storage = {
    get: async (k) => store.get(k), set: async (k, v) => { store.set(k, v); return v; },
    unset: async (k) => store.delete(k),
  };
  await smart(request, response, storage).authorize({
    iss: base, clientId: 'client-app', scope: 'launch/patient patient/*.rs openid fhirUser',
    redirectUri: 'https://app.example.org/callback', pkceMode: 'required',
  });

  const client = smart(request, response, storage).client({
    serverUrl: base,
    tokenResponse: { access_token: patientToken, token_type: 'Bearer', patient },
  });
  const pat = await client.patient.read();
  const obs = await client.request(`Observation?patient=${patient}`, { pageLimit: 0, flat: true });
  const others = await client.request(`Observation?patient=${other}`, { pageLimit: 0, flat: true });
  let otherReadStatus = 0;
  try {
    await client.request(`Patient/${other}`);
  } catch (e) {
    otherReadStatus = e.status ?? e.statusCode ?? -1;
  }
  return {
    tokenUri: ext.tokenUri,
    authorizeUri: ext.authorizeUri,
    codeChallengeMethods: ext.codeChallengeMethods,
    authorizeRedirect: redirect,
    patientId: client.patient.id,
    readId: `${pat.resourceType}/${pat.id}`,
    observationIds: obs.map((r) => `${r.resourceType}/${r.id}`),
    otherObservationIds: others.map((r) => `${r.resourceType}/${r.id}`),
    otherReadStatus,
  };
}

// @medplum/core: MedplumClient pointed at casefhir with an access token.
async function medplum() {
  const u = new URL(base);
  const m = new MedplumClient({
    baseUrl: `${u.origin}/`,
    fhirUrlPath: u.pathname.replace(/^\//, ''),
    fetch: (url, init) => fetch(url, init),
  });
  m.setAccessToken(systemToken);
  const pat = await m.readResource('Patient', patient);
  const obs = await m.searchResources('Observation', { patient, _count: '100' });
  const created = await m.createResource({
    resourceType: 'Observation', status: 'final', code: { text: 'medplum created' },
    subject: { reference: `Patient/${patient}` },
  });
  const back = await m.readResource('Observation', created.id, { cache: 'no-cache' });
  return {
    readId: `${pat.resourceType}/${pat.id}`,
    searchIds: obs.map((r) => `${r.resourceType}/${r.id}`),
    createdId: created.id,
    createdVersion: created.meta?.versionId,
    readBackText: back.code?.text,
  };
}

const out = {};
for (const [name, fn] of Object.entries({ fhirKit, fhirClient, medplum })) {
  try {
    out[name] = await fn();
  } catch (e) {
    out[name] = { error: String(e?.message ?? e), status: e?.status ?? e?.response?.status };
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`);
