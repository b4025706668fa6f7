//! The family store's contract, one suite run against each backend: a real
//! SQLite file in a temp dir, and a private PostgreSQL cluster (plain, and
//! over verified TLS). The refresh rules above it are tested through
//! the binary; this pins what they rely on: a compare-and-set that exactly
//! one of many concurrent callers wins, grace bookkeeping, revocation, and
//! that nothing is answered before it is committed.

use std::sync::Arc;

use bindgate::config::StoreLocation;
use bindgate::issuer::store::{
    FamilyBinding, FamilyFilter, FamilyStore, MAX_GRACE_RETRIES, NewFamily, RevokeReason, Rotation, RotationKind,
    TokenHash,
};

pub fn new_family(id: &str, subject: &str, token: &str, now: i64) -> NewFamily {
    NewFamily {
        id: id.to_string(),
        client_id: "app".to_string(),
        subject: subject.to_string(),
        scope: vec!["orders:read".to_string(), "profile".to_string()],
        audience: vec!["https://api.example".to_string()],
        binding: FamilyBinding::Dpop {
            jkt: "jkt-1".to_string(),
        },
        created_at: now,
        expires_at: now + 3600,
        idle_timeout: 600,
        token_hash: TokenHash::of(token),
    }
}

fn advance<'a>(id: &'a str, expected: i64, successor: &str, now: i64) -> Rotation<'a> {
    Rotation {
        family_id: id,
        expected_generation: expected,
        kind: RotationKind::Advance,
        successor: TokenHash::of(successor),
        now,
    }
}

/// Every check of the contract, on one store.
pub async fn suite(store: FamilyStore) {
    let store = Arc::new(store);
    created_families_are_found_by_token_hash(&store).await;
    rotation_is_a_compare_and_set(&store).await;
    concurrent_rotations_have_one_winner(&store).await;
    grace_retries_replace_the_successor_at_most_three_times(&store).await;
    revocation_is_per_family_and_listed(&store).await;
    touch_slides_only_a_live_generation(&store).await;
    purge_removes_only_dead_families(&store).await;
}

async fn created_families_are_found_by_token_hash(store: &FamilyStore) {
    let now = 1_000_000;
    store
        .create(&new_family("fam-find", "alice", "rt-find-0", now))
        .await
        .unwrap();
    let presented = store.find(&TokenHash::of("rt-find-0")).await.unwrap().unwrap();
    assert_eq!(presented.generation, 0);
    assert!(!presented.replaced);
    let family = presented.family;
    assert_eq!(family.id, "fam-find");
    assert_eq!(family.subject, "alice");
    assert_eq!(family.scope, ["orders:read", "profile"]);
    assert_eq!(family.audience, ["https://api.example"]);
    assert_eq!(family.binding, FamilyBinding::Dpop { jkt: "jkt-1".into() });
    assert_eq!((family.generation, family.parent_generation), (0, None));
    assert_eq!(
        (family.expires_at, family.last_used_at, family.idle_timeout),
        (now + 3600, now, 600)
    );
    assert!(family.is_active(now));
    assert!(!family.is_active(now + 600), "idle after idle_timeout");
    assert!(store.find(&TokenHash::of("rt-find-1")).await.unwrap().is_none());
    assert_eq!(store.family("fam-find").await.unwrap().unwrap(), family);
    assert!(store.family("fam-none").await.unwrap().is_none());
}

async fn rotation_is_a_compare_and_set(store: &FamilyStore) {
    let now = 1_000_000;
    store
        .create(&new_family("fam-cas", "bob", "rt-cas-0", now))
        .await
        .unwrap();
    assert!(store.rotate(&advance("fam-cas", 0, "rt-cas-1", now + 5)).await.unwrap());
    // The same expectation again: the family has moved on, nothing is written.
    assert!(
        !store
            .rotate(&advance("fam-cas", 0, "rt-cas-1b", now + 6))
            .await
            .unwrap()
    );
    assert!(store.find(&TokenHash::of("rt-cas-1b")).await.unwrap().is_none());

    let old = store.find(&TokenHash::of("rt-cas-0")).await.unwrap().unwrap();
    assert_eq!(old.generation, 0);
    let family = old.family;
    assert_eq!((family.generation, family.parent_generation), (1, Some(0)));
    assert_eq!((family.rotated_at, family.last_used_at), (now + 5, now + 5));
    let new = store.find(&TokenHash::of("rt-cas-1")).await.unwrap().unwrap();
    assert_eq!(new.generation, 1);
}

