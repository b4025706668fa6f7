//! The PostgreSQL test harness itself (tests/it/common/postgres.rs): a
//! private cluster answers with password authentication, its databases are
//! independent, the TLS variant really speaks TLS, and dropping the server
//! really stops it.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::common::postgres::{STOP_TIMEOUT, postgres_server, postgres_server_tls, postgres_server_trying_port_first};
use crate::common::{Pki, pki};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn databases_of_one_server_are_independent() {
    let server = postgres_server();
    let alpha = server.database("alpha");
    let beta = server.database("beta");
    assert_ne!(alpha, beta);

    for (url, name, rows) in [(&alpha, "alpha", &["a1", "a2"][..]), (&beta, "beta", &["b1"][..])] {
        let client = connect(url).await;
        let current: String = client.query_one("SELECT current_database()", &[]).await.unwrap().get(0);
        assert_eq!(current, name);
        client
            .batch_execute("CREATE TABLE items (id serial PRIMARY KEY, value text NOT NULL)")
            .await
            .unwrap();
        for value in rows {
            client
                .execute("INSERT INTO items (value) VALUES ($1)", &[value])
                .await
                .unwrap();
        }
    }

    // Each database holds exactly its own rows, read back on a new connection.
    for (url, expected) in [(&alpha, vec!["a1", "a2"]), (&beta, vec!["b1"])] {
        let client = connect(url).await;
        let values: Vec<String> = client
            .query("SELECT value FROM items ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(values, expected, "{url}");
    }

    // The default database exists and is empty of them.
    let client = connect(&server.url()).await;
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE tablename = 'items'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
    let fsync: String = client.query_one("SHOW fsync", &[]).await.unwrap().get(0);
    assert_eq!(fsync, "on");
    let listen: String = client.query_one("SHOW listen_addresses", &[]).await.unwrap().get(0);
    assert_eq!(listen, "127.0.0.1");
    let superuser: bool = client
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert!(superuser);
}

#[tokio::test]
async fn the_password_is_required() {
    let server = postgres_server();
    let wrong = server.url().replacen("bindgate:", "bindgate:wrong", 1);
    let err = tokio_postgres::connect(&wrong, tokio_postgres::NoTls)
        .await
        .err()
        .expect("a wrong password is refused");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err:?}"
    );
    let method = server
        .psql(
            &server.url(),
            "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host'",
        )
        .unwrap();
    assert_eq!(method, "scram-sha-256");
    // The same database name twice is an error, not a silent reuse.
    server.database("once");
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.database("once")));
    assert!(again.is_err());
}

#[test]
fn the_tls_server_speaks_only_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let server = postgres_server_tls(&pki.server.cert, &pki.server.key);
    let url = server.database("secure");

    let require = format!("{url}?sslmode=require");
    assert_eq!(server.psql(&require, "SHOW ssl").unwrap(), "on");
    assert_eq!(
        server
            .psql(
                &require,
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
            .unwrap(),
        "t|TLSv1.3"
    );
    let refused = server
        .psql(&format!("{url}?sslmode=disable"), "SELECT 1")
        .expect_err("plaintext is refused");
    assert!(refused.contains("no encryption"), "{refused}");
}

#[tokio::test]
async fn the_tls_server_certificate_verifies_against_the_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let server = postgres_server_tls(&pki.server.cert, &pki.server.key);
    let verified = |ca: &Path| {
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(der.unwrap()).unwrap();
        }
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        tokio_postgres_rustls::MakeRustlsConnect::new(config)
    };
    let url = format!("{}?sslmode=require", server.url());

    let (client, connection) = tokio_postgres::connect(&url, verified(&pki.ca.cert_path))
        .await
        .unwrap();
    tokio::spawn(connection);
    let ssl: bool = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(ssl);

    let stranger = pki::Ca::new(dir.path(), "stranger");
    let err = tokio_postgres::connect(&url, verified(&stranger.cert_path))
        .await
        .err()
        .expect("a CA that did not sign the server certificate is refused");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
}

#[tokio::test]
async fn drop_stops_the_server_and_its_sessions() {
    let server = postgres_server();
    let port = server.port;
    let pid = server.pid();
    let dir = server.dir().to_path_buf();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(dir.join("data/PG_VERSION").is_file());

    // A session still open when the server goes: shutdown must not wait for it.
    let client = connect(&server.url()).await;
    let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(Path::new(&format!("/proc/{backend}")).exists());

    let started = Instant::now();
    drop(server);
    let took = started.elapsed();
    assert!(
        took < STOP_TIMEOUT,
        "stopping took {took:?}: the SIGKILL fallback, not a shutdown"
    );

    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "postmaster {pid} is still there"
    );
    assert!(
        !Path::new(&format!("/proc/{backend}")).exists(),
        "backend {backend} is still there"
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(client.query_one("SELECT 1", &[]).await.is_err());
}

#[test]
fn servers_started_at_once_get_ports_of_their_own() {
    let servers: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(postgres_server))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();
    let mut ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3);
    for server in &servers {
        let port = server.psql(&server.url(), "SHOW port").unwrap();
        assert_eq!(port, server.port.to_string());
    }
}

#[test]
fn a_taken_port_is_given_up_for_another() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let server = postgres_server_trying_port_first(taken);
    assert_ne!(server.port, taken);
    assert_eq!(
        server.psql(&server.url(), "SHOW port").unwrap(),
        server.port.to_string()
    );
    // The first attempt failed on the taken port, the second one started.
    let log = server.log();
    assert!(log.contains(&format!("already running on port {taken}?")), "{log}");
    assert_eq!(log.matches("ready to accept connections").count(), 1, "{log}");
}
