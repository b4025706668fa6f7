//! Programs the tests need besides cargo: an independent DPoP client
//! (panva's `dpop` package on Node.js, tests/interop/dpop-client.mjs) and a
//! throwaway redis-server per test. `scripts/test-deps.sh` installs both; a
//! missing one fails the test that needs it, it never skips it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// How long the Node.js client may take to start or to answer one request.
const NODE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long redis-server may take to accept connections.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `scripts/test-deps.sh` once per test process; panics with its output
/// if it fails, in every test that calls this, not only the first.
pub fn ensure_test_deps() {
    static OUTCOME: OnceLock<Result<(), String>> = OnceLock::new();
    let outcome = OUTCOME.get_or_init(|| {
        let script = manifest_dir().join("scripts/test-deps.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}): the tests need its dependencies\n--- stdout\n{}\n--- stderr\n{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            ))
        }
    });
    if let Err(message) = outcome {
        panic!("{message}");
    }
}

/// A DPoP client that is not ours: `node tests/interop/dpop-client.mjs`,
/// holding one ES256 key pair for its lifetime. Its calls block, so call
/// them between requests (or from `spawn_blocking`), not while an in-process
/// server on a current-thread runtime has to answer.
pub struct NodeDpopClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    jwk: serde_json::Value,
}

impl NodeDpopClient {
    /// Starts the client and reads its public key.
    pub fn start() -> NodeDpopClient {
        ensure_test_deps();
        let dir = manifest_dir().join("tests/interop");
        let mut child = Command::new("node")
            .arg(dir.join("dpop-client.mjs"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn node for {}: {e}", dir.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let lines = super::line_channel(stdout);
        let mut client = NodeDpopClient {
            child,
            stdin,
            lines,
            jwk: serde_json::Value::Null,
        };
        let first = client.next_line("its public key");
        let parsed: serde_json::Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("dpop-client.mjs printed {first:?} instead of {{\"jwk\":...}}: {e}"));
        client.jwk = parsed["jwk"].clone();
        assert!(client.jwk.is_object(), "dpop-client.mjs printed no jwk: {first}");
        client
    }

    /// The client's public key, as WebCrypto exports it.
    pub fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// A fresh proof for one request, made by the library. The client drops
    /// the URL's query and fragment from `htu`, as RFC 9449 asks.
    pub fn proof(&mut self, method: &str, url: &str, token: &str, nonce: Option<&str>) -> String {
        let request = serde_json::json!({ "method": method, "url": url, "token": token, "nonce": nonce });
        let stdin = self.stdin.as_mut().unwrap();
        if let Err(e) = writeln!(stdin, "{request}").and_then(|()| stdin.flush()) {
            let stderr = self.stop_and_read_stderr();
            panic!("cannot write to dpop-client.mjs: {e}\n--- its stderr\n{stderr}");
        }
        self.next_line("a proof")
    }

    fn next_line(&mut self, what: &str) -> String {
        match self.lines.recv_timeout(NODE_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let stderr = self.stop_and_read_stderr();
                panic!("dpop-client.mjs gave no {what} ({e})\n--- its stderr\n{stderr}");
            }
        }
    }

    fn stop_and_read_stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for NodeDpopClient {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A redis-server of the test's own on a free loopback port, with no
/// persistence, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// Starts a redis-server and waits until it accepts connections.
pub fn redis_server() -> RedisServer {
    ensure_test_deps();
    let port = free_port();
    let mut server = RedisServer {
        child: None,
        port,
        dir: tempfile::tempdir().unwrap(),
    };
    server.start_again();
    server
}

impl RedisServer {
    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server: clients see it go away as in an outage, not a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty (nothing is persisted);
    /// does nothing if it is running.
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn redis-server: {e}"));
        self.child = Some(child);
        self.wait_until_accepting();
    }

    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                self.stop();
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                let why = match exited {
                    Some(status) => format!("exited ({status})"),
                    None => format!("accepted no connection within {REDIS_START_TIMEOUT:?}"),
                };
                panic!("redis-server on port {} {why}\n--- its log\n{log}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on right now. Redis cannot be asked for port 0 and
/// report the one it got, so the test picks one and hands it over.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
