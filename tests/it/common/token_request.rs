//! Token requests to the embedded authorization server, made here rather
//! than by the code under test: urlencoded forms, client assertions signed
//! with ES256 or EdDSA, DPoP proofs addressed to the token endpoint, a CA of
//! the tests' own for the certificates the standard PKI does not make
//! (a DNS SAN, an expired or revoked one with a client's name), client
//! tables, and readers for the token response, the access token, the
//! access line and the metrics.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};

use super::dpop::DpopKey;
use super::{AS_ISSUER, Alpn, CertFiles, GatewayProcess, Reply, SigningKeyFile, TlsClient, admin_get, now, request};

/// The token endpoint's path on the test listener.
pub const TOKEN_PATH: &str = "/token";

/// The audiences the standard test clients may ask for; the gateway trusts the first.
pub const API: &str = "https://api.example";
pub const OTHER_API: &str = "https://other.example";

/// The scope the standard test clients are registered with.
pub const SCOPE: &str = "orders:read orders:write";

/// `client_assertion_type` of RFC 7523.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The URL a DPoP proof to the token endpoint names (`htu`): the issuer's, not the port bound.
pub fn token_url(issuer: &str) -> String {
    format!("{issuer}{TOKEN_PATH}")
}

/// An `application/x-www-form-urlencoded` body of `params`, in order.
pub fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `POST /token` with `body` as a form and one `DPoP` header per proof.
pub fn token_request(alpn: Alpn, body: impl Into<Bytes>, proofs: &[&str]) -> Request<Full<Bytes>> {
    let mut req = request(alpn, "POST", TOKEN_PATH, None, body);
    let headers = req.headers_mut();
    headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    for proof in proofs {
        headers.append("dpop", proof.parse().unwrap());
    }
    req
}

/// Sends `req` to the authorization server's listener on a new connection.
pub async fn send_to_as(client: &TlsClient, gw: &GatewayProcess, req: Request<Full<Bytes>>) -> Reply {
    let addr = gw
        .authorization_server
        .expect("the authorization server's listener was announced");
    client
        .send(addr, req)
        .await
        .unwrap_or_else(|e| panic!("POST /token: {e}\n{}", gw.stderr()))
}

/// Asserts `reply` is an RFC 6749 section 5.2 error with `status` and
/// `error`, JSON with exactly `error` and `error_description`, not to be
/// stored; returns the description.
#[track_caller]
pub fn assert_token_error(reply: &Reply, status: u16, error: &str) -> String {
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status, status, "expected {status} {error}: {body}");
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"), "{body}");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json"),
        "{body}"
    );
    let json = reply.json();
    assert_eq!(json["error"], error, "{body}");
    let members: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(members, ["error", "error_description"], "{body}");
    let description = json["error_description"].as_str().unwrap_or_default().to_string();
    assert!(!description.is_empty(), "{body}");
    description
}

/// A successful token response, read.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: Option<String>,
    /// The access token's JOSE header and claims, decoded (not verified).
    pub header: Value,
    pub claims: Value,
}

/// Asserts `reply` is a token response (RFC 6749 section 5.1: JSON,
/// `no-store`) and reads it.
#[track_caller]
pub fn assert_issued(reply: &Reply) -> Issued {
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status, 200, "{body}");
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"), "{body}");
    assert_eq!(reply.header("pragma").as_deref(), Some("no-cache"), "{body}");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json"),
        "{body}"
    );
    let json = reply.json();
    let access_token = json["access_token"].as_str().expect("access_token").to_string();
    let (header, claims) = decode_jwt(&access_token);
    Issued {
        token_type: json["token_type"].as_str().expect("token_type").to_string(),
        expires_in: json["expires_in"].as_u64().expect("expires_in"),
        scope: json["scope"].as_str().map(str::to_string),
        access_token,
        header,
        claims,
    }
}

/// The header and claims of a compact JWS, decoded without verifying it.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    let part = |b64: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).unwrap()).unwrap() };
    (part(parts[0]), part(parts[1]))
}

