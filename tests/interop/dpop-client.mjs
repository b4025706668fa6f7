// An independent DPoP client for bindgate's interoperability tests: panva's
// `dpop` package makes the key pair and every proof, so a proof bindgate
// accepts here was not shaped by bindgate's own code.
//
// Protocol (one JSON document per line):
//   stdout, once:  {"jwk": <public JWK>}
//   stdin:         {"method":"GET","url":"https://...","token":"..."|null,"nonce":"..."|null}
//   stdout:        the proof (a compact JWS), one per request line
// Exits 0 on EOF; on a bad request line, reports on stderr and exits 1 so
// the test sees a broken pipe instead of a proof that never comes.

import { createInterface } from 'node:readline'
import * as DPoP from 'dpop'

const keyPair = await DPoP.generateKeyPair('ES256')
const jwk = await crypto.subtle.exportKey('jwk', keyPair.publicKey)
process.stdout.write(JSON.stringify({ jwk }) + '\n')

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (line.trim() === '') continue
  try {
    const { method, url, token, nonce } = JSON.parse(line)
    // The library signs htu as given; RFC 9449 section 4.2 wants the URI
    // without query and fragment, which a real client strips itself.
    const target = new URL(url)
    target.search = ''
    target.hash = ''
    const proof = await DPoP.generateProof(
      keyPair,
      target.href,
      method,
      nonce ?? undefined,
      token ?? undefined,
    )
    process.stdout.write(proof + '\n')
  } catch (error) {
    process.stderr.write(`dpop-client: ${error?.stack ?? error}\n`)
    process.exit(1)
  }
}
