//! A throwaway PostgreSQL server per test: a fresh private cluster (initdb)
//! in a temp dir, the postmaster on a free port of 127.0.0.1 only, password
//! (SCRAM) authentication for the superuser `bindgate`, stopped on drop.
//! `scripts/test-deps.sh` installs the server; a missing one fails the test.
//!
//! `initdb` and `postgres` refuse to run as root. As root (CI, containers),
//! both run as the unprivileged `bindgate-test` user that test-deps.sh
//! creates, through `CommandExt::uid/gid`, so the child this process holds
//! is the postmaster itself (no runuser or pg_ctl in between) and its PID is
//! the one to signal. Run by anyone else, the tests run both as themselves.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The unprivileged user initdb and postgres run as when the tests run as root.
pub const TEST_USER: &str = "bindgate-test";
/// The superuser and the default database of every cluster.
pub const ROLE: &str = "bindgate";
/// How long initdb may take (it is the slow part of a start).
const INITDB_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the postmaster may take to report itself ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the postmaster is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up when another process takes the chosen one
/// between the probe and the postmaster's bind.
const PORT_ATTEMPTS: usize = 8;

/// A PostgreSQL server of the test's own. Dropping it stops the postmaster
/// (fast shutdown, SIGKILL after [`STOP_TIMEOUT`]) and removes the cluster.
pub struct PostgresServer {
    pub port: u16,
    password: String,
    child: Option<Child>,
    bindir: PathBuf,
    // Dropped after `Drop::drop` has stopped the server.
    dir: tempfile::TempDir,
}

/// Starts a plain-TCP server with a fresh cluster and waits until it is ready.
pub fn postgres_server() -> PostgresServer {
    PostgresServer::start(None, None)
}

/// Starts a server with `ssl=on` presenting `cert` (PEM chain) and `key`.
/// Its pg_hba.conf admits TCP connections only over TLS (`hostssl`), so a
/// client that falls back to plaintext fails instead of passing unnoticed.
pub fn postgres_server_tls(cert: &Path, key: &Path) -> PostgresServer {
    PostgresServer::start(Some((cert, key)), None)
}

/// [`postgres_server`], trying `port` before any free one: the harness's own
/// test of what happens when a port is taken between probe and bind.
pub fn postgres_server_trying_port_first(port: u16) -> PostgresServer {
    PostgresServer::start(None, Some(port))
}

impl PostgresServer {
    /// `postgres://bindgate:PASSWORD@127.0.0.1:PORT/bindgate`
    pub fn url(&self) -> String {
        self.url_of(ROLE)
    }

