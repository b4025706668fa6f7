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
    #[error("cannot publish a generated key: {0}")]
    Key(String),
}

/// The files written, relative to the output directory.
pub const FILES: [&str; 16] = [
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
    "as-signing-key.pem",
    "app-key.pem",
    "app.jwks.json",
    "idp-key.pem",
    "idp.jwks.json",
];

/// How long the dev material stays valid: long enough that a checked-in copy keeps working.
const VALIDITY_DAYS: i64 = 3650;

/// Writes a dev CA, a server certificate for localhost, two client
/// certificates, an ES256 issuer key with its JWKS, a client's DPoP key and
/// the embedded authorization server's Ed25519 signing key into `out`.
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
    let mut put_readable = |name: &str, contents: String, readable: Readable| -> Result<(), DevCertsError> {
        let path = out.join(name);
        write_file(&path, contents.as_bytes(), readable).map_err(|source| DevCertsError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
        Ok(())
    };
    let mut put = |name: &str, contents: String| put_readable(name, contents, Readable::ByAll);
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
    // What `[authorization_server] signing_keys` names; EdDSA, so the dev
    // setup exercises the algorithm the dev issuer key does not.
    let as_key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    put_readable("as-signing-key.pem", as_key.serialize_pem(), Readable::ByOwnerOnly)?;
    // The shipped `private_key_jwt` client "app": its assertion key, and the
    // JWKS the authorization server checks its assertions against.
    let app_key = KeyPair::generate()?;
    let app_jwks = public_jwks(&app_key.serialize_pem())?;
    put_readable("app-key.pem", app_key.serialize_pem(), Readable::ByAll)?;
    put_readable("app.jwks.json", app_jwks, Readable::ByAll)?;
    // The dev identity provider a public client signs its user in with; its
    // id_tokens (`bindgate mint --id-token`) are what the app exchanges.
    let idp_key = KeyPair::generate()?;
    put_readable("idp-key.pem", idp_key.serialize_pem(), Readable::ByOwnerOnly)?;
    put_readable("idp.jwks.json", jwks_for(&idp_key), Readable::ByAll)?;
    Ok(written)
}

/// Who may read a file `write` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readable {
    ByAll,
    /// Mode 0600 on Unix: a key that signs tokens the gateway trusts.
    ByOwnerOnly,
}

fn write_file(path: &Path, contents: &[u8], readable: Readable) -> std::io::Result<()> {
    #[cfg(unix)]
    if readable == Readable::ByOwnerOnly {
        use std::io::Write as _;
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        // A file overwritten with --force keeps its old mode through open():
        // narrow it before the key goes in.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        return file.write_all(contents);
    }
    #[cfg(not(unix))]
    let _ = readable;
    std::fs::write(path, contents)
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

/// The JWKS of one key as the authorization server's own `/jwks` would
/// publish it: `kid` its RFC 7638 thumbprint, `alg` and `use` set.
fn public_jwks(pem: &str) -> Result<String, DevCertsError> {
    let key = crate::jose::sign::SigningKey::from_pem(pem.as_bytes()).map_err(|e| DevCertsError::Key(e.to_string()))?;
    let doc = serde_json::json!({ "keys": [key.public_jwk()] });
    Ok(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
}

fn jwks_for(key: &KeyPair) -> String {
    let (jwk, _) = ec_p256_jwk(key);
    let doc = serde_json::json!({ "keys": [jwk] });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::Algorithm;
    use crate::jose::sign::SigningKey;

    #[test]
    fn writes_every_listed_file_and_an_ed25519_signing_key_for_the_authorization_server() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(dir.path(), false).unwrap();
        let expected: Vec<PathBuf> = FILES.iter().map(|f| dir.path().join(f)).collect();
        assert_eq!(written, expected);
        let key = SigningKey::from_pem_file(&dir.path().join("as-signing-key.pem")).unwrap();
        assert_eq!(key.alg(), Algorithm::EdDSA);
        assert!(matches!(write(dir.path(), false), Err(DevCertsError::Exists(_))));
    }

    #[cfg(unix)]
    #[test]
    fn the_signing_key_is_readable_by_its_owner_only_even_when_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("as-signing-key.pem");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(dir.path(), true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
