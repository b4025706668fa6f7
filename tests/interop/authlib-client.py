"""A second OAuth client nobody here wrote, for bindgate's authorization-server
interoperability tests: Authlib's requests integration (OAuth2Session) reads
the token endpoint from bindgate's RFC 8414 metadata and asks for a
client_credentials token, authenticating with tls_client_auth (the requests
session presents the client certificate; Authlib sends client_id as the "none"
method does) or with private_key_jwt (Authlib's PrivateKeyJWT, with the issuer
as the assertion's audience, as draft-ietf-oauth-rfc7523bis requires). Authlib
has no DPoP client, so its tokens are certificate-bound.

Input: one JSON document as the only argument:
  {"issuer": "https://localhost:port", "client_id": "...",
   "auth": "tls_client_auth" | "private_key_jwt",
   "ca": "ca.pem", "cert": "client.pem", "key": "client-key.pem",
   "assertion_key": "pkcs8.pem" | null, "assertion_alg": "ES256" | "EdDSA",
   "scope": "..." | null, "call": "https://gateway/path" | null}
Output on stdout, one JSON document:
  {"token": <the token endpoint's response>, "call": {"status": n, "body": "..."} | null}
or on an OAuth error {"error": ..., "error_description": ..., "status": n}, exit 0.
"""

import json
import sys
import time

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey, OKPKey

class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's PrivateKeyJWT with a one-minute assertion: its default is an
    hour, and bindgate accepts at most five minutes (an assertion is made for
    one request). The claims are made afresh per assertion, since Authlib
    writes the jti into the claims dict it is given and would reuse it."""

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            claims={"exp": int(time.time()) + 60},
            alg=self.alg,
        )


params = json.loads(sys.argv[1])
tls = {"verify": params["ca"], "cert": (params["cert"], params["key"])}

metadata_url = params["issuer"].rstrip("/") + "/.well-known/oauth-authorization-server"
metadata = requests.get(metadata_url, timeout=10, **tls).json()
token_endpoint = metadata["token_endpoint"]
alias = metadata.get("mtls_endpoint_aliases", {}).get("token_endpoint")
if alias:
    # RFC 8705 section 5: a client using mTLS uses the alias.
    token_endpoint = alias

if params["auth"] == "private_key_jwt":
    with open(params["assertion_key"], "rb") as f:
        pem = f.read()
    key_type = OKPKey if params.get("assertion_alg") == "EdDSA" else ECKey
    session = OAuth2Session(
        params["client_id"],
        key_type.import_key(pem),
        token_endpoint_auth_method="private_key_jwt",
        scope=params.get("scope"),
    )
    session.register_client_auth_method(
        ShortLivedPrivateKeyJWT(metadata["issuer"], alg=params.get("assertion_alg", "ES256"))
    )
else:
    session = OAuth2Session(
        params["client_id"], token_endpoint_auth_method="none", scope=params.get("scope")
    )
try:
    token = session.fetch_token(token_endpoint, grant_type="client_credentials", **tls)
except OAuthError as e:
    print(json.dumps({"error": e.error, "error_description": e.description, "status": None}))
    sys.exit(0)

result = {"token": dict(token), "call": None}
if params.get("call"):
    reply = requests.get(
        params["call"],
        headers={"Authorization": f"{token['token_type']} {token['access_token']}"},
        timeout=10,
        **tls,
    )
    result["call"] = {"status": reply.status_code, "body": reply.text}
print(json.dumps(result))