/// Whether `token`'s signature verifies with the public key of `key`, an
/// Ed25519 signing key of the authorization server.
pub fn signed_by(token: &str, key: &SigningKeyFile) -> bool {
    assert_eq!(key.alg, "EdDSA", "the tests verify Ed25519 signatures only");
    let (input, signature) = token.rsplit_once('.').unwrap();
    let public = URL_SAFE_NO_PAD.decode(&key.x).unwrap();
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, public)
        .verify(input.as_bytes(), &signature)
        .is_ok()
}

/// The public JWK of an Ed25519 signing key of the authorization server,
/// as the gateway reads it from a JWKS file.
pub fn signing_jwk(key: &SigningKeyFile) -> Value {
    assert_eq!(key.alg, "EdDSA", "the tests publish Ed25519 signing keys only");
    json!({"kty": "OKP", "crv": "Ed25519", "x": key.x, "kid": key.kid, "alg": "EdDSA", "use": "sig"})
}

/// Writes `{"keys": [...]}` to `dir/name` and returns its path.
pub fn write_jwks(dir: &Path, name: &str, keys: &[Value]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
    path
}

/// An `[[issuer]]` table trusting the authorization server at `issuer`
/// for [`API`], with `signer`'s public key in a JWKS file in `dir`.
pub fn trust_the_issuer(dir: &Path, issuer: &str, signer: &SigningKeyFile) -> String {
    let jwks = write_jwks(dir, "as-public.jwks.json", &[signing_jwk(signer)]);
    format!(
        "[[issuer]]\nissuer = {issuer:?}\naudience = [{API:?}]\njwks = {:?}\n",
        jwks.display().to_string()
    )
}

/// A unique string: a `jti` no earlier test request used.
pub fn fresh_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!(
        "id-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A key a `private_key_jwt` client signs its assertions with.
pub struct AssertionKey {
    /// `ES256` or `EdDSA`.
    pub alg: &'static str,
    pub kid: String,
    /// PKCS#8 PEM, for a client that reads it from a file. Of ES256 keys
    /// only: the v2 PKCS#8 aws-lc writes for Ed25519 is one OpenSSL (and
    /// so Node.js) does not read.
    pub pem_path: PathBuf,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl AssertionKey {
    pub fn es256(dir: &Path, kid: &str) -> AssertionKey {
        AssertionKey::generate(dir, kid, &rcgen::PKCS_ECDSA_P256_SHA256, "ES256")
    }

    pub fn ed25519(dir: &Path, kid: &str) -> AssertionKey {
        AssertionKey::generate(dir, kid, &rcgen::PKCS_ED25519, "EdDSA")
    }

    fn generate(dir: &Path, kid: &str, alg: &'static rcgen::SignatureAlgorithm, name: &'static str) -> AssertionKey {
        let pair = KeyPair::generate_for(alg).unwrap();
        let pem_path = dir.join(format!("assertion-{kid}.pem"));
        std::fs::write(&pem_path, pair.serialize_pem()).unwrap();
        AssertionKey {
            alg: name,
            kid: kid.to_string(),
            pem_path,
            pkcs8: pair.serialize_der(),
            public: pair.public_key_raw().to_vec(),
        }
    }

    /// The public JWK, with `kid` and `alg`.
    pub fn jwk(&self) -> Value {
        match self.alg {
            "ES256" => json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&self.public[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&self.public[33..65]),
                "kid": self.kid, "alg": "ES256",
            }),
            _ => json!({
                "kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&self.public),
                "kid": self.kid, "alg": "EdDSA",
            }),
        }
    }

    pub fn header(&self) -> Value {
        json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"})
    }

    /// The claims of a valid assertion of `client_id` to the authorization server at `issuer`.
    pub fn claims(&self, client_id: &str, issuer: &str) -> Value {
        let now = now();
        json!({
            "iss": client_id,
            "sub": client_id,
            "aud": issuer,
            "iat": now,
            "exp": now + 60,
            "jti": fresh_id(),
        })
    }

    /// A valid assertion of `client_id` for [`AS_ISSUER`].
    pub fn assertion(&self, client_id: &str) -> String {
        self.sign(&self.header(), &self.claims(client_id, AS_ISSUER))
    }

    /// Signs exactly `header` and `claims` with this key (whatever `header` says `alg` is).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match self.alg {
            "ES256" => {
                use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8).unwrap();
                let rng = aws_lc_rs::rand::SystemRandom::new();
                pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec()
            }
            _ => {
                let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8).unwrap();
                pair.sign(input.as_bytes()).as_ref().to_vec()
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The form of a `client_credentials` request authenticated by `assertion`, plus `extra`.
pub fn assertion_form(client_id: Option<&str>, assertion: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![("grant_type", "client_credentials")];
    if let Some(id) = client_id {
        params.push(("client_id", id));
    }
    params.extend([("client_assertion_type", JWT_BEARER), ("client_assertion", assertion)]);
    params.extend_from_slice(extra);
    form(&params)
}