async fn concurrent_rotations_have_one_winner(store: &Arc<FamilyStore>) {
    let now = 1_000_000;
    for round in 0..5 {
        let id = format!("fam-race-{round}");
        store
            .create(&new_family(&id, "carol", &format!("rt-race-{round}"), now))
            .await
            .unwrap();
        let mut racers = Vec::new();
        for racer in 0..20 {
            let store = store.clone();
            let id = id.clone();
            racers.push(tokio::spawn(async move {
                let successor = format!("rt-race-{round}-{racer}");
                let won = store.rotate(&advance(&id, 0, &successor, now + 1)).await.unwrap();
                (won, successor)
            }));
        }
        let mut winners = Vec::new();
        for racer in racers {
            let (won, successor) = racer.await.unwrap();
            let stored = store.find(&TokenHash::of(&successor)).await.unwrap();
            assert_eq!(stored.is_some(), won, "only a winner's successor is stored");
            if won {
                winners.push(successor);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(store.family(&id).await.unwrap().unwrap().generation, 1);
    }
}

async fn grace_retries_replace_the_successor_at_most_three_times(store: &FamilyStore) {
    let now = 1_000_000;
    store
        .create(&new_family("fam-grace", "dave", "rt-g-0", now))
        .await
        .unwrap();
    assert!(store.rotate(&advance("fam-grace", 0, "rt-g-1", now + 1)).await.unwrap());
    let mut live = "rt-g-1".to_string();
    for retry in 1..=MAX_GRACE_RETRIES {
        let expected = store.family("fam-grace").await.unwrap().unwrap().generation;
        let successor = format!("rt-g-retry-{retry}");
        let grace = Rotation {
            family_id: "fam-grace",
            expected_generation: expected,
            kind: RotationKind::GraceRetry { predecessor: 0 },
            successor: TokenHash::of(&successor),
            now: now + 1 + retry,
        };
        assert!(store.rotate(&grace).await.unwrap(), "retry {retry}");
        let replaced = store.find(&TokenHash::of(&live)).await.unwrap().unwrap();
        assert!(replaced.replaced, "the successor it replaced is marked");
        let family = store.family("fam-grace").await.unwrap().unwrap();
        assert_eq!(
            family.parent_generation,
            Some(0),
            "the predecessor stays the predecessor"
        );
        assert_eq!(family.grace_retries, retry);
        assert_eq!(family.rotated_at, now + 1, "a retry does not restart the grace clock");
        live = successor;
    }
    let expected = store.family("fam-grace").await.unwrap().unwrap().generation;
    let fourth = Rotation {
        family_id: "fam-grace",
        expected_generation: expected,
        kind: RotationKind::GraceRetry { predecessor: 0 },
        successor: TokenHash::of("rt-g-retry-4"),
        now: now + 10,
    };
    assert!(!store.rotate(&fourth).await.unwrap(), "a fourth retry is refused");
    assert!(!store.find(&TokenHash::of(&live)).await.unwrap().unwrap().replaced);
    // A normal rotation of the live token starts the count over.
    assert!(
        store
            .rotate(&advance("fam-grace", expected, "rt-g-next", now + 20))
            .await
            .unwrap()
    );
    let family = store.family("fam-grace").await.unwrap().unwrap();
    assert_eq!((family.grace_retries, family.parent_generation), (0, Some(expected)));
}

async fn revocation_is_per_family_and_listed(store: &FamilyStore) {
    let now = 2_000_000;
    store
        .create(&new_family("fam-erin-1", "erin", "rt-e1", now))
        .await
        .unwrap();
    store
        .create(&new_family("fam-erin-2", "erin", "rt-e2", now + 1))
        .await
        .unwrap();
    store
        .create(&new_family("fam-frank", "frank", "rt-f", now))
        .await
        .unwrap();

    assert!(store.revoke("fam-erin-1", RevokeReason::Reuse, now + 10).await.unwrap());
    assert!(
        !store
            .revoke("fam-erin-1", RevokeReason::Revocation, now + 11)
            .await
            .unwrap(),
        "once"
    );
    assert!(
        !store
            .revoke("fam-none", RevokeReason::Revocation, now + 11)
            .await
            .unwrap()
    );
    let revoked = store.family("fam-erin-1").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(now + 10));
    assert_eq!(revoked.revoked_reason.as_deref(), Some("reuse"));
    assert!(!revoked.is_active(now + 10));
    assert!(
        store.family("fam-erin-2").await.unwrap().unwrap().revoked_at.is_none(),
        "other devices untouched"
    );
    // A revoked family cannot rotate.
    assert!(
        !store
            .rotate(&advance("fam-erin-1", 0, "rt-e1-next", now + 12))
            .await
            .unwrap()
    );

    let since = store.revoked_since(now + 10).await.unwrap();
    assert!(since.iter().any(|f| f.id == "fam-erin-1" && f.revoked_at == now + 10));
    assert!(
        store
            .revoked_since(now + 11)
            .await
            .unwrap()
            .iter()
            .all(|f| f.id != "fam-erin-1")
    );

    let by_subject = |subject: &str| FamilyFilter {
        subject: Some(subject.to_string()),
        client_id: None,
    };
    let erin = store.list(&by_subject("erin")).await.unwrap();
    assert_eq!(
        erin.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["fam-erin-2", "fam-erin-1"]
    );
    let mut ids = store
        .revoke_subject("erin", RevokeReason::Operator, now + 20)
        .await
        .unwrap();
    ids.sort();
    assert_eq!(ids, ["fam-erin-2"], "only the families not yet revoked");
    assert!(store.family("fam-frank").await.unwrap().unwrap().revoked_at.is_none());
    let by_client = FamilyFilter {
        subject: None,
        client_id: Some("nobody".into()),
    };
    assert!(store.list(&by_client).await.unwrap().is_empty());
}

async fn touch_slides_only_a_live_generation(store: &FamilyStore) {
    let now = 3_000_000;
    store
        .create(&new_family("fam-touch", "gina", "rt-t", now))
        .await
        .unwrap();
    assert!(store.touch("fam-touch", 0, now + 100).await.unwrap());
    assert_eq!(
        store.family("fam-touch").await.unwrap().unwrap().last_used_at,
        now + 100
    );
    assert!(
        !store.touch("fam-touch", 1, now + 200).await.unwrap(),
        "not its generation"
    );
    store
        .revoke("fam-touch", RevokeReason::Revocation, now + 300)
        .await
        .unwrap();
    assert!(!store.touch("fam-touch", 0, now + 400).await.unwrap(), "revoked");
}

async fn purge_removes_only_dead_families(store: &FamilyStore) {
    let now = 4_000_000;
    let active_before = store.count_active(now).await.unwrap();
    store
        .create(&new_family("fam-old", "hank", "rt-old", now - 10_000))
        .await
        .unwrap();
    store
        .create(&new_family("fam-new", "hank", "rt-new", now))
        .await
        .unwrap();
    assert_eq!(store.count_active(now).await.unwrap(), active_before + 1);
    // Everything created before 2_100_000 is dead by `now`, fam-old too.
    let purged = store.purge(now, 1000).await.unwrap();
    assert!(purged >= 1, "{purged}");
    assert!(store.family("fam-old").await.unwrap().is_none());
    assert!(
        store.find(&TokenHash::of("rt-old")).await.unwrap().is_none(),
        "its tokens went with it"
    );
    assert!(store.family("fam-new").await.unwrap().is_some());
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("as.db");
    let store = FamilyStore::open(&StoreLocation::Sqlite(path.clone())).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    suite(store).await;

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the store file is its owner's only");
}

#[tokio::test]
async fn a_sqlite_store_survives_reopening_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("as.db");
    let location = StoreLocation::Sqlite(path.clone());
    {
        let store = FamilyStore::open(&location).await.unwrap();
        store
            .create(&new_family("fam-durable", "ivy", "rt-d-0", 1_000))
            .await
            .unwrap();
        assert!(store.rotate(&advance("fam-durable", 0, "rt-d-1", 1_001)).await.unwrap());
    }
    let store = FamilyStore::open(&location).await.unwrap();
    let old = store.find(&TokenHash::of("rt-d-0")).await.unwrap().unwrap();
    assert_eq!(
        (old.generation, old.family.generation),
        (0, 1),
        "the rotation was committed"
    );
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE bindgate_schema SET version = 99", []).unwrap();
    drop(conn);
    let refused = FamilyStore::open(&location)
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(refused.to_string().contains("version 99"), "{refused}");
}

