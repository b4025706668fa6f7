//! Confidential clients' families: bound by client authentication, so with
//! `refresh_rotation = "never"` (the default) a refresh returns no new
//! refresh token, the same one keeps working, and each refresh may bind the
//! access token to another DPoP key; with `"always"` it rotates, and reuse
//! is detected as for a public client.

use super::*;

const NEVER: &str = "svc-never";
const ALWAYS: &str = "svc-always";

async fn world() -> FamilyWorld {
    family_world(Options {
        clients: vec![
            certificate_client(NEVER, &["refresh_rotation = \"never\""]),
            certificate_client(ALWAYS, &["refresh_rotation = \"always\""]),
        ],
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_non_rotating_confidential_family_keeps_its_token_and_may_change_its_dpop_key() {
    let w = world().await;
    let client_a = &w.s.pki.client_a;
    let (first_key, second_key) = (DpopKey::new(), DpopKey::new());
    let start = tokens(&w.exchange_as(NEVER, Some(client_a), "max", Some(&first_key)).await);
    assert_eq!(start.issued.token_type, "DPoP");
    assert_eq!(start.jkt(), Some(first_key.jkt().as_str()));
    let token = start.refresh();

    let again = tokens(&w.refresh_as(NEVER, Some(client_a), token, Some(&first_key), &[]).await);
    assert!(again.refresh_token.is_none(), "no rotation: {:?}", again.json);
    assert!(again.refresh_expires_in.is_none(), "{:?}", again.json);
    assert_eq!(again.jkt(), Some(first_key.jkt().as_str()));
    assert_eq!(again.sid(), start.sid());

    // A new key on refresh: the access token is bound to it, not to the old one.
    let moved = tokens(&w.refresh_as(NEVER, Some(client_a), token, Some(&second_key), &[]).await);
    assert_eq!(moved.jkt(), Some(second_key.jkt().as_str()));
    w.assert_passes(moved.access(), &second_key, "max").await;
    w.assert_refused(moved.access(), &first_key, "jkt_mismatch").await;
    // Without a proof, the certificate binds it.
    let by_certificate = tokens(&w.refresh_as(NEVER, Some(client_a), token, None, &[]).await);
    assert_eq!(by_certificate.issued.token_type, "Bearer");
    assert_eq!(
        by_certificate.issued.claims["cnf"]["x5t#S256"].as_str(),
        Some(client_a.x5t().as_str())
    );

    // Only the client, authenticated, may use it.
    let client_b = w
        .refresh_as(NEVER, Some(&w.s.pki.client_b), token, Some(&first_key), &[])
        .await;
    assert_token_error(&client_b, 401, "invalid_client");
    assert_invalid_grant(&w.refresh_as(APP, None, token, Some(&first_key), &[]).await);
    w.assert_token_reasons("refresh_token_other_client", 1).await;

    // Still the same live token, never rotated, nothing revoked.
    assert!(w.active(token).await);
    assert!(
        tokens(&w.refresh_as(NEVER, Some(client_a), token, Some(&first_key), &[]).await)
            .refresh_token
            .is_none()
    );
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, ROTATIONS_TOTAL), 0.0, "{metrics}");
    assert_eq!(sample(&metrics, REUSE_TOTAL), 0.0, "{metrics}");
}

#[tokio::test]
async fn a_rotating_confidential_family_detects_reuse() {
    let w = world().await;
    let client_a = &w.s.pki.client_a;
    let (first_key, second_key) = (DpopKey::new(), DpopKey::new());
    let refresh = async |token: &str, key: &DpopKey| w.refresh_as(ALWAYS, Some(client_a), token, Some(key), &[]).await;
    let start = tokens(&w.exchange_as(ALWAYS, Some(client_a), "ned", Some(&first_key)).await);
    let second = tokens(&refresh(start.refresh(), &second_key).await);
    assert_ne!(second.refresh(), start.refresh(), "rotated");
    assert_eq!(second.jkt(), Some(second_key.jkt().as_str()), "a new key is allowed");
    let third = tokens(&refresh(second.refresh(), &first_key).await);
    assert_ne!(third.refresh(), second.refresh());
    w.assert_passes(third.access(), &first_key, "ned").await;

    // The first token, two rotations back: reuse, the family dies.
    assert_invalid_grant(&refresh(start.refresh(), &first_key).await);
    w.assert_token_reasons("refresh_token_reused", 1).await;
    assert_invalid_grant(&refresh(third.refresh(), &first_key).await);
    w.assert_token_reasons("family_revoked", 1).await;
    w.assert_refused(third.access(), &first_key, "token_revoked").await;
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, REUSE_TOTAL), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, ROTATIONS_TOTAL), 2.0, "{metrics}");
}
