// An OpenID provider for casefhir's tests, built on oidc-provider 9.x.
//
// Usage: node provider.mjs CONFIG.json
//
// CONFIG (written by server/auth/authtest):
//   {
//     "port": 0,                              // 0: any free port
//     "resources": ["http://.../fhir", ...],  // accepted resource indicators (the FHIR base URLs);
//                                             // the first is the default audience
//     "accessTokenAlg": "RS256",              // RS256 | PS256 | ES256
//     "accessTokenTTL": 300,                  // seconds
//     "clients": [{
//       "client_id": "insurer",
//       "token_endpoint_auth_method": "private_key_jwt" | "client_secret_post",
//       "jwks": {"keys": [...]},              // public keys (private_key_jwt)
//       "client_secret": "...",               // client_secret_post
//       "scope": "system/*.rs ...",           // optional allow list; empty: any SMART scope
//       "claims": {"patient": "123", "fhirUser": "Practitioner/9"}, // extra access-token claims
//       // authorization_code clients (SMART apps):
//       "grant_types": ["authorization_code"], // default ["client_credentials"]
//       "redirect_uris": ["http://.../app/callback"],
//       "token_endpoint_auth_method": "client_secret_basic" | "none"  // "none": public, PKCE
//     }],
//     // The EHR's launch contexts: a launch value resolves to the user who
//     // launched and, optionally, the patient in context. Their claims
//     // (patient, fhirUser) go into the token response and the access token.
//     "launches": {"abc": {"user": "cm", "patient": "123"}},
//     // The test users; the first logs in automatically when no launch
//     // names one (standalone launch).
//     "users": [{"id": "cm", "fhirUser": "Practitioner/9"}]
//   }
//
// Interactions need no human: /interaction/:uid logs the test user in and
// consents to every requested scope (auto-login, auto-consent). Every
// authorization request must use PKCE (S256).
//
// When listening it prints one JSON line on stdout: {"issuer": "http://127.0.0.1:PORT"}.
// It exits when its stdin closes (the Go test process ended) or on SIGTERM.

import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const resources = config.resources ?? [];
if (resources.length === 0) {
  throw new Error('config.resources must name at least one resource indicator');
}
const alg = config.accessTokenAlg ?? 'RS256';
const ttl = config.accessTokenTTL ?? 300;

// SMART clinical-data scopes (v1 and v2, with granular restrictions) and
// the SMART non-resource scopes. The authorization server only checks the
// shape; the resource server (casefhir) interprets them.
const SMART_SCOPE = /^((patient|user|system)\/[A-Za-z*]+\.[a-z*]+(\?\S*)?|launch(\/[A-Za-z_-]+)?|fhirUser|offline_access|online_access)$/;

const clientsById = new Map(config.clients.map((c) => [c.client_id, c]));
const launches = config.launches ?? {};
const users = new Map((config.users ?? []).map((u) => [u.id, u]));
const defaultUser = config.users?.[0]?.id;
// grantId -> {user, patient}: the launch context of an authorization.
const grantContext = new Map();

// contextClaims returns the SMART context claims of a grant.
function contextClaims(grantId, accountId) {
  const lc = grantContext.get(grantId) ?? {};
  const out = {};
  const user = users.get(lc.user ?? accountId);
  if (user?.fhirUser) out.fhirUser = user.fhirUser;
  if (lc.patient) out.patient = lc.patient;
  return out;
}

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: 'rsa-1', use: 'sig' },
    { ...ec, kid: 'ec-1', use: 'sig', alg: 'ES256' },
  ];
}

function allowedScopes(ctx, client) {
  // At the token endpoint of the code flow, the scope is the authorization's.
  const scope = ctx.oidc.params.scope ?? ctx.oidc.entities?.AuthorizationCode?.scope ?? '';
  const requested = scope.split(' ').filter(Boolean);
  const conf = clientsById.get(client.clientId) ?? {};
  const allow = conf.scope ? new Set(conf.scope.split(' ')) : null;
  return requested.filter((s) => SMART_SCOPE.test(s) && (!allow || allow.has(s))).join(' ');
}

