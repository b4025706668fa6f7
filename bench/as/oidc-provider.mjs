// panva's oidc-provider configured for the job bindgate's authorization
// server does in bench/run_as.py: the client_credentials grant for one
// tls_client_auth client (the dev PKI's client-a), access tokens as JWTs
// (typ at+jwt) signed per request with the same Ed25519 key
// (as-signing-key.pem, EdDSA), bound to the client certificate
// (cnf."x5t#S256") or, for the second registration (client-a-dpop), to the
// key of the request's DPoP proof (cnf.jkt, token_type DPoP). Node's own https server terminates TLS and
// asks for the client certificate; no proxy in front.
//
//   node oidc-provider.mjs <pki dir> <port>
//
// Memory adapter (the default): JWT access tokens are not stored, DPoP proof
// jtis are (replay detection), as bindgate keeps them in memory too.

import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { createServer } from 'node:https';
import { join } from 'node:path';

import Provider from 'oidc-provider';

const [pki, port = '18465'] = process.argv.slice(2);
if (!pki) {
  console.error('usage: node oidc-provider.mjs <pki dir> [port]');
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
  })),
  jwks: { keys: [ed25519Jwk(read('as-signing-key.pem'))] },
  clientAuthMethods: ['tls_client_auth'],
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
  ttl: { ClientCredentials: 300 },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

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
