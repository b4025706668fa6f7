//! One change, one reload: a reload drops TLS session and token caches, so
//! the file watcher must not reload again for a change already loaded.

use std::time::Duration;

use crate::common::*;

/// The test configurations poll every 100 ms; this is several polls.
const SEVERAL_POLLS: Duration = Duration::from_millis(1000);

async fn reloads(gw: &GatewayProcess, trigger: &str, result: &str) -> f64 {
    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    let sample = format!("bindgate_reloads_total{{trigger=\"{trigger}\",result=\"{result}\"}}");
    metric(&metrics, &sample).unwrap_or(0.0)
}

/// Waits (bounded) until `trigger` has `count` reloads with `result`.
async fn reloaded(gw: &GatewayProcess, trigger: &str, result: &str, count: f64) {
    assert!(
        eventually(Duration::from_secs(10), async || reloads(gw, trigger, result).await
            >= count)
        .await,
        "no {result} reload by {trigger}: {}",
        gw.stderr()
    );
}

async fn all_reloads(gw: &GatewayProcess) -> f64 {
    let mut total = 0.0;
    for trigger in ["signal", "file_change"] {
        for result in ["ok", "error"] {
            total += reloads(gw, trigger, result).await;
        }
    }
    total
}

#[tokio::test]
async fn a_change_loaded_by_sighup_is_not_reloaded_again_by_the_watcher() {
    let s = Setup::new().await;
    let config = s.path().join("gateway.toml");
    let rendered = s.render(&ConfigSpec::default());
    // Watching off at first, so that the watcher cannot race the signal.
    write_atomically(
        &config,
        rendered.replace("[reload]\n", "[reload]\nwatch_files = false\n"),
    );
    let gw = GatewayProcess::start(&config).await;
    write_atomically(
        &config,
        rendered.replace("[reload]\n", "[reload]\nwatch_files = true\n"),
    );
    gw.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), async || reloads(&gw, "signal", "ok").await
            >= 1.0)
        .await,
        "{}",
        gw.stderr()
    );
    let again = eventually(SEVERAL_POLLS, async || all_reloads(&gw).await > 1.0).await;
    assert!(
        !again,
        "the watcher reloaded a change SIGHUP had loaded: {}",
        gw.stderr()
    );
    assert_eq!(reloads(&gw, "file_change", "ok").await, 0.0);

    // The watcher now runs, and still sees a new change.
    write_atomically(&s.jwks, TestIssuer::jwks(&[&s.issuer, &TestIssuer::new("k2")]));
    reloaded(&gw, "file_change", "ok", 1.0).await;
}

#[tokio::test]
async fn a_config_change_that_adds_a_watched_file_reloads_once() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let crl = s.pki.ca.crl(s.path(), "ca", &[]);
    let spec = ConfigSpec {
        server: vec![format!("crl = [{:?}]", crl.display().to_string())],
        ..Default::default()
    };
    write_atomically(&s.path().join("gateway.toml"), s.render(&spec));
    reloaded(&gw, "file_change", "ok", 1.0).await;
    let again = eventually(SEVERAL_POLLS, async || all_reloads(&gw).await > 1.0).await;
    assert!(!again, "one change reloaded twice: {}", gw.stderr());
}

#[tokio::test]
async fn a_failed_reload_is_not_retried_until_the_files_change_again() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    std::fs::write(&s.jwks, "{ not json").unwrap();
    reloaded(&gw, "file_change", "error", 1.0).await;
    let again = eventually(SEVERAL_POLLS, async || all_reloads(&gw).await > 1.0).await;
    assert!(!again, "a failed reload was retried without a change: {}", gw.stderr());
    // Repaired, with a key added: loaded once.
    write_atomically(&s.jwks, TestIssuer::jwks(&[&s.issuer, &TestIssuer::new("k2")]));
    reloaded(&gw, "file_change", "ok", 1.0).await;
    let again = eventually(SEVERAL_POLLS, async || all_reloads(&gw).await > 2.0).await;
    assert!(!again, "{}", gw.stderr());
}
