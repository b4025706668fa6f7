// A public client's token family, played by panva's openid-client (v6), a
// library nobody here wrote: it reads bindgate's RFC 8414 metadata,
// exchanges an identity provider's id_token for DPoP-bound tokens (RFC 8693,
// through the library's genericGrantRequest), refreshes twice with
// refreshTokenGrant and the same DPoP handle, calls the gateway, then
// replays the first refresh token as a thief would, and calls again.
//
// Input: one JSON document as the only argument:
//   {"issuer": "https://localhost:port", "client_id": "...", "ca": "ca.pem",
//    "subject_token": "<id_token>", "call": "https://gateway/path"}
// Output on stdout, one JSON document:
//   {"exchange": <token response>, "refreshes": [<token response>, ...],
//    "call": {"status": n, "body": "..."}, "replay": {"error", "error_description", "status"}|<token response>,
//    "after_replay": {"refresh": {...error...}|<token response>, "call": {"status", "www_authenticate"}}}
// Anything unexpected exits 1 with the stack on stderr.

import { readFileSync } from 'node:fs'
import * as client from 'openid-client'
import { Agent, fetch as undiciFetch } from 'undici'

const input = JSON.parse(process.argv[2])
const agent = new Agent({ connect: { ca: readFileSync(input.ca) } })
const viaAgent = (url, options) => undiciFetch(url, { ...options, dispatcher: agent })

// An OAuth error as data, so the test asserts on it.
async function outcome(call) {
  try {
    return { ...(await call()) }
  } catch (error) {
    if (error instanceof client.ResponseBodyError) {
      return { error: error.error, error_description: error.error_description, status: error.status }
    }
    throw error
  }
}

async function callGateway(config, accessToken, dpop) {
  try {
    const response = await client.fetchProtectedResource(
      config,
      accessToken,
      new URL(input.call),
      'GET',
      undefined,
      undefined,
      { DPoP: dpop },
    )
    return { status: response.status, body: await response.text() }
  } catch (error) {
    // openid-client throws on a 401 carrying a WWW-Authenticate challenge.
    if (error instanceof client.WWWAuthenticateChallengeError) {
      return {
        status: error.response.status,
        www_authenticate: error.response.headers.get('www-authenticate'),
      }
    }
    throw error
  }
}

try {
  const config = await client.discovery(new URL(input.issuer), input.client_id, undefined, client.None(), {
    algorithm: 'oauth2',
    [client.customFetch]: viaAgent,
  })
  config[client.customFetch] = viaAgent
  const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'))

  const exchange = await client.genericGrantRequest(
    config,
    'urn:ietf:params:oauth:grant-type:token-exchange',
    {
      subject_token: input.subject_token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
    },
    { DPoP: dpop },
  )
  const refreshes = []
  let current = exchange
  for (let i = 0; i < 2; i++) {
    current = await client.refreshTokenGrant(config, current.refresh_token, undefined, { DPoP: dpop })
    refreshes.push({ ...current })
  }
  const call = await callGateway(config, current.access_token, dpop)

  // The thief holds a copy of the first refresh token and a key of its own.
  const thief = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'))
  const replay = await outcome(() => client.refreshTokenGrant(config, exchange.refresh_token, undefined, { DPoP: thief }))
  const afterReplay = {
    refresh: await outcome(() => client.refreshTokenGrant(config, current.refresh_token, undefined, { DPoP: dpop })),
    call: await callGateway(config, current.access_token, dpop),
  }
  process.stdout.write(
    JSON.stringify({ exchange: { ...exchange }, refreshes, call, replay, after_replay: afterReplay }) + '\n',
  )
} catch (error) {
  process.stderr.write(`family-client: ${error?.stack ?? error}\n`)
  process.exit(1)
}
