// An OAuth client nobody here wrote, for bindgate's authorization-server
// interoperability tests: panva's openid-client (v6) reads the endpoints from
// bindgate's RFC 8414 metadata, authenticates (tls_client_auth over mTLS, or
// private_key_jwt), asks for a client_credentials token, optionally bound
// with its own DPoP key (retrying on use_dpop_nonce as the library does), and
// optionally calls a resource through the gateway with that token.
//
// Input: one JSON document as the only argument:
//   {"issuer": "https://localhost:port" (exactly the metadata's issuer), "client_id": "...",
//    "auth": "tls_client_auth" | "private_key_jwt",
//    "ca": "ca.pem", "cert": "client.pem"|null, "key": "client-key.pem"|null,
//    "assertion_key": "pkcs8.pem"|null, "assertion_alg": "ES256"|"EdDSA"
//      (for an Ed25519 key the library writes RFC 9864's alg "Ed25519", not "EdDSA"),
//    "dpop": true|false, "dpop_alg": "ES256"|"Ed25519"|null, "scope": "..."|null, "resource": "..."|null,
//    "call": "https://gateway/path"|null}
// Output on stdout, one JSON document:
//   {"token": <the token endpoint's response>, "call": {"status": n, "body": "..."}|null}
// On an OAuth error: {"error": <the response's error>, "error_description": ..., "status": n}
// and exit 0, so the test asserts on it; anything else exits 1.

import { readFileSync } from 'node:fs'
import * as client from 'openid-client'
import { Agent, fetch as undiciFetch } from 'undici'

const input = JSON.parse(process.argv[2])

function pemToDer(pem) {
  const base64 = pem
    .replace(/-----(BEGIN|END) [A-Z ]+-----/g, '')
    .replace(/\s+/g, '')
  return Buffer.from(base64, 'base64')
}

async function assertionKey(path, alg) {
  const der = pemToDer(readFileSync(path, 'utf8'))
  const algorithm = alg === 'EdDSA' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' }
  return crypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign'])
}

const agent = new Agent({
  connect: {
    ca: readFileSync(input.ca),
    cert: input.cert ? readFileSync(input.cert) : undefined,
    key: input.key ? readFileSync(input.key) : undefined,
  },
})
const viaAgent = (url, options) => undiciFetch(url, { ...options, dispatcher: agent })

const clientAuth =
  input.auth === 'private_key_jwt'
    ? client.PrivateKeyJwt(await assertionKey(input.assertion_key, input.assertion_alg))
    : client.TlsClientAuth()

try {
  // RFC 8414 metadata (/.well-known/oauth-authorization-server): bindgate
  // is an OAuth authorization server, not an OpenID provider, and the
  // library's default is OpenID Connect discovery.
  const config = await client.discovery(new URL(input.issuer), input.client_id, undefined, clientAuth, {
    algorithm: 'oauth2',
    [client.customFetch]: viaAgent,
  })
  config[client.customFetch] = viaAgent

  const dpop = input.dpop ? client.getDPoPHandle(config, await client.randomDPoPKeyPair(input.dpop_alg ?? 'ES256')) : undefined
  const parameters = {}
  if (input.scope) parameters.scope = input.scope
  if (input.resource) parameters.resource = input.resource
  const token = await client.clientCredentialsGrant(config, parameters, { DPoP: dpop })

  let call = null
  if (input.call) {
    const response = await client.fetchProtectedResource(
      config,
      token.access_token,
      new URL(input.call),
      'GET',
      undefined,
      undefined,
      { DPoP: dpop },
    )
    call = { status: response.status, body: await response.text() }
  }
  process.stdout.write(JSON.stringify({ token: { ...token }, call }) + '\n')
} catch (error) {
  if (error instanceof client.ResponseBodyError) {
    process.stdout.write(
      JSON.stringify({ error: error.error, error_description: error.error_description, status: error.status }) + '\n',
    )
  } else {
    process.stderr.write(`token-client: ${error?.stack ?? error}\n`)
    process.exit(1)
  }
}
