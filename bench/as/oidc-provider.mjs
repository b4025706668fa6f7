// panva's oidc-provider configured for the job bindgate's authorization
// server does in bench/run_as.py: the client_credentials grant for one
// tls_client_auth client (the dev PKI's client-a), access tokens as JWTs
// (typ at+jwt) signed per request with the same Ed25519 key
// (as-signing-key.pem, EdDSA), bound to the client certificate
// (cnf."x5t#S256") or, for the second registration (client-a-dpop), to the
// key of the request's DPoP proof (cnf.jkt, token_type DPoP). Node's own https server terminates TLS and
// asks for the client certificate; no proxy in front.
//
// For bench/refresh.sh, the refresh_token grant of a public client as
// bindgate's `mobile` is: `mobile` authenticates with nothing
// (token_endpoint_auth_method none), must send a DPoP proof
// (dpop_bound_access_tokens), its refresh tokens are bound to that proof's
// key (jkt) and rotate on every use (rotateRefreshToken: true; the default
// rotates a public client's tokens only when they are not sender-constrained,
// so a DPoP-bound one would not rotate), and presenting a consumed one
// revokes its grant (the family). oidc-provider has no RFC 8693 token
// exchange to start such a family, so with a seed count the families are
// made at startup, through the provider's own models (a Grant and a
// RefreshToken bound to dpop-key.pem's thumbprint each, saved by the
// adapter), and their tokens written to the seed file, one per line.
//
//   node oidc-provider.mjs <pki dir> [port] [seed file] [seed count]
//
// Memory adapter (the default's class): JWT access tokens are not stored,
// DPoP proof jtis are (replay detection), as bindgate keeps them in memory
// too. Refresh tokens and grants are, in the same memory, lost on exit,
// where bindgate writes each rotation to disk. The default instance keeps
// 1,000 to 2,000 entries (an LRU); here it gets room for a million, so a
// seeded family that sits out a row with fewer chains is not evicted (it
// would be "refresh token not found" in the next), and a rotated-away token
// stays known, as in bindgate's store, where reuse of it is detected.

import { readFileSync, writeFileSync } from 'node:fs';
import { createHash, createPrivateKey } from 'node:crypto';
import { createServer } from 'node:https';
import { join } from 'node:path';

import Provider from 'oidc-provider';
// Its own memory adapter and LRU (no `exports` map: deep imports are allowed).
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const [pki, port = '18465', seedFile, seedCount = '0'] = process.argv.slice(2);
if (!pki || !/^\d+$/.test(seedCount)) {
  console.error('usage: node oidc-provider.mjs <pki dir> [port] [seed file] [seed count]');
  process.exit(64);
}
const read = (name) => readFileSync(join(pki, name));

const ISSUER = `https://localhost:${port}`;
const AUDIENCE = 'https://api.example';
const SCOPE = 'orders:read';
// The subject of client-a.pem (`bindgate dev-certs`), RFC 4514 order: leaf RDN first.
const CLIENT_DN = 'CN=client-a,O=bindgate dev';

