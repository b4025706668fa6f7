//! Real front proxies, Debian's nginx and HAProxy (`scripts/test-deps.sh`
//! installs them), in front of the real gateway: each terminates the
//! client's TLS on a free loopback port, requiring a client certificate
//! from the test CA, and proxies to the gateway over mTLS, presenting a
//! certificate of its own (the one `[[trusted_proxy]] peer_spki_sha256`
//! pins) and verifying the gateway's. The client's certificate goes in a
//! header the proxy sets, replacing any copy the client sent.
//!
//! Every instance runs in the foreground as one process (nginx with
//! `master_process off`, HAProxy with `-db` and no master), as the user the
//! tests run as, with its configuration, pidfile, temp paths and log in a
//! temp dir of its own. Dropping it kills that process by its PID and reaps
//! it: no worker can outlive it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pki::CertFiles;

/// How long a proxy may take to listen (it takes milliseconds).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up when another process takes the probed one
/// before the proxy binds it (neither proxy can report a port 0 it got).
const PORT_ATTEMPTS: usize = 8;

/// Which proxy, and how it forwards the client's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// nginx: `proxy_set_header X-Client-Cert $ssl_client_escaped_cert`.
    NginxUrlPem,
    /// HAProxy: `http-request set-header X-Ssl-Client-Der %[ssl_c_der,base64]`.
    HaproxyBase64Der,
    /// HAProxy: `http-request set-header Client-Cert :%[ssl_c_der,base64]:` (RFC 9440).
    HaproxyRfc9440,
}

impl Dialect {
    /// The `[[trusted_proxy]]` name, so `cert_source` is `proxy:<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::NginxUrlPem => "nginx",
            Dialect::HaproxyBase64Der => "haproxy-der",
            Dialect::HaproxyRfc9440 => "haproxy-rfc9440",
        }
    }

    /// The `[[trusted_proxy]]` format.
    pub fn format(self) -> &'static str {
        match self {
            Dialect::NginxUrlPem => "url-pem",
            Dialect::HaproxyBase64Der => "base64-der",
            Dialect::HaproxyRfc9440 => "rfc9440",
        }
    }

    /// The header the proxy sets the certificate in (lowercase).
    pub fn header(self) -> &'static str {
        match self {
            Dialect::NginxUrlPem => "x-client-cert",
            Dialect::HaproxyBase64Der => "x-ssl-client-der",
            Dialect::HaproxyRfc9440 => "client-cert",
        }
    }

    /// `leaf`'s certificate as this proxy writes it in [`Self::header`].
    pub fn encode(self, leaf: &CertFiles) -> String {
        use base64::Engine;
        let base64 = base64::engine::general_purpose::STANDARD.encode(&leaf.leaf_der);
        match self {
            Dialect::NginxUrlPem => url_escape(&leaf.leaf_pem()),
            Dialect::HaproxyBase64Der => base64,
            Dialect::HaproxyRfc9440 => format!(":{base64}:"),
        }
    }

    /// The gateway's `[[trusted_proxy]]` table for this proxy, pinning `hop`'s key.
    pub fn trusted_proxy(self, hop: &CertFiles) -> String {
        trusted_proxy_table(self.name(), &hop.spki_sha256(), self.format(), Some(self.header()))
    }
}

/// A `[[trusted_proxy]]` table pinning `spki` (see [`CertFiles::spki_sha256`]).
pub fn trusted_proxy_table(name: &str, spki: &str, format: &str, header: Option<&str>) -> String {
    let header = header.map(|h| format!("header = {h:?}\n")).unwrap_or_default();
    format!("[[trusted_proxy]]\nname = {name:?}\npeer_spki_sha256 = {spki:?}\nformat = {format:?}\n{header}")
}

/// How the proxy checks the client's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientVerify {
    /// A certificate chained to the test CA, or no handshake.
    Required,
    /// nginx's `ssl_verify_client optional_no_ca`: any certificate passes
    /// (a loosely configured proxy), and the gateway must judge it.
    OptionalNoCa,
}

/// What a proxy is started with.
pub struct FrontProxySpec<'a> {
    pub dialect: Dialect,
    /// The gateway's listener.
    pub gateway: SocketAddr,
    /// Trusted for the client's certificate and for the gateway's.
    pub ca: &'a Path,
    /// What the proxy presents to clients (for `localhost`).
    pub server: &'a CertFiles,
    /// What the proxy presents to the gateway.
    pub hop: &'a CertFiles,
    pub verify_client: ClientVerify,
}