    /// Creates the database `name` (lowercase letters, digits, `_`) and
    /// returns its URL, so tests sharing one server stay independent.
    pub fn database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name.len() < 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "database name {name:?}: use lowercase letters, digits and _"
        );
        if let Err(e) = self.psql(&self.url(), &format!("CREATE DATABASE \"{name}\"")) {
            panic!("cannot create database {name}: {e}\n--- server log\n{}", self.log());
        }
        self.url_of(name)
    }

    /// Runs `sql` with psql against `url` (any libpq URL: add `?sslmode=...`
    /// and the like): its trimmed output (unaligned, tuples only) or its
    /// error. PG* variables of the test's environment are not passed on.
    pub fn psql(&self, url: &str, sql: &str) -> Result<String, String> {
        let mut command = Command::new(self.bindir.join("psql"));
        command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .stdin(Stdio::null());
        clean_env(&mut command);
        let output = run_bounded(command, START_TIMEOUT).map_err(|e| format!("psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(format!(
                "psql ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// The postmaster's PID (a child of this process).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// The temp dir holding the cluster (`data/`), the log and any TLS files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://{ROLE}:{}@127.0.0.1:{}/{database}", self.password, self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn start(tls: Option<(&Path, &Path)>, first_port: Option<u16>) -> PostgresServer {
        super::interop::ensure_test_deps();
        let bindir = bindir().to_path_buf();
        let owner = owner();
        let dir = tempfile::Builder::new().prefix("bindgate-pg-").tempdir().unwrap();
        let mut server = PostgresServer {
            port: 0,
            password: random_hex(16),
            child: None,
            bindir,
            dir,
        };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(server.dir(), Some(uid), Some(gid)).unwrap();
        }
        server.initdb(owner, tls.is_some());
        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_string(),
            format!("unix_socket_directories={}", server.dir().display()),
            "unix_socket_permissions=0700".to_string(),
            "max_connections=200".to_string(),
            "shared_buffers=16MB".to_string(),
            // The default, stated: the durability tests rely on it.
            "fsync=on".to_string(),
            "synchronous_commit=on".to_string(),
        ];
        if let Some((cert, key)) = tls {
            let cert_copy = server.dir().join("server.crt");
            let key_copy = server.dir().join("server.key");
            std::fs::copy(cert, &cert_copy).unwrap_or_else(|e| panic!("cannot copy {}: {e}", cert.display()));
            std::fs::copy(key, &key_copy).unwrap_or_else(|e| panic!("cannot copy {}: {e}", key.display()));
            // The server refuses a key that group or others can read.
            std::fs::set_permissions(&key_copy, std::fs::Permissions::from_mode(0o600)).unwrap();
            if let Some((uid, gid)) = owner {
                for file in [&cert_copy, &key_copy] {
                    std::os::unix::fs::chown(file, Some(uid), Some(gid)).unwrap();
                }
            }
            settings.push("ssl=on".to_string());
            settings.push(format!("ssl_cert_file={}", cert_copy.display()));
            settings.push(format!("ssl_key_file={}", key_copy.display()));
        }
        server.start_postmaster(owner, &settings, first_port);
        if let Err(e) = server.psql(&server.url_of("postgres"), &format!("CREATE DATABASE \"{ROLE}\"")) {
            panic!("cannot create database {ROLE}: {e}\n--- server log\n{}", server.log());
        }
        server
    }

    fn initdb(&self, owner: Option<(u32, u32)>, hostssl: bool) {
        let pwfile = self.dir().join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password)).unwrap();
        let mut command = Command::new(self.bindir.join("initdb"));
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", ROLE, "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pwfile.display()))
            // Skips only initdb's final flush of the files it wrote (an OS
            // crash concern); the server itself runs with fsync=on.
            .arg("--no-sync")
            .current_dir(self.dir())
            .stdin(Stdio::null());
        clean_env(&mut command);
        as_owner(&mut command, owner);
        let output = run_bounded(command, INITDB_TIMEOUT).unwrap_or_else(|e| panic!("initdb: {e}"));
        std::fs::remove_file(&pwfile).unwrap();
        if !output.status.success() {
            panic!(
                "initdb failed ({})\n--- stdout\n{}\n--- stderr\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // Password authentication everywhere, TCP on 127.0.0.1 only; with
        // TLS, TCP only over TLS. No replication entries.
        let host = if hostssl { "hostssl" } else { "host" };
        let hba = format!(
            "local all all scram-sha-256\n\
             {host} all all 127.0.0.1/32 scram-sha-256\n"
        );
        // Rewrites initdb's file in place: its owner and mode stay.
        std::fs::write(self.data_dir().join("pg_hba.conf"), hba).unwrap();
    }

    /// Starts the postmaster on a free port, trying another one when the
    /// chosen one is taken before the postmaster binds it.
    fn start_postmaster(&mut self, owner: Option<(u32, u32)>, settings: &[String], first_port: Option<u16>) {
        for attempt in 1..=PORT_ATTEMPTS {
            self.port = match first_port {
                Some(port) if attempt == 1 => port,
                _ => free_port(),
            };
            // Appended to: the log keeps every attempt.
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .unwrap();
            let mut command = Command::new(self.bindir.join("postgres"));
            command.arg("-D").arg(self.data_dir());
            command.args(["-c", &format!("port={}", self.port)]);
            for setting in settings {
                command.args(["-c", setting]);
            }
            command
                .current_dir(self.dir())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            clean_env(&mut command);
            as_owner(&mut command, owner);
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", self.bindir.join("postgres").display()));
            self.child = Some(child);
            match self.wait_until_ready() {
                Ok(()) => return,
                Err(Exit::PortTaken) if attempt < PORT_ATTEMPTS => {
                    self.stop();
                    continue;
                }
                Err(exit) => {
                    self.stop();
                    let why = match exit {
                        Exit::PortTaken => format!("found no free port in {PORT_ATTEMPTS} attempts"),
                        Exit::Exited(status) => format!("exited ({status})"),
                        Exit::Timeout => format!("was not ready within {START_TIMEOUT:?}"),
                    };
                    panic!("postgres on port {} {why}\n--- its log\n{}", self.port, self.log());
                }
            }
        }
    }

    /// Ready is what pg_ctl waits for: postmaster.pid names our child and
    /// says `ready` (written only after every listen socket is open), and a
    /// TCP connection to the port succeeds.
    fn wait_until_ready(&mut self) -> Result<(), Exit> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid = self.pid().to_string();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                let bind_failure = format!("Is another postmaster already running on port {}?", self.port);
                return Err(if self.log().contains(&bind_failure) {
                    Exit::PortTaken
                } else {
                    Exit::Exited(status)
                });
            }
            let pidfile = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).unwrap_or_default();
            let lines: Vec<&str> = pidfile.lines().map(str::trim).collect();
            if lines.first() == Some(&pid.as_str())
                && lines.get(7) == Some(&"ready")
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Exit::Timeout);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Fast shutdown (SIGINT: sessions are ended, a checkpoint is written);
    /// SIGKILL if it takes longer than [`STOP_TIMEOUT`]. SIGTERM would be a
    /// smart shutdown, which waits for every client to disconnect, and a
    /// test's connections may outlive the server's owner.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        signal(child.id(), libc::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Exit {
    PortTaken,
    Exited(std::process::ExitStatus),
    Timeout,
}

