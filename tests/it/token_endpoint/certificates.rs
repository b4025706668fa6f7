//! The certificate methods of RFC 8705: `tls_client_auth` (a chain to
//! `client_ca` whose leaf names the client by subject DN or SAN) and
//! `self_signed_tls_client_auth` (a registered public key).

use serde_json::json;

use super::*;

/// Client A's subject DN as an operator might write it: other case, other
/// spacing, long attribute names, OIDs, an escaped space. RFC 4517
/// `distinguishedNameMatch` says each is the same name.
const CLIENT_A_SPELLINGS: [&str; 5] = [
    "cn=CLIENT-A,o=Bindgate Tests",
    "CN = client-a , O = bindgate   tests",
    "commonName=client-a,organizationName=bindgate tests",
    "2.5.4.3=client-a,2.5.4.10=bindgate\\20tests",
    "Cn=Client-A, O=BINDGATE TESTS ",
];

/// Names client A's certificate does not have: RDNs in the string's order
/// reversed, one RDN missing, one more, another value.
const NOT_CLIENT_A: [&str; 4] = [
    "O=bindgate tests,CN=client-a",
    "CN=client-a",
    "CN=client-a,O=bindgate tests,C=DE",
    "CN=client-a,O=bindgate test",
];

fn name_clients() -> Vec<Client> {
    let mut clients: Vec<Client> = CLIENT_A_SPELLINGS
        .iter()
        .enumerate()
        .map(|(i, dn)| Client::tls_subject_dn(&format!("dn-ok-{i}"), dn))
        .collect();
    clients.extend(
        NOT_CLIENT_A
            .iter()
            .enumerate()
            .map(|(i, dn)| Client::tls_subject_dn(&format!("dn-bad-{i}"), dn)),
    );
    clients.push(Client::tls_san_uri("svc-uri", "spiffe://test/client-b"));
    clients.push(Client::tls_san_dns("svc-dns", "SVC.Example.org"));
    clients
}

