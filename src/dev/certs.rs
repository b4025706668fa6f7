//! `bindgate dev-certs`: a throwaway PKI for trying the gateway locally.
//! Never for production: the CA key sits next to the certificates.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::jose::jwk::{ThumbprintInput, thumbprint};

/// Why the dev material could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DevCertsError {
    #[error("{0} exists; pass --force to overwrite")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The files written, relative to the output directory.
pub const FILES: [&str; 11] = [
    "ca.pem",
    "ca-key.pem",
    "server.pem",
    "server-key.pem",
    "client-a.pem",
    "client-a-key.pem",
    "client-b.pem",
    "client-b-key.pem",
    "issuer-key.pem",
    "jwks.json",
    "dpop-key.pem",
];

/// How long the dev material stays valid: long enough that a checked-in copy keeps working.
const VALIDITY_DAYS: i64 = 3650;

/// Writes a dev CA, a server certificate for localhost, two client
/// certificates, an ES256 issuer key with its JWKS, and a client's DPoP key
/// into `out`.
pub fn write(out: &Path, force: bool) -> Result<Vec<PathBuf>, DevCertsError> {
    if !force && let Some(existing) = FILES.iter().map(|f| out.join(f)).find(|p| p.exists()) {
        return Err(DevCertsError::Exists(existing));
    }
    std::fs::create_dir_all(out).map_err(|source| DevCertsError::Write {
        path: out.to_path_buf(),
        source,
    })?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = params(&[], "bindgate dev CA")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate()?;
    let mut server_params = params(&["localhost", "127.0.0.1", "::1"], "localhost")?;
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &ca)?;

    let mut written = Vec::new();
    let mut put = |name: &str, contents: String| -> Result<(), DevCertsError> {
        let path = out.join(name);
        std::fs::write(&path, contents).map_err(|source| DevCertsError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
        Ok(())
    };
    put("ca.pem", ca_cert.pem())?;
    put("ca-key.pem", ca_key.serialize_pem())?;
    put("server.pem", server_cert.pem())?;
    put("server-key.pem", server_key.serialize_pem())?;

    for name in ["client-a", "client-b"] {
        let key = KeyPair::generate()?;
        let mut p = params(&[], name)?;
        p.subject_alt_names = vec![SanType::URI(format!("spiffe://bindgate.dev/{name}").try_into()?)];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &ca)?;
        put(&format!("{name}.pem"), cert.pem())?;
        put(&format!("{name}-key.pem"), key.serialize_pem())?;
    }

    let issuer_key = KeyPair::generate()?;
    put("issuer-key.pem", issuer_key.serialize_pem())?;
    put("jwks.json", jwks_for(&issuer_key))?;
    // A DPoP client makes its own key pair; no certificate vouches for it.
    put("dpop-key.pem", KeyPair::generate()?.serialize_pem())?;
    Ok(written)
}

fn params(sans: &[&str], common_name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, "bindgate dev");
    p.distinguished_name.push(DnType::CommonName, common_name);
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(VALIDITY_DAYS);
    Ok(p)
}

/// The public JWK (EC P-256) of `key` and its RFC 7638 thumbprint, used as `kid`.
pub fn ec_p256_jwk(key: &KeyPair) -> (serde_json::Value, String) {
    // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
    let point = key.public_key_raw();
    let (x, y) = point
        .get(1..)
        .unwrap_or_default()
        .split_at(point.len().saturating_sub(1) / 2);
    let x = URL_SAFE_NO_PAD.encode(x);
    let y = URL_SAFE_NO_PAD.encode(y);
    let kid = thumbprint(ThumbprintInput::Ec {
        crv: "P-256",
        x: &x,
        y: &y,
    });
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y,
        "kid": kid, "alg": "ES256", "use": "sig",
    });
    (jwk, kid)
}

fn jwks_for(key: &KeyPair) -> String {
    let (jwk, _) = ec_p256_jwk(key);
    let doc = serde_json::json!({ "keys": [jwk] });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
