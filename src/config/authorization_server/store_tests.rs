//! `store`: where the families live, and the paths inside its URL.

use crate::config::authorization_server::tests::{TABLE, settings};

#[test]
fn a_relative_sslrootcert_is_relative_to_the_configuration_file() {
    use crate::config::StoreLocation;
    let with_store = |url: &str| format!("{TABLE}store = {url:?}\n");
    let relative = settings(&with_store(
        "postgres://bindgate@db/as?sslmode=verify-full&sslrootcert=certs/db-ca.pem",
    ));
    assert_eq!(
        relative.store,
        StoreLocation::Postgres(
            "postgres://bindgate@db/as?sslmode=verify-full&sslrootcert=/etc/bindgate/certs/db-ca.pem".into()
        )
    );
    let absolute = settings(&with_store("postgres://bindgate@db/as?sslrootcert=/srv/ca.pem"));
    assert_eq!(
        absolute.store,
        StoreLocation::Postgres("postgres://bindgate@db/as?sslrootcert=/srv/ca.pem".into())
    );
}
