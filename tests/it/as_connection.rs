//! One connection to the token endpoint, many requests: a `tls_client_auth`
//! client's chain is verified once per connection and configuration
//! generation, so a CRL loaded by a reload still refuses the very next
//! request on a connection whose chain was accepted before.

use std::time::Duration;

use crate::common::token_request::*;
use crate::common::*;

#[tokio::test]
async fn a_kept_connection_is_refused_on_its_next_request_once_a_reload_revokes_its_certificate() {
    let s = Setup::new().await;
    let signer = SigningKeyFile::ed25519(s.path(), "as-signer");
    let crl = s.pki.ca.crl(s.path(), "ca", &[]);
    let clients = [Client::tls_subject_dn("svc-tls", "CN=client-a,O=bindgate tests")];
    let spec = ConfigSpec {
        server: vec![format!("crl = [{:?}]", crl.display().to_string())],
        tail: vec![as_table_at(AS_ISSUER, "127.0.0.1:0", &[&signer], &[], &clients)],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let mut kept = s
        .client(Some(&s.pki.client_a), Alpn::Http1)
        .keep(gw.authorization_server.unwrap())
        .await
        .unwrap();
    for round in 0..3 {
        let reply = kept
            .send(token_request(Alpn::Http1, certificate_form("svc-tls", &[]), &[]))
            .await
            .unwrap();
        assert_eq!(assert_issued(&reply).token_type, "Bearer", "round {round}");
    }

    let reloads_before = gw.log_count("configuration reloaded");
    s.pki
        .ca
        .crl(s.path(), "ca", &[pki::serial_of(&s.pki.client_a.leaf_der)]);
    assert!(
        gw.wait_for_log_count("configuration reloaded", reloads_before + 1, Duration::from_secs(10))
            .await
    );
    let reply = kept
        .send(token_request(Alpn::Http1, certificate_form("svc-tls", &[]), &[]))
        .await
        .unwrap();
    assert_token_error(&reply, 401, "invalid_client");
    let line = token_access_lines(&gw).pop().unwrap();
    assert_eq!(field(&line, "reason").as_deref(), Some("certificate_revoked"), "{line}");
    assert_eq!(
        field(&line, "resumed").as_deref(),
        Some("false"),
        "the same connection: {line}"
    );
    let metrics = metrics_text(&gw).await;
    assert_eq!(
        sample(
            &metrics,
            "bindgate_as_tokens_issued_total{grant=\"client_credentials\",binding=\"mtls\"}"
        ),
        3.0
    );
}