/// The form of a `client_credentials` request of a certificate-authenticated client, plus `extra`.
pub fn certificate_form(client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![("grant_type", "client_credentials"), ("client_id", client_id)];
    params.extend_from_slice(extra);
    form(&params)
}

/// Claims of a valid DPoP proof for `POST <issuer>/token` (no `ath`: there is no token yet).
pub fn proof_claims(issuer: &str, nonce: Option<&str>) -> Value {
    let mut claims = json!({
        "jti": fresh_id(),
        "htm": "POST",
        "htu": token_url(issuer),
        "iat": now(),
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    claims
}

/// A valid DPoP proof of `key` for the token endpoint of [`AS_ISSUER`].
pub fn token_proof(key: &DpopKey, nonce: Option<&str>) -> String {
    key.sign(&key.header(), &proof_claims(AS_ISSUER, nonce))
}

/// The public JWK (EC P-256) of the key in `files`, for a self-signed certificate's client JWKS.
pub fn certificate_jwk(files: &CertFiles, kid: &str) -> Value {
    let pem = std::fs::read_to_string(&files.key).unwrap();
    let pair = KeyPair::from_pem(&pem).unwrap();
    let point = pair.public_key_raw();
    assert_eq!(point.len(), 65, "the test certificates have P-256 keys");
    json!({
        "kty": "EC", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        "kid": kid,
    })
}

/// A registered client, as `[[authorization_server.client]]` writes it:
/// the standard scope and audiences unless changed.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    auth: Vec<String>,
    grant_types: String,
    binding: Option<String>,
}

impl Client {
    fn new(id: &str, auth: Vec<String>) -> Client {
        Client {
            id: id.to_string(),
            auth,
            grant_types: "[\"client_credentials\"]".to_string(),
            binding: None,
        }
    }

    pub fn tls_subject_dn(id: &str, dn: &str) -> Client {
        Client::new(
            id,
            vec![
                "auth = \"tls_client_auth\"".into(),
                format!("tls_client_auth_subject_dn = {dn:?}"),
            ],
        )
    }

    pub fn tls_san_uri(id: &str, uri: &str) -> Client {
        Client::new(
            id,
            vec![
                "auth = \"tls_client_auth\"".into(),
                format!("tls_client_auth_san_uri = {uri:?}"),
            ],
        )
    }

    pub fn tls_san_dns(id: &str, dns: &str) -> Client {
        Client::new(
            id,
            vec![
                "auth = \"tls_client_auth\"".into(),
                format!("tls_client_auth_san_dns = {dns:?}"),
            ],
        )
    }

    pub fn self_signed(id: &str, jwks: &Path) -> Client {
        Client::new(
            id,
            vec![
                "auth = \"self_signed_tls_client_auth\"".into(),
                format!("jwks = {:?}", jwks.display().to_string()),
            ],
        )
    }

    pub fn private_key_jwt(id: &str, jwks: &Path) -> Client {
        Client::new(
            id,
            vec![
                "auth = \"private_key_jwt\"".into(),
                format!("jwks = {:?}", jwks.display().to_string()),
            ],
        )
    }

    /// A public client (`auth = "none"`), bound by DPoP only.
    pub fn public(id: &str) -> Client {
        Client::new(id, vec!["auth = \"none\"".into()]).binding("[\"dpop\"]")
    }

    /// `binding = <list>`, as TOML: `["mtls"]`.
    pub fn binding(mut self, list: &str) -> Client {
        self.binding = Some(list.to_string());
        self
    }

    /// `grant_types = <list>`, as TOML.
    pub fn grant_types(mut self, list: &str) -> Client {
        self.grant_types = list.to_string();
        self
    }

    pub fn render(&self) -> String {
        let mut lines = vec![
            "[[authorization_server.client]]".to_string(),
            format!("client_id = {:?}", self.id),
        ];
        lines.extend(self.auth.iter().cloned());
        lines.push(format!("grant_types = {}", self.grant_types));
        lines.push(format!("scope = {SCOPE:?}"));
        lines.push(format!("audience = [{API:?}, {OTHER_API:?}]"));
        if let Some(binding) = &self.binding {
            lines.push(format!("binding = {binding}"));
        }
        lines.join("\n") + "\n"
    }
}

/// `[authorization_server]` at `issuer` on `listen`, with `lines` and then `clients`.
pub fn as_table_at(
    issuer: &str,
    listen: &str,
    keys: &[&SigningKeyFile],
    lines: &[String],
    clients: &[Client],
) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("{:?}", k.path.display().to_string()))
        .collect();
    let clients: Vec<String> = clients.iter().map(Client::render).collect();
    format!(
        "[authorization_server]\nissuer = {issuer:?}\nlisten = {listen:?}\nsigning_keys = [{}]\n{}\n\n{}\n",
        keys.join(", "),
        lines.join("\n"),
        clients.join("\n")
    )
}

