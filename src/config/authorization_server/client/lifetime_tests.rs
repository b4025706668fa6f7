//! A client's own family lifetimes: inherited, overridden, capped, refused.

use std::time::Duration;

use crate::config::authorization_server::tests::{TABLE, refused_key, settings};

const DAY: u64 = 86_400;

fn mobile(lines: &str) -> String {
    format!(
        "{TABLE}\n[[authorization_server.client]]\nclient_id = \"mobile\"\nauth = \"none\"\n\
         grant_types = [\"refresh_token\"]\naudience = [\"https://api.example\"]\n{lines}\n"
    )
}

#[test]
fn a_client_inherits_the_servers_lifetimes_unless_it_sets_its_own() {
    let inherited = settings(&mobile(""));
    let lifetime = inherited.clients[0].family_lifetime;
    assert_eq!(
        (lifetime.absolute, lifetime.idle),
        (Duration::from_secs(30 * DAY), Duration::from_secs(14 * DAY))
    );

    let own = settings(&mobile(
        "refresh_absolute_lifetime = \"7d\"\nrefresh_idle_timeout = \"1d\"",
    ));
    let lifetime = own.clients[0].family_lifetime;
    assert_eq!(
        (lifetime.absolute, lifetime.idle),
        (Duration::from_secs(7 * DAY), Duration::from_secs(DAY))
    );
    assert_eq!(
        own.refresh.absolute_lifetime,
        Duration::from_secs(30 * DAY),
        "the server's stay"
    );
}

#[test]
fn an_inherited_idle_timeout_is_capped_at_the_clients_shorter_lifetime() {
    let short = settings(&mobile("refresh_absolute_lifetime = \"1h\""));
    let lifetime = short.clients[0].family_lifetime;
    assert_eq!(
        (lifetime.absolute, lifetime.idle),
        (Duration::from_secs(3600), Duration::from_secs(3600))
    );
}

#[test]
fn a_clients_lifetimes_are_refused_naming_its_key() {
    assert_eq!(
        refused_key(&mobile(
            "refresh_idle_timeout = \"8d\"\nrefresh_absolute_lifetime = \"7d\""
        )),
        "authorization_server.client[0].refresh_idle_timeout"
    );
    assert_eq!(
        refused_key(&mobile("refresh_absolute_lifetime = \"0s\"")),
        "authorization_server.client[0].refresh_absolute_lifetime"
    );
    assert_eq!(
        refused_key(&mobile("refresh_idle_timeout = \"soon\"")),
        "authorization_server.client[0].refresh_idle_timeout"
    );
    let no_refresh = format!(
        "{TABLE}\n[[authorization_server.client]]\nclient_id = \"svc\"\nauth = \"tls_client_auth\"\n\
         tls_client_auth_subject_dn = \"CN=svc\"\ngrant_types = [\"client_credentials\"]\n\
         audience = [\"https://api.example\"]\nrefresh_idle_timeout = \"1d\"\n"
    );
    assert_eq!(
        refused_key(&no_refresh),
        "authorization_server.client[0].refresh_idle_timeout"
    );
}