/// A running nginx or HAProxy.
pub struct FrontProxy {
    child: Child,
    pub addr: SocketAddr,
    log_path: PathBuf,
    // Dropped after `Drop::drop` has killed the process.
    dir: tempfile::TempDir,
}

impl FrontProxy {
    /// Starts the proxy and waits (bounded) until it accepts connections;
    /// panics with its log if it does not. Off the async runtime, so
    /// in-process servers keep answering meanwhile.
    pub async fn start(spec: &FrontProxySpec<'_>) -> FrontProxy {
        let owned = OwnedSpec {
            dialect: spec.dialect,
            gateway: spec.gateway,
            ca: spec.ca.to_path_buf(),
            server: spec.server.clone(),
            hop: spec.hop.clone(),
            verify_client: spec.verify_client,
        };
        tokio::task::spawn_blocking(move || FrontProxy::start_blocking(&owned))
            .await
            .unwrap()
    }

    fn start_blocking(spec: &OwnedSpec) -> FrontProxy {
        super::interop::ensure_test_deps();
        assert!(
            spec.verify_client == ClientVerify::Required || spec.dialect == Dialect::NginxUrlPem,
            "only the nginx configuration has optional_no_ca"
        );
        let mut dir = tempfile::Builder::new().prefix("bindgate-front-").tempdir().unwrap();
        let log_path = dir.path().join("proxy.log");
        let mut last_log = String::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut command = match spec.dialect {
                Dialect::NginxUrlPem => nginx(dir.path(), addr, spec),
                Dialect::HaproxyBase64Der | Dialect::HaproxyRfc9440 => haproxy(dir.path(), addr, spec),
            };
            // Truncated per attempt: the log is this instance's only.
            let log = std::fs::File::create(&log_path).unwrap();
            command
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {:?}: {e}", command.get_program()));
            let mut proxy = FrontProxy {
                child,
                addr,
                log_path: log_path.clone(),
                dir,
            };
            match proxy.wait_until_listening() {
                Ok(()) => return proxy,
                Err(why) => {
                    last_log = proxy.log();
                    let port_taken = last_log.contains("Address already in use");
                    // Killed and reaped here; the dir comes back for the next attempt.
                    proxy.stop();
                    dir = std::mem::replace(&mut proxy.dir, tempfile::tempdir().unwrap());
                    if !(port_taken && attempt < PORT_ATTEMPTS) {
                        panic!("{:?} on {addr} {why}\n--- its log\n{last_log}", spec.dialect);
                    }
                }
            }
        }
        panic!(
            "{:?} found no free port in {PORT_ATTEMPTS} attempts\n--- its log\n{last_log}",
            spec.dialect
        )
    }

    /// Ready once a TCP connection to its port succeeds while it runs.
    fn wait_until_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited ({status})"));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("was not listening within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The proxy's PID (a child of this process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the proxy wrote so far: its errors, and a line per request.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FrontProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// [`FrontProxySpec`] with owned parts, for the blocking start.
struct OwnedSpec {
    dialect: Dialect,
    gateway: SocketAddr,
    ca: PathBuf,
    server: CertFiles,
    hop: CertFiles,
    verify_client: ClientVerify,
}

