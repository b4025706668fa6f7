//! `bindgate families list` and `revoke` on the configured store: a real
//! SQLite file the test fills through the store's own API, read and changed
//! by the real binary.

use bindgate::config::StoreLocation;
use bindgate::issuer::store::{FamilyStore, TokenHash};

use crate::common::*;
use crate::family_store::new_family;

fn config_with_store(dir: &std::path::Path, store: &std::path::Path) -> std::path::PathBuf {
    let s = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n\
         [upstream]\nurl = \"http://127.0.0.1:1\"\n\
         [token]\nissuer = \"https://localhost:8444\"\naudience = [\"https://api.example\"]\n\
         [authorization_server]\nissuer = \"https://localhost:8444\"\nlisten = \"127.0.0.1:0\"\n\
         signing_keys = [\"as.pem\"]\nstore = {:?}\n",
        format!("sqlite:{}", store.display())
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, s).unwrap();
    path
}

#[tokio::test]
async fn families_are_listed_filtered_and_revoked_by_id_or_subject() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("families.db");
    let now = now();
    {
        let store = FamilyStore::open(&StoreLocation::Sqlite(db.clone())).await.unwrap();
        for (id, subject, token) in [
            ("fam-alice-phone", "alice", "rt-1"),
            ("fam-alice-tablet", "alice", "rt-2"),
            ("fam-bob", "bob", "rt-3"),
        ] {
            store.create(&new_family(id, subject, token, now)).await.unwrap();
        }
    }
    let config = config_with_store(dir.path(), &db);
    let config = config.to_str().unwrap();

    let (status, stdout, stderr) = run_cli_async(&["families", "list", "-c", config]).await;
    assert!(status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0].split('\t').collect::<Vec<_>>()[..5],
        ["ID", "CLIENT", "SUBJECT", "GENERATION", "STATE"]
    );
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[1..].iter().all(|l| l.contains("\tactive\t")), "{stdout}");

    let (_, alice, _) = run_cli_async(&["families", "list", "-c", config, "--sub", "alice"]).await;
    let ids: Vec<&str> = alice.lines().skip(1).map(|l| l.split('\t').next().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ["fam-alice-phone", "fam-alice-tablet"], "{alice}");
    let (_, nobody, _) = run_cli_async(&["families", "list", "-c", config, "--client", "nobody"]).await;
    assert_eq!(nobody.lines().count(), 1, "only the header: {nobody}");

    let (status, stdout, _) = run_cli_async(&["families", "revoke", "-c", config, "fam-bob"]).await;
    assert!(status.success());
    assert_eq!(stdout.trim(), "revoked fam-bob");
    let (status, stdout, stderr) = run_cli_async(&["families", "revoke", "-c", config, "fam-bob"]).await;
    assert!(status.success(), "revoking twice is no error");
    assert_eq!((stdout.trim(), stderr.trim()), ("", "0 families revoked"));

    let (status, stdout, stderr) = run_cli_async(&["families", "revoke", "-c", config, "--sub", "alice"]).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert_eq!(stderr.trim(), "2 families revoked");

    let (_, stdout, _) = run_cli_async(&["families", "list", "-c", config]).await;
    assert!(
        stdout.lines().skip(1).all(|l| l.contains("\trevoked:operator\t")),
        "{stdout}"
    );
    // What the CLI wrote is what the server reads.
    let store = FamilyStore::open(&StoreLocation::Sqlite(db)).await.unwrap();
    let presented = store.find(&TokenHash::of("rt-3")).await.unwrap().unwrap();
    assert_eq!(presented.family.revoked_reason.as_deref(), Some("operator"));
}

#[tokio::test]
async fn families_needs_an_authorization_server_and_one_of_id_or_sub() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n\
         [token]\nissuer = \"https://i.example\"\naudience = [\"a\"]\njwks = \"j.json\"\n",
    )
    .unwrap();
    let (status, _, stderr) = run_cli_async(&["families", "list", "-c", config.to_str().unwrap()]).await;
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("no [authorization_server]"), "{stderr}");
    let (status, _, stderr) = run_cli_async(&["families", "revoke", "-c", config.to_str().unwrap()]).await;
    assert_eq!(status.code(), Some(2), "clap's usage error: {stderr}");
}