const configuration = {
  clients: config.clients.map((c) => {
    const method = c.token_endpoint_auth_method ?? (c.jwks ? 'private_key_jwt' : 'client_secret_post');
    const grants = c.grant_types ?? ['client_credentials'];
    const code = grants.includes('authorization_code');
    const meta = {
      client_id: c.client_id,
      grant_types: grants,
      response_types: code ? ['code'] : [],
      redirect_uris: c.redirect_uris ?? [],
      token_endpoint_auth_method: method,
    };
    if (method === 'none') {
      // public client (PKCE only)
    } else if (method === 'private_key_jwt') {
      meta.jwks = c.jwks;
      if (c.token_endpoint_auth_signing_alg) meta.token_endpoint_auth_signing_alg = c.token_endpoint_auth_signing_alg;
    } else {
      meta.client_secret = c.client_secret;
    }
    return meta;
  }),
  jwks: { keys: signingKeys() },
  clientAuthMethods: ['private_key_jwt', 'client_secret_post', 'client_secret_basic', 'none'],
  enabledJWA: {
    clientAuthSigningAlgValues: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'ES256', 'ES384', 'HS256'],
    idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256'],
  },
  scopes: ['openid', 'offline_access', 'fhirUser'],
  claims: { openid: ['sub'], fhirUser: ['fhirUser'] },
  extraParams: ['launch', 'aud'],
  pkce: { required: () => true },
  findAccount: async (_ctx, id) => (users.has(id) ? {
    accountId: id,
    claims: async () => ({ sub: id, fhirUser: users.get(id).fhirUser }),
  } : undefined),
  // Every authorization gets its own grant (through the auto-consent
  // interaction), so that each launch keeps its own context.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId;
    return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
  },
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // SMART's aud parameter names the FHIR server the token is for.
      defaultResource: async (ctx) => ctx.oidc.params?.aud ?? resources[0],
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator, client) => {
        if (!resources.includes(resourceIndicator)) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: allowedScopes(ctx, client),
          audience: resourceIndicator,
          accessTokenTTL: ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        };
      },
    },
  },
  extraTokenClaims: async (_ctx, token) => {
    const conf = clientsById.get(token.clientId);
    const extra = { ...(conf?.claims ?? {}), ...(token.grantId ? contextClaims(token.grantId, token.accountId) : {}) };
    return Object.keys(extra).length ? extra : undefined;
  },
  ttl: { ClientCredentials: ttl, AccessToken: ttl },
  cookies: { keys: ['casefhir-test-only-cookie-key'] },
  renderError: async (ctx, out) => {
    ctx.type = 'application/json';
    ctx.body = out;
  },
};

const server = http.createServer();
server.listen(config.port ?? 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, err) => {
    process.stderr.write(`oidc-provider server_error: ${err?.message}\n`);
  });
  // The SMART launch context claims also go into the token response.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.status === 200 && ctx.body?.access_token && ctx.oidc?.entities?.Grant) {
      const { Grant } = ctx.oidc.entities;
      Object.assign(ctx.body, contextClaims(Grant.jti, Grant.accountId));
    }
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interact(provider, req, res).catch((err) => {
        process.stderr.write(`interaction error: ${err?.message}\n`);
        res.statusCode = 500;
        res.end('interaction failed');
      });
      return;
    }
    callback(req, res);
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// interact completes an interaction without a human: it logs in the user
// of the launch (or the default test user) and consents to everything
// requested, remembering the launch context for the tokens.
async function interact(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  const lc = params.launch ? launches[params.launch] : undefined;
  if (params.launch && !lc) {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'unknown launch' }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'login') {
    const accountId = lc?.user ?? defaultUser;
    await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
    return;
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
  const d = prompt.details ?? {};
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  grantContext.set(grantId, lc ?? { user: details.session.accountId });
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