#[tokio::test]
async fn the_postgres_store_keeps_the_contract() {
    let server = crate::common::postgres::postgres_server();
    let url = server.database("families");
    let store = FamilyStore::open(&StoreLocation::Postgres(url.clone())).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    suite(store).await;
    // Opening again (a second replica starting) finds the schema migrated.
    let again = FamilyStore::open(&StoreLocation::Postgres(url)).await.unwrap();
    assert!(again.family("fam-new").await.unwrap().is_some());
}

#[tokio::test]
async fn the_postgres_store_speaks_verified_tls_only_to_a_server_its_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::common::Pki::new(dir.path());
    let server = crate::common::postgres::postgres_server_tls(&pki.server.cert, &pki.server.key);
    let url = server.database("families_tls");
    let with_root =
        |ca: &std::path::Path| StoreLocation::Postgres(format!("{url}?sslmode=require&sslrootcert={}", ca.display()));
    let store = FamilyStore::open(&with_root(&pki.ca.cert_path)).await.unwrap();
    store
        .create(&new_family("fam-tls", "tls-user", "rt-tls", 1_000))
        .await
        .unwrap();
    assert!(store.find(&TokenHash::of("rt-tls")).await.unwrap().is_some());

    let stranger = crate::common::pki::Ca::new(dir.path(), "stranger");
    let refused = FamilyStore::open(&with_root(&stranger.cert_path))
        .await
        .err()
        .expect("a server certificate from another CA is refused");
    let message = refused.to_string();
    assert!(message.contains("could not be opened"), "{message}");
    assert!(
        !message.contains(server.url().split('@').next().unwrap_or("?")),
        "password leaked: {message}"
    );
}

#[tokio::test]
async fn a_postgres_store_that_went_down_answers_unavailable_not_a_hang() {
    let server = crate::common::postgres::postgres_server();
    let url = server.database("families_down");
    let store = FamilyStore::open(&StoreLocation::Postgres(url)).await.unwrap();
    store
        .create(&new_family("fam-down", "down", "rt-down", 1_000))
        .await
        .unwrap();
    drop(server);
    let failed = store
        .find(&TokenHash::of("rt-down"))
        .await
        .expect_err("the server is gone");
    assert_eq!(failed.label(), "unavailable", "{failed}");
}
