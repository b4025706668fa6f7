//! Settings that loosen a check on purpose. Each is legitimate (a rollout, a
//! self-signed client population, a Redis outage policy), and each is said
//! out loud at start and on every reload, so nobody runs one by accident.

use super::{BindingMode, ClientAuth, Config, HopMatch, StoreFailure};

/// One loosening setting: the key as written and what it gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loosening {
    /// `server.client_auth = "any"`, `route #2 ("/api") binding.mode = "report"`.
    pub setting: String,
    pub effect: &'static str,
}

impl Config {
    /// Every setting in force that loosens a check, in file order.
    pub fn loosenings(&self) -> Vec<Loosening> {
        let mut found = Vec::new();
        if self.server.client_auth == ClientAuth::Any {
            found.push(Loosening {
                setting: "server.client_auth = \"any\"".to_string(),
                effect: "any client certificate is accepted without a chain to a CA; the token binding is the only check",
            });
        }
        for (index, route) in self.routes.iter().enumerate() {
            if route.binding == BindingMode::Report {
                found.push(Loosening {
                    setting: format!("route #{} ({:?}) binding.mode = \"report\"", index + 1, route.prefix),
                    effect: "tokens that are unbound or bound to another client are forwarded, only logged and counted",
                });
            }
        }
        if self.dpop.replay.on_store_failure == StoreFailure::Open {
            found.push(Loosening {
                setting: "dpop.replay_store_failure = \"open\"".to_string(),
                effect: "while the replay store is unavailable, DPoP proofs are accepted unrecorded and can be replayed",
            });
        }
        for proxy in &self.trusted_proxies {
            if let HopMatch::Cidr(ranges) = &proxy.hop {
                let ranges: Vec<String> = ranges.iter().map(ToString::to_string).collect();
                found.push(Loosening {
                    setting: format!("trusted_proxy {:?} cidr = {:?}", proxy.name, ranges),
                    effect: "any peer that can send from these addresses can forward a client certificate of its choosing; pin the proxy's key with peer_spki_sha256 instead",
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn each_loosening_names_its_key() {
        let strict = Config::parse(super::super::MINIMAL_FOR_TESTS, Path::new("gateway.toml")).unwrap();
        assert_eq!(strict.loosenings(), vec![]);
        let loose = super::super::MINIMAL_FOR_TESTS.replace("client_ca = \"certs/ca.pem\"", "client_auth = \"any\"")
            + "\n[[route]]\nprefix = \"/\"\n\n[[route]]\nprefix = \"/api\"\nbinding = \"report\"\n\n[dpop]\nreplay_store = \"redis://127.0.0.1:6379\"\nreplay_store_failure = \"open\"\n";
        let settings: Vec<String> = Config::parse(&loose, Path::new("gateway.toml"))
            .unwrap()
            .loosenings()
            .into_iter()
            .map(|l| l.setting)
            .collect();
        assert_eq!(
            settings,
            vec![
                "server.client_auth = \"any\"".to_string(),
                "route #2 (\"/api\") binding.mode = \"report\"".to_string(),
                "dpop.replay_store_failure = \"open\"".to_string(),
            ]
        );
    }
}