/// `-p <dir> -c <dir>/nginx.conf`, one process in the foreground, every
/// path it writes inside `dir`. As root, nginx would otherwise switch to
/// `nobody` for what it writes; `user root` keeps it the tests' user.
fn nginx(dir: &Path, addr: SocketAddr, spec: &OwnedSpec) -> Command {
    let p = |path: &Path| path.display().to_string();
    let d = |name: &str| p(&dir.join(name));
    // SAFETY: geteuid has no preconditions and cannot fail.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root root;\n"
    } else {
        ""
    };
    let verify = match spec.verify_client {
        ClientVerify::Required => "on",
        ClientVerify::OptionalNoCa => "optional_no_ca",
    };
    let conf = format!(
        "{user}daemon off;\n\
         master_process off;\n\
         pid {pid};\n\
         error_log stderr notice;\n\
         events {{ worker_connections 128; }}\n\
         http {{\n\
         \x20   access_log {access};\n\
         \x20   client_body_temp_path {body};\n\
         \x20   proxy_temp_path {proxy};\n\
         \x20   fastcgi_temp_path {fastcgi};\n\
         \x20   uwsgi_temp_path {uwsgi};\n\
         \x20   scgi_temp_path {scgi};\n\
         \x20   server {{\n\
         \x20       listen {addr} ssl;\n\
         \x20       ssl_certificate {server_cert};\n\
         \x20       ssl_certificate_key {server_key};\n\
         \x20       ssl_client_certificate {ca};\n\
         \x20       ssl_verify_client {verify};\n\
         \x20       location / {{\n\
         \x20           proxy_pass https://{gateway};\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Host $host;\n\
         \x20           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20           proxy_set_header X-Client-Cert $ssl_client_escaped_cert;\n\
         \x20           proxy_ssl_certificate {hop_cert};\n\
         \x20           proxy_ssl_certificate_key {hop_key};\n\
         \x20           proxy_ssl_trusted_certificate {ca};\n\
         \x20           proxy_ssl_verify on;\n\
         \x20           proxy_ssl_name localhost;\n\
         \x20           proxy_ssl_server_name on;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        pid = d("nginx.pid"),
        access = d("access.log"),
        body = d("client_body"),
        proxy = d("proxy_temp"),
        fastcgi = d("fastcgi_temp"),
        uwsgi = d("uwsgi_temp"),
        scgi = d("scgi_temp"),
        server_cert = p(&spec.server.cert),
        server_key = p(&spec.server.key),
        ca = p(&spec.ca),
        gateway = spec.gateway,
        hop_cert = p(&spec.hop.cert),
        hop_key = p(&spec.hop.key),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut command = Command::new(binary("nginx"));
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .args(["-e", "stderr"]);
    command
}

/// `-db -f <dir>/haproxy.cfg`: foreground, no master, one thread. HAProxy
/// reads a certificate and its key from one PEM file.
fn haproxy(dir: &Path, addr: SocketAddr, spec: &OwnedSpec) -> Command {
    let p = |path: &Path| path.display().to_string();
    let combined = |name: &str, files: &CertFiles| {
        let path = dir.join(name);
        let mut pem = std::fs::read_to_string(&files.cert).unwrap();
        pem.push_str(&std::fs::read_to_string(&files.key).unwrap());
        std::fs::write(&path, pem).unwrap();
        p(&path)
    };
    let server = combined("server-with-key.pem", &spec.server);
    let hop = combined("hop-with-key.pem", &spec.hop);
    let set_cert = match spec.dialect {
        Dialect::HaproxyBase64Der => "http-request set-header X-Ssl-Client-Der %[ssl_c_der,base64]",
        Dialect::HaproxyRfc9440 => {
            // The chain header is the client's to forge too: never passed on.
            "http-request set-header Client-Cert :%[ssl_c_der,base64]:\n    \
             http-request del-header Client-Cert-Chain"
        }
        Dialect::NginxUrlPem => unreachable!(),
    };
    let cfg = format!(
        "global\n    \
             nbthread 1\n    \
             log stderr format raw local0 info\n\
         defaults\n    \
             mode http\n    \
             log global\n    \
             option httplog\n    \
             timeout connect 5s\n    \
             timeout client 30s\n    \
             timeout server 30s\n\
         frontend front\n    \
             bind {addr} ssl crt {server} ca-file {ca} verify required\n    \
             option forwardfor\n    \
             {set_cert}\n    \
             default_backend gateway\n\
         backend gateway\n    \
             server s1 {gateway} ssl crt {hop} ca-file {ca} verify required sni str(localhost) verifyhost localhost\n",
        ca = p(&spec.ca),
        gateway = spec.gateway,
    );
    let cfg_path = dir.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut command = Command::new(binary("haproxy"));
    command.arg("-db").arg("-f").arg(&cfg_path);
    command
}

/// `name` on PATH, else in /usr/sbin (where Debian puts both, off a
/// non-root PATH): where scripts/test-deps.sh looks.
fn binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    let path = on_path.unwrap_or_else(|| Path::new("/usr/sbin").join(name));
    assert!(
        path.is_file(),
        "no {name} on PATH or in /usr/sbin; scripts/test-deps.sh installs Debian's {name}"
    );
    path
}

/// Percent-encodes every byte but RFC 3986's unreserved ones, as nginx's
/// `$ssl_client_escaped_cert` and Envoy's XFCC `Cert=` do with a PEM.
pub fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