// bindgate writes PKCS#8 v2 (RFC 5958, the public key included), which
// OpenSSL 3.0 does not parse: rebuild a v1 PKCS#8 from the 32-byte seed.
function ed25519Jwk(pem) {
  let key;
  try {
    key = createPrivateKey(pem);
  } catch {
    const der = Buffer.from(pem.toString().replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
    const at = der.indexOf(Buffer.from('04220420', 'hex'));
    if (at < 0) throw new Error('as-signing-key.pem: not an Ed25519 PKCS#8 key');
    const seed = der.subarray(at + 4, at + 36);
    key = createPrivateKey({ key: Buffer.concat([prefix, seed]), format: 'der', type: 'pkcs8' });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('as-signing-key.pem: not an Ed25519 key');
  return { ...key.export({ format: 'jwk' }), alg: 'EdDSA', use: 'sig' };
}

// RFC 7638 thumbprint of an EC P-256 key's public half: what a DPoP-bound token's jkt names.
function p256Thumbprint(pem) {
  const { crv, kty, x, y } = createPrivateKey(pem).export({ format: 'jwk' });
  if (kty !== 'EC' || crv !== 'P-256') throw new Error('dpop-key.pem: not an EC P-256 key');
  return createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
}

// Node's X509Certificate.subject: one `name=value` per line, root RDN first.
const subjectDn = (cert) => cert.subject.split('\n').reverse().join(',');

const provider = new Provider(ISSUER, {
  // oidc-provider binds a token to one thing: a client registered with
  // tls_client_certificate_bound_access_tokens gets only certificate-bound
  // tokens, and refuses a DPoP proof ("multiple proof-of-possession
  // mechanisms"). So the DPoP row asks as a second registration of the same
  // certificate, whose tokens are bound to the proof's key.
  clients: [
    { client_id: 'client-a', tls_client_certificate_bound_access_tokens: true },
    { client_id: 'client-a-dpop', tls_client_certificate_bound_access_tokens: false },
  ].map((client) => ({
    ...client,
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: CLIENT_DN,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPE,
    // The only key is Ed25519: the (unused) ID token default RS256 has none.
    id_token_signed_response_alg: 'EdDSA',
  })).concat([{
    // bindgate's `mobile`: a public client whose every token is DPoP-bound.
    client_id: 'mobile',
    token_endpoint_auth_method: 'none',
    dpop_bound_access_tokens: true,
    grant_types: ['refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPE,
    id_token_signed_response_alg: 'EdDSA',
  }]),
  jwks: { keys: [ed25519Jwk(read('as-signing-key.pem'))] },
  adapter: ((store) => (model) => new MemoryAdapter(model, store))(new LRU({ maxSize: 1_000_000 })),
  clientAuthMethods: ['tls_client_auth', 'none'],
  // Every refresh rotates, as bindgate's public clients' do (see the top).
  rotateRefreshToken: true,
  // No grant here issues a first refresh token (the seeded ones are made
  // directly); a non-default issueRefreshToken is what enables the
  // refresh_token grant without the offline_access scope.
  issueRefreshToken: async () => false,
  // The seeded families' subjects: any account exists, with no claims beyond sub.
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  scopes: [SCOPE],
  cookies: { keys: ['bench-only-cookie-key-not-used-by-the-token-endpoint'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    dPoP: { enabled: true },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      getCertificate: (ctx) => ctx.socket.getPeerX509Certificate?.(),
      // Verified by the handshake against ca.pem (requestCert, not rejectUnauthorized).
      certificateAuthorized: (ctx) => ctx.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => {
        if (property !== 'tls_client_auth_subject_dn') return false;
        const cert = ctx.socket.getPeerX509Certificate();
        return !!cert && subjectDn(cert) === expected;
      },
    },
    // JWT access tokens for one resource server, as bindgate's client's `audience`.
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== AUDIENCE) throw new Provider.errors.InvalidTarget();
        return {
          scope: SCOPE,
          audience: AUDIENCE,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'EdDSA' } },
        };
      },
    },
  },
  enabledJWA: { dPoPSigningAlgValues: ['ES256', 'EdDSA'] },
  ttl: {
    ClientCredentials: 300,
    AccessToken: 300,
    // bindgate's defaults: refresh_idle_timeout 14 d per token, refresh_absolute_lifetime 30 d per family.
    RefreshToken: 14 * 24 * 3600,
    Grant: 30 * 24 * 3600,
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

// The refresh bench's families: a Grant of scope orders:read for
// https://api.example and its first RefreshToken, bound to dpop-key.pem.
async function seedRefreshTokens(file, count) {
  const client = await provider.Client.find('mobile');
  const jkt = p256Thumbprint(read('dpop-key.pem'));
  const tokens = [];
  for (let i = 0; i < count; i += 1) {
    const accountId = `bench-user-${i}`;
    const grant = new provider.Grant({ accountId, clientId: client.clientId });
    grant.addResourceScope(AUDIENCE, SCOPE);
    const grantId = await grant.save();
    const refreshToken = new provider.RefreshToken({
      accountId, client, grantId, jkt, gty: 'token_exchange', scope: SCOPE, resource: AUDIENCE,
    });
    tokens.push(await refreshToken.save());
  }
  writeFileSync(file, tokens.map((t) => `${t}\n`).join(''));
  console.log(`seeded ${count} DPoP-bound refresh tokens of mobile into ${file}`);
}
if (seedFile && Number(seedCount) > 0) {
  await seedRefreshTokens(seedFile, Number(seedCount));
}

const server = createServer({
  cert: read('server.pem'),
  key: read('server-key.pem'),
  ca: read('ca.pem'),
  requestCert: true,
  rejectUnauthorized: false,
  // Keep-alive connections stay open for the whole row.
  keepAliveTimeout: 60_000,
}, provider.callback());
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider ${ISSUER} listening on 127.0.0.1:${port}`);
});
