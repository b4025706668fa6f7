//! The real `bindgate` binary, spawned with a generated configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the gateway may take to load and bind.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the bounded waits look again.
const POLL: Duration = Duration::from_millis(20);

pub struct GatewayProcess {
    child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// The authorization server's listener, when the configuration has one.
    pub authorization_server: Option<SocketAddr>,
    stderr_path: PathBuf,
}

impl GatewayProcess {
    /// Starts `bindgate run --config <config>` and waits until it has bound
    /// its listeners; panics with its stderr if it does not. The wait runs
    /// off the async runtime, so in-process servers keep answering meanwhile.
    pub async fn start(config: &Path) -> GatewayProcess {
        let config = config.to_path_buf();
        match tokio::task::spawn_blocking(move || GatewayProcess::try_start(&config))
            .await
            .unwrap()
        {
            Ok(gateway) => gateway,
            Err(message) => panic!("{message}"),
        }
    }

    pub fn try_start(config: &Path) -> Result<GatewayProcess, String> {
        let dir = config.parent().unwrap();
        let stderr_path = dir.join(format!(
            "bindgate-{}.stderr",
            config.file_stem().unwrap().to_string_lossy()
        ));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_bindgate"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot spawn bindgate: {e}"))?;
        let stdout = child.stdout.take().unwrap();
        let rx = super::line_channel(stdout);
        let text = std::fs::read_to_string(config).unwrap();
        let wants_admin = text.contains("[admin]");
        let wants_as = text.contains("[authorization_server]");
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut addr, mut admin, mut authorization_server) = (None, None, None);
        while addr.is_none() || (wants_admin && admin.is_none()) || (wants_as && authorization_server.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let parsed = line
                        .strip_prefix("listening on ")
                        .and_then(|rest| rest.split_once(' '))
                        .map(|(a, what)| (a.parse::<SocketAddr>().unwrap(), what.to_string()));
                    match parsed {
                        Some((a, what)) if what == "(proxy)" => addr = Some(a),
                        Some((a, what)) if what == "(admin)" => admin = Some(a),
                        Some((a, what)) if what == "(authorization server)" => authorization_server = Some(a),
                        _ => {}
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    return Err(format!("bindgate did not start; stderr:\n{stderr}"));
                }
            }
        }
        Ok(GatewayProcess {
            child,
            addr: addr.unwrap(),
            admin,
            authorization_server,
            stderr_path,
        })
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit, polling without blocking the runtime.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until stderr contains `needle` (bounded).
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_log_count(needle, 1, timeout).await
    }

    /// Polls until stderr contains `needle` at least `count` times (bounded).
    pub async fn wait_for_log_count(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        super::eventually(timeout, async || self.log_count(needle) >= count).await
    }

    /// Counts occurrences of `needle` in stderr.
    pub fn log_count(&self, needle: &str) -> usize {
        self.stderr().matches(needle).count()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bindgate <args>` to completion, returning status, stdout and stderr.
pub fn run_cli(args: &[&str]) -> (ExitStatus, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bindgate"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// [`run_cli`] off the async runtime, for tests whose in-process servers the command talks to.
pub async fn run_cli_async(args: &[&str]) -> (ExitStatus, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&refs)
    })
    .await
    .unwrap()
}
