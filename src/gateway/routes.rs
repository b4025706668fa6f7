//! Routes: which path prefix goes to which upstream, and what each requires.

use std::sync::Arc;

use crate::auth::token::Claims;
use crate::config::{AuthPolicy, BindingMethods, BindingMode, Config, ConfigError, RouteSettings};
use crate::http::upstream::Upstream;

/// One route with its upstream pool.
pub struct Route {
    /// Also the route's label in logs and metrics.
    pub prefix: Arc<str>,
    pub auth: AuthPolicy,
    pub required_scopes: Vec<String>,
    pub binding: BindingMode,
    pub methods: BindingMethods,
    pub upstream: Arc<Upstream>,
}

/// Routes by path prefix; the longest matching prefix wins.
pub struct RouteTable {
    /// Longest prefix first, without `/`.
    routes: Vec<Route>,
    /// The `/` route, which matches every path.
    fallback: Route,
}

/// The token lacks scopes the route requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token lacks required scope")]
pub struct InsufficientScope {
    /// Every scope the route requires, for the challenge's `scope` attribute.
    pub required: String,
}

impl RouteTable {
    /// Builds the table from `[[route]]` entries, plus a `/` route to
    /// `[upstream]` requiring a bound token unless the configuration has its own `/`.
    pub fn build(config: &Config) -> Result<RouteTable, ConfigError> {
        let mut pools: Vec<(http::Uri, Arc<Upstream>)> = Vec::new();
        let mut pool_for = |url: &http::Uri| -> Result<Arc<Upstream>, ConfigError> {
            if let Some((_, pool)) = pools.iter().find(|(u, _)| u == url) {
                return Ok(pool.clone());
            }
            let pool = Arc::new(Upstream::new(config, url)?);
            pools.push((url.clone(), pool.clone()));
            Ok(pool)
        };
        let mut settings: Vec<RouteSettings> = config.routes.clone();
        if !settings.iter().any(|r| r.prefix == "/") {
            settings.push(RouteSettings {
                prefix: "/".to_string(),
                upstream: None,
                auth: AuthPolicy::Bound,
                required_scopes: Vec::new(),
                binding: BindingMode::Enforce,
                methods: BindingMethods::MTLS,
            });
        }
        let mut routes = Vec::with_capacity(settings.len());
        for s in settings {
            let url = s.upstream.as_ref().unwrap_or(&config.upstream.url);
            routes.push(Route {
                upstream: pool_for(url)?,
                prefix: Arc::from(s.prefix.as_str()),
                auth: s.auth,
                required_scopes: s.required_scopes,
                binding: s.binding,
                methods: s.methods,
            });
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let slash = routes.iter().position(|r| &*r.prefix == "/");
        match slash.map(|i| routes.remove(i)) {
            Some(fallback) => Ok(RouteTable { routes, fallback }),
            None => Err(config.unusable("route.prefix", &config.source, "no / route could be built")),
        }
    }

    /// The route for a normalised path.
    pub fn find(&self, path: &str) -> &Route {
        self.routes
            .iter()
            .find(|r| prefix_matches(&r.prefix, path))
            .unwrap_or(&self.fallback)
    }

    /// Every route, longest prefix first, `/` last.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().chain(std::iter::once(&self.fallback))
    }
}

/// Whether `path` is `prefix` or lies below it: `/api` matches `/api` and
/// `/api/x`, never `/apix`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
    }
}

/// Checks that the token grants every scope the route requires. Scopes come
/// from `scope` (space-separated, RFC 9068) or, failing that, `scp` (a string
/// or an array, as some issuers send).
pub fn check_scopes(route: &Route, claims: &Claims) -> Result<(), InsufficientScope> {
    if route.required_scopes.is_empty() {
        return Ok(());
    }
    let scp = claims.other.get("scp");
    let granted: Vec<&str> = match (&claims.scope, scp) {
        (Some(scope), _) => scope.split(' ').filter(|s| !s.is_empty()).collect(),
        (None, Some(serde_json::Value::String(s))) => s.split(' ').filter(|s| !s.is_empty()).collect(),
        (None, Some(serde_json::Value::Array(list))) => list.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    if route.required_scopes.iter().all(|s| granted.contains(&s.as_str())) {
        Ok(())
    } else {
        Err(InsufficientScope {
            required: route.required_scopes.join(" "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/x"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(prefix_matches("/api/", "/api/x"));
        assert!(prefix_matches("/", "/anything"));
        assert!(!prefix_matches("/api", "/"));
    }
}