/// A certificate authority of these tests, for leaves with any subject,
/// SANs and validity.
pub struct OwnCa {
    params: CertificateParams,
    key: KeyPair,
    pub cert_pem: String,
}

impl OwnCa {
    pub fn new(dir: &Path, name: &str) -> OwnCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        OwnCa {
            params,
            key,
            cert_pem: cert.pem(),
        }
    }

    /// A client certificate (EKU clientAuth) with `subject` (most general
    /// attribute first, as certificates order them) and `sans`; `expired`
    /// makes one whose validity ended yesterday.
    pub fn leaf(
        &self,
        dir: &Path,
        name: &str,
        subject: &[(DnType, &str)],
        sans: Vec<SanType>,
        expired: bool,
    ) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = if expired {
            (now - time::Duration::days(30), now - time::Duration::days(1))
        } else {
            (now - time::Duration::days(1), now + time::Duration::days(30))
        };
        let cert = params
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .unwrap();
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        CertFiles {
            cert: cert_path,
            key: key_path,
            leaf_der: cert.der().to_vec(),
        }
    }

    /// A PEM CRL of this CA revoking `revoked`.
    pub fn crl(&self, dir: &Path, name: &str, revoked: &[&CertFiles]) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(5),
            next_update: now + time::Duration::days(1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|cert| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(&super::pki::serial_of(&cert.leaf_der)),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&Issuer::from_params(&self.params, &self.key)).unwrap();
        let path = dir.join(format!("{name}.crl.pem"));
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }
}

/// The admin listener's `/metrics`.
pub async fn metrics_text(gw: &GatewayProcess) -> String {
    let (status, text) = admin_get(gw.admin.expect("an admin listener"), "/metrics").await;
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of `sample` (full name with labels), 0 when the row is absent.
pub fn sample(text: &str, sample: &str) -> f64 {
    super::metric(text, sample).unwrap_or(0.0)
}

/// Every row of the metric family `name`.
pub fn rows(text: &str, name: &str) -> Vec<String> {
    let prefix = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// The access lines of token endpoint requests, in the order written.
pub fn token_access_lines(gw: &GatewayProcess) -> Vec<String> {
    let needle = format!("path={TOKEN_PATH} ");
    gw.stderr()
        .lines()
        .filter(|l| l.contains("bindgate::access") && l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// The value of `field` in an access line: `reason="served"` gives `served`, `status=200` gives `200`.
pub fn field(line: &str, field: &str) -> Option<String> {
    let start = line.find(&format!(" {field}="))? + field.len() + 2;
    let rest = &line[start..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => rest.split(' ').next()?,
    };
    Some(value.to_string())
}
