#!/usr/bin/env bash
# Writes the seed corpus (fuzz/corpus/<target>/seed-*) from real inputs: tokens
# and DPoP proofs minted by the dev tool with the keys in certs/, the shipped
# configurations and JWKS, request streams as clients send them, and the
# subjects of the dev certificates. Run from anywhere; commit what changes.
# Inputs kept from past findings are named regress-* and left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
C=fuzz/corpus
bindgate() { cargo run -q -- "$@"; }
b64d() { python3 -c 'import base64,sys; s=sys.argv[1]; sys.stdout.write(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode())' "$1"; }
rm -f $C/*/seed-*
mkdir -p $C/{jws_compact,token_claims,credential_headers,dpop_proof,htu_normalize,http1_framing,xfcc_roundtrip,config_parse,jwks_document}

# Tokens: bound to a certificate, to a DPoP key, to both; with scopes.
mtls=$(bindgate mint --cert certs/client-a.pem)
dpop=$(bindgate mint --dpop-key certs/dpop-key.pem --sub svc-reporting --ttl 15m)
both=$(bindgate mint --cert certs/client-b.pem --dpop-key certs/dpop-key.pem --scope "read write admin")
printf %s "$dpop" > fuzz/dpop-access-token.txt
i=0
for t in "$mtls" "$dpop" "$both"; do
    i=$((i + 1))
    printf %s "$t" > $C/jws_compact/seed-token-$i
    b64d "$(cut -d. -f2 <<<"$t")" > $C/token_claims/seed-claims-$i
done

# DPoP proofs for the dpop_proof target's request, at its NOW, over its token.
url=https://api.example/resource
now=1800000000
bindgate dpop-proof --url "$url" --token "$dpop" --iat $now > $C/dpop_proof/seed-proof
bindgate dpop-proof --url "$url?page=2#top" --token "$dpop" --iat $now --nonce n-0S6_WzA2Mj > $C/dpop_proof/seed-proof-nonce
bindgate dpop-proof --url "$url" --method POST --token "$dpop" --iat $now > $C/dpop_proof/seed-proof-post
bindgate dpop-proof --url "$url" --iat $now > $C/dpop_proof/seed-proof-no-ath
proof=$(cat $C/dpop_proof/seed-proof)

# Requests as the credential extractor sees them: target line, then headers.
printf '/resource\r\nHost: api.example\r\nAuthorization: Bearer %s\r\n' "$mtls" > $C/credential_headers/seed-bearer
printf '/resource\r\nHost: api.example\r\nAuthorization: DPoP %s\r\nDPoP: %s\r\n' "$dpop" "$proof" > $C/credential_headers/seed-dpop
printf '/resource?access_token=%s&x=1\r\nHost: api.example\r\n' "$mtls" > $C/credential_headers/seed-query
printf '/resource\r\nAuthorization: Bearer %s\r\nauthorization: Basic YWxpY2U6c2VjcmV0\r\n' "$mtls" > $C/credential_headers/seed-two-authorizations

for u in "$url" "HTTPS://API.Example:443/a/./b/../c/%7euser?q=1#frag" "http://[::1]:8080/%2f%41/x/../" "https://api.example"; do
    printf %s "$u" > $C/htu_normalize/seed-$(printf %s "$u" | sha256sum | cut -c1-8)
done

# Request streams behind the target's 3-byte prefix (head limit 8193, no cuts).
frame() { { printf '\x20\x00\x00'; printf "$2"; } > $C/http1_framing/seed-$1; }
frame get 'GET /resource HTTP/1.1\r\nHost: api.example\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n'
frame post-length 'POST /orders HTTP/1.1\r\nHost: api.example\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"item":"42"}'
frame chunked-trailer 'POST /upload HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n'
frame length-and-chunked 'POST / HTTP/1.1\r\nHost: api.example\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: api.example\r\n\r\n'
frame pipelined-two-lengths 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nzGET /c HTTP/1.1\r\nHost: x\r\n\r\n'

# Subjects: entries of [type, kind, length, value] (see xfcc_roundtrip.rs).
subject() { python3 -c '
import sys
out = b""
for entry in sys.argv[2:]:
    ty, kind, value = entry.split(":", 2)
    value = value.encode()
    out += bytes([int(ty), int(kind), len(value)]) + value
open(sys.argv[1], "wb").write(out)' "$C/xfcc_roundtrip/seed-$1" "${@:2}"; }
for c in client-a client-b; do
    cn=$(openssl x509 -in certs/$c.pem -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')
    org=$(openssl x509 -in certs/$c.pem -noout -subject -nameopt multiline | sed -n 's/^ *organizationName *= //p')
    subject "$c" "1:0:$org" "0:0:$cn"
done
subject specials '3:1:US' '1:0:Acme, Inc.' '2:0:#ops+"dev"' '0:0: spiffe;id=<x>\ '
subject string-types '0:1:Printable Name' '8:2:client@example.com' '1:3:BMP org' '2:5:teletex ou' '5:4:Zürich'

cp gateway.toml $C/config_parse/seed-gateway.toml
cp bench/gateway.toml $C/config_parse/seed-bench-gateway.toml

# Key sets: the dev issuer's, the DPoP key's public JWK, an RSA and an Ed25519 key.
cp certs/jwks.json $C/jwks_document/seed-dev-jwks.json
b64d "$(cut -d. -f1 <<<"$proof")" | python3 -c 'import json,sys; print(json.dumps({"keys":[json.load(sys.stdin)["jwk"]]}))' > $C/jwks_document/seed-dpop-jwk.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$tmp/ed.pem"
n=$(openssl rsa -in "$tmp/rsa.pem" -noout -modulus | cut -d= -f2)
x=$(openssl pkey -in "$tmp/ed.pem" -pubout -outform DER | tail -c 32 | base64 -w0 | tr '+/' '-_' | tr -d =)
python3 - "$n" "$x" > $C/jwks_document/seed-rsa-ed25519.json <<'PY'
import base64, json, sys
n = base64.urlsafe_b64encode(bytes.fromhex(sys.argv[1])).rstrip(b"=").decode()
print(json.dumps({"keys": [
    {"kty": "RSA", "kid": "rsa-2048", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"},
    {"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": sys.argv[2]},
    {"kty": "RSA", "kid": "enc-1", "use": "enc", "n": n, "e": "AQAB"},
]}, indent=2))
PY
du -sh $C
