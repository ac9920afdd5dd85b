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
//       "claims": {"patient": "123", "fhirUser": "Practitioner/9"}  // extra access-token claims
//     }]
//   }
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

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: 'rsa-1', use: 'sig' },
    { ...ec, kid: 'ec-1', use: 'sig', alg: 'ES256' },
  ];
}

function allowedScopes(ctx, client) {
  const requested = (ctx.oidc.params.scope ?? '').split(' ').filter(Boolean);
  const conf = clientsById.get(client.clientId) ?? {};
  const allow = conf.scope ? new Set(conf.scope.split(' ')) : null;
  return requested.filter((s) => SMART_SCOPE.test(s) && (!allow || allow.has(s))).join(' ');
}

const configuration = {
  clients: config.clients.map((c) => {
    const method = c.token_endpoint_auth_method ?? (c.jwks ? 'private_key_jwt' : 'client_secret_post');
    const meta = {
      client_id: c.client_id,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: method,
    };
    if (method === 'private_key_jwt') {
      meta.jwks = c.jwks;
      if (c.token_endpoint_auth_signing_alg) meta.token_endpoint_auth_signing_alg = c.token_endpoint_auth_signing_alg;
    } else {
      meta.client_secret = c.client_secret;
    }
    return meta;
  }),
  jwks: { keys: signingKeys() },
  clientAuthMethods: ['private_key_jwt', 'client_secret_post', 'client_secret_basic'],
  enabledJWA: {
    clientAuthSigningAlgValues: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'ES256', 'ES384', 'HS256'],
    idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256'],
  },
  scopes: ['openid', 'offline_access'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => resources[0],
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
    return conf?.claims ? { ...conf.claims } : undefined;
  },
  ttl: { ClientCredentials: ttl },
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
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