#[tokio::test]
async fn tls_client_auth_accepts_the_certificate_naming_the_client_by_dn_uri_or_dns_san() {
    let w = world(Options {
        clients: name_clients(),
        ..Options::default()
    })
    .await;
    let client_a = &w.s.pki.client_a;
    let mut accepted = 0;
    for alpn in [Alpn::Http1, Alpn::H2] {
        let answer = w
            .post(alpn, Some(client_a), &certificate_form("svc-tls", &[]), &[])
            .await;
        let issued = answer.issued("Bearer", "mtls");
        assert_eq!(issued.claims["cnf"], json!({ "x5t#S256": client_a.x5t() }), "{alpn:?}");
        assert_eq!(issued.claims["client_id"], "svc-tls", "{alpn:?}");
        assert_eq!(field(&answer.line, "client_id").as_deref(), Some("svc-tls"));
        accepted += 1;
    }
    for (i, written) in CLIENT_A_SPELLINGS.iter().enumerate() {
        let id = format!("dn-ok-{i}");
        let answer = w
            .post(Alpn::Http1, Some(client_a), &certificate_form(&id, &[]), &[])
            .await;
        assert_eq!(
            answer.reply.status, 200,
            "{written:?} does not match client A: {:?}",
            answer.reply.body
        );
        assert_eq!(answer.issued("Bearer", "mtls").claims["sub"], id.as_str());
        accepted += 1;
    }
    // Named by SAN: client B's URI, and a DNS name compared without case.
    for (id, cert) in [("svc-uri", &w.s.pki.client_b), ("svc-dns", &w.dns_leaf)] {
        let answer = w.post(Alpn::Http1, Some(cert), &certificate_form(id, &[]), &[]).await;
        let issued = answer.issued("Bearer", "mtls");
        assert_eq!(issued.claims["cnf"]["x5t#S256"], cert.x5t().as_str(), "{id}");
        accepted += 1;
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &tokens_issued("mtls")), accepted as f64, "{metrics}");
    assert_eq!(
        rows(&metrics, "bindgate_as_client_auth_failures_total"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn tls_client_auth_refuses_no_certificate_another_name_another_ca_a_revoked_or_an_expired_one() {
    let w = world(Options {
        clients: name_clients(),
        ..Options::default()
    })
    .await;
    // Client A's very subject, from a CA the authorization server does not trust, and self-signed.
    let foreign = w.s.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    let other_ca_a = pki::Ca::new(&foreign, "other-ca").client(&foreign, "client-a", false);
    let self_signed_a = pki::self_signed_client(&foreign, "client-a");
    let client_a = &w.s.pki.client_a;
    let mut cases: Vec<(String, Option<&CertFiles>, &str)> = vec![
        ("svc-tls".into(), None, "certificate_missing"),
        (
            "svc-tls".into(),
            Some(&w.s.pki.client_b),
            "certificate_subject_mismatch",
        ),
        ("svc-tls".into(), Some(&other_ca_a), "certificate_untrusted"),
        ("svc-tls".into(), Some(&self_signed_a), "certificate_untrusted"),
        ("svc-tls".into(), Some(&w.revoked), "certificate_revoked"),
        ("svc-tls".into(), Some(&w.expired), "certificate_expired"),
        ("svc-uri".into(), Some(client_a), "certificate_subject_mismatch"),
        ("svc-dns".into(), Some(client_a), "certificate_subject_mismatch"),
    ];
    for i in 0..NOT_CLIENT_A.len() {
        cases.push((format!("dn-bad-{i}"), Some(client_a), "certificate_subject_mismatch"));
    }
    for (i, (id, cert, reason)) in cases.iter().enumerate() {
        let alpn = if i % 2 == 0 { Alpn::Http1 } else { Alpn::H2 };
        let answer = w.post(alpn, *cert, &certificate_form(id, &[]), &[]).await;
        answer.refused(401, "invalid_client", reason);
        assert_eq!(field(&answer.line, "client_id").as_deref(), Some(id.as_str()));
    }
    // A client nobody registered, whatever certificate it has.
    let answer = w
        .post(Alpn::Http1, Some(client_a), &certificate_form("nobody", &[]), &[])
        .await;
    answer.refused(401, "invalid_client", "unknown_client");

    let metrics = w.metrics().await;
    let refused = cases.len() as f64;
    assert_eq!(
        sample(&metrics, &auth_failures("tls_client_auth")),
        refused,
        "{metrics}"
    );
    assert_eq!(sample(&metrics, &auth_failures("unknown")), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &token_errors("invalid_client")), refused + 1.0);
    assert_eq!(sample(&metrics, &token_requests(401)), refused + 1.0);
    assert_eq!(rows(&metrics, "bindgate_as_tokens_issued_total"), Vec::<String>::new());
}

#[tokio::test]
async fn self_signed_tls_client_auth_accepts_the_registered_key_and_no_other() {
    let w = world(Options::default()).await;
    for alpn in [Alpn::Http1, Alpn::H2] {
        let answer = w
            .post(alpn, Some(&w.self_signed), &certificate_form("svc-self", &[]), &[])
            .await;
        let issued = answer.issued("Bearer", "mtls");
        assert_eq!(
            issued.claims["cnf"],
            json!({ "x5t#S256": w.self_signed.x5t() }),
            "{alpn:?}"
        );
    }
    let another = pki::self_signed_client(w.s.path(), "another-self-signed");
    for (cert, reason) in [
        (Some(&another), "certificate_key_not_registered"),
        // Chained to the trusted CA, but its key is not the client's.
        (Some(&w.s.pki.client_a), "certificate_key_not_registered"),
        (None, "certificate_missing"),
    ] {
        let answer = w.post(Alpn::Http1, cert, &certificate_form("svc-self", &[]), &[]).await;
        answer.refused(401, "invalid_client", reason);
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &tokens_issued("mtls")), 2.0, "{metrics}");
    assert_eq!(
        sample(&metrics, &auth_failures("self_signed_tls_client_auth")),
        3.0,
        "{metrics}"
    );
}