/// The directory holding initdb, postgres and psql, looked for in the order
/// scripts/test-deps.sh uses: $BINDGATE_PG_BINDIR, `pg_config --bindir`, the
/// newest /usr/lib/postgresql/<major>/bin (Debian keeps them off PATH), and
/// the directory of an `initdb` on PATH.
pub fn bindir() -> &'static Path {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR.get_or_init(|| {
        let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os("BINDGATE_PG_BINDIR").filter(|d| !d.is_empty()) {
            candidates.push(dir.into());
        }
        if let Ok(output) = Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output()
            && output.status.success()
        {
            candidates.push(String::from_utf8_lossy(&output.stdout).trim().into());
        }
        let mut debian: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry
                    .file_name()
                    .to_str()?
                    .split('.')
                    .map(|n| n.parse().ok())
                    .collect::<Option<_>>()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        debian.sort_by(|a, b| b.0.cmp(&a.0));
        candidates.extend(debian.into_iter().map(|(_, dir)| dir));
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
        candidates.extend(on_path.filter(|dir| dir.join("initdb").is_file()));
        candidates.into_iter().find(|dir| usable(dir)).unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server (initdb and postgres) in $BINDGATE_PG_BINDIR, pg_config --bindir, \
                 /usr/lib/postgresql/*/bin or on PATH; scripts/test-deps.sh installs Debian's postgresql"
            )
        })
    })
}

/// `Some((uid, gid))` of [`TEST_USER`] when this process is root, `None`
/// when initdb and postgres can run as this process's user.
fn owner() -> Option<(u32, u32)> {
    static OWNER: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *OWNER.get_or_init(|| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let id = |flag: &str| -> u32 {
            let output = Command::new("id").args([flag, TEST_USER]).output().unwrap();
            assert!(
                output.status.success(),
                "running as root, initdb and postgres need the user {TEST_USER} (scripts/test-deps.sh creates it): {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
        };
        Some((id("-u"), id("-g")))
    })
}

fn as_owner(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        // std drops root's supplementary groups too (setgroups) before setuid.
        command.uid(uid).gid(gid);
    }
}

/// Keeps the test environment's libpq variables (PGHOST, PGSSLMODE, ...)
/// from redirecting a server or client, and the locale from varying.
fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
    command.env("LC_ALL", "C");
}

/// Runs a command to completion, killing it after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Result<Output, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot spawn {:?}: {e}", command.get_program()))?;
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (out, err) = (read_all(stdout), read_all(stderr));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{:?} did not finish within {timeout:?}\n--- stderr\n{}",
                command.get_program(),
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Reads a child's pipe to its end on a thread of its own, so that neither
/// pipe can fill up and block the child while the other is read.
fn read_all(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill has no memory-safety preconditions; the PID is our own
    // unreaped child, so it cannot have been reused by another process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// A port nothing listens on right now (the postmaster cannot be asked for
/// port 0 and report the one it got).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
