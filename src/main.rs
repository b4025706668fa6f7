//! The `bindgate` command line: parses arguments, dispatches, exits with a meaningful code.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use bindgate::config::{Config, EXIT_INVALID_CONFIG, format_duration};
use bindgate::metrics::Metrics;
use bindgate::runtime::{Live, ReloadTrigger};
use bindgate::{KeysPolicy, Prepared};

#[derive(Parser)]
#[command(name = "bindgate", version, about = "mTLS-bound access token gateway (RFC 8705)", long_about = None)]
struct Cli {
    /// Log line format on stderr. Filter with RUST_LOG (e.g. `info`, `bindgate=debug`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and every file it names, then print what would be served.
    Check {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Print the RFC 8705 x5t#S256 thumbprint of a PEM certificate (its first one).
    Thumbprint {
        /// PEM file holding the certificate.
        cert: PathBuf,
    },
    /// Write a development PKI: CA, server certificate for localhost, two client certificates, an issuer key and its
    /// JWKS, and a client's DPoP key (dpop-key.pem).
    DevCerts {
        /// Output directory.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print a development access token signed by the dev issuer key and bound to a client certificate, a DPoP key,
    /// or both.
    #[command(
        long_about = "Print a development access token (ES256, typ at+jwt) signed by the dev issuer key.\n\n\
            The token is bound through its `cnf` claim: to a client certificate with --cert (cnf.\"x5t#S256\", \
            RFC 8705), to a DPoP key with --dpop-key (cnf.jkt, RFC 9449), or to both. At least one is required.",
        group(clap::ArgGroup::new("binding").args(["cert", "dpop_key"]).multiple(true).required(true))
    )]
    Mint {
        /// Bind the token to this client certificate (PEM): cnf."x5t#S256" is its SHA-256 thumbprint.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Bind the token to this DPoP key (EC P-256, PKCS#8 PEM, e.g. certs/dpop-key.pem): cnf.jkt is the RFC 7638
        /// thumbprint of its public key. Sign the matching proofs with `bindgate dpop-proof --key`.
        #[arg(long)]
        dpop_key: Option<PathBuf>,
        /// The issuer's signing key (EC P-256, PKCS#8 PEM).
        #[arg(long, default_value = "certs/issuer-key.pem")]
        key: PathBuf,
        #[arg(long, default_value = "https://issuer.example")]
        iss: String,
        #[arg(long, default_value = "https://api.example")]
        aud: String,
        #[arg(long, default_value = "dev-user")]
        sub: String,
        /// Lifetime, e.g. 300s, 15m, 1h.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: std::time::Duration,
        /// Space-separated scopes for the `scope` claim.
        #[arg(long)]
        scope: Option<String>,
        /// Print this many distinct tokens, one per line (for load tests that need fresh tokens).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
    },
    /// Print a DPoP proof (RFC 9449) for one request, signed with a client's DPoP key.
    #[command(
        long_about = "Print a DPoP proof JWT (RFC 9449) for one request, signed with a client's DPoP key: the value \
            of the request's `DPoP` header. The header carries the public key (typ dpop+jwt, alg ES256); the claims \
            are jti, htm, htu, iat, and ath with --token, nonce with --nonce. A proof is good for one request: \
            make a new one for each.\n\n\
            Example:\n  \
            TOKEN=$(bindgate mint --dpop-key certs/dpop-key.pem)\n  \
            bindgate dpop-proof --url https://127.0.0.1:8443/hello --token \"$TOKEN\""
    )]
    DpopProof {
        /// The client's DPoP key (EC P-256, PKCS#8 PEM): the one the token was minted for with --dpop-key.
        #[arg(long, default_value = "certs/dpop-key.pem")]
        key: PathBuf,
        /// HTTP method of the request (htm), case-sensitive.
        #[arg(long, default_value = "GET")]
        method: String,
        /// URL of the request as the client addresses it; query and fragment are left out of htu.
        #[arg(long)]
        url: String,
        /// Access token sent with the request: the proof then carries its hash (ath).
        #[arg(long)]
        token: Option<String>,
        /// Nonce from the server's DPoP-Nonce response header.
        #[arg(long)]
        nonce: Option<String>,
        /// Use this proof id instead of a random one (replays are rejected: for testing that).
        #[arg(long)]
        jti: Option<String>,
        /// Issue time in seconds since the epoch instead of now (for testing the iat window).
        #[arg(long, value_name = "SECONDS")]
        iat: Option<u64>,
    },
    /// Show the gateway at work on loopback: an echo upstream, a bound token accepted, a replayed one rejected.
    Demo {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
        /// Directory holding the dev material written by `dev-certs`.
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
        /// Exit after the demonstration instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Print a shell completion script (e.g. `bindgate completions bash > /etc/bash_completion.d/bindgate`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) for bindgate(1).
    Man,
}

fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    bindgate::config::parse_duration(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
        Command::Thumbprint { cert } => thumbprint(&cert),
        Command::DevCerts { out, force } => dev_certs(&out, force),
        Command::Mint {
            cert,
            dpop_key,
            key,
            iss,
            aud,
            sub,
            ttl,
            scope,
            count,
        } => {
            let request = bindgate::dev::mint::MintRequest {
                cert: cert.as_deref(),
                dpop_key: dpop_key.as_deref(),
                issuer_key: &key,
                iss: &iss,
                aud: &aud,
                sub: &sub,
                ttl,
                scope: scope.as_deref(),
            };
            match mint_tokens(&request, count) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::DpopProof {
            key,
            method,
            url,
            token,
            nonce,
            jti,
            iat,
        } => {
            let request = bindgate::dev::proof::ProofRequest {
                method: &method,
                url: &url,
                token: token.as_deref(),
                nonce: nonce.as_deref(),
                jti: jti.as_deref(),
                iat,
            };
            match bindgate::dev::proof::proof_with_key_file(&key, &request) {
                Ok(proof) => {
                    println!("{proof}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Demo { config, certs, once } => demo(&config, &certs, once),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "bindgate", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            use clap::CommandFactory;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}

/// Prints `count` tokens, buffered: a load test may ask for a hundred thousand.
fn mint_tokens(request: &bindgate::dev::mint::MintRequest<'_>, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let minter = bindgate::dev::mint::Minter::new(request)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for serial in 0..count {
        writeln!(out, "{}", minter.mint(serial)?)?;
    }
    out.flush()?;
    Ok(())
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("bindgate: {e}");
    ExitCode::FAILURE
}

fn thumbprint(path: &std::path::Path) -> ExitCode {
    match bindgate::pem::certificates(path) {
        Ok(chain) => {
            let leaf = chain.first().map(|c| c.as_ref()).unwrap_or_default();
            println!("{}", bindgate::identity::x5t_s256(leaf));
            ExitCode::SUCCESS
        }
        Err(e) => fail(format_args!("{}: {e}", path.display())),
    }
}

fn dev_certs(out: &std::path::Path, force: bool) -> ExitCode {
    match bindgate::dev::certs::write(out, force) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn demo(config: &std::path::Path, certs: &std::path::Path, once: bool) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(bindgate::dev::demo::run(config, certs, !once)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// SIGHUP re-reads the configuration and every file it names; a broken
/// new configuration is logged and the current one stays in service.
fn reload_on_sighup(live: Arc<Live>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading");
                        let _ = live.reload(ReloadTrigger::Signal).await;
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot handle SIGHUP; reload by file change only"),
        }
    }
    #[cfg(not(unix))]
    let _ = live;
}

/// One worker per CPU this process may run on (a sidecar pinned to one core,
/// or a container with a CPU quota, gets one). With one, a current-thread
/// runtime: no work-stealing machinery and no cross-thread wake-ups to pay for.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(cpus);
        builder
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| fail(format_args!("cannot start the runtime: {e}")))
}

/// Loads the configuration and everything it names; exit 64 on any error.
async fn load(path: &std::path::Path, metrics: Arc<Metrics>, policy: KeysPolicy) -> Result<Prepared, ExitCode> {
    let prepared = match Config::load(path) {
        Ok(config) => bindgate::prepare(config, metrics, None, policy).await,
        Err(e) => Err(e),
    };
    prepared.map_err(|e| {
        eprintln!("bindgate: invalid configuration: {e}");
        ExitCode::from(EXIT_INVALID_CONFIG as u8)
    })
}

fn check(path: PathBuf) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let prepared = match runtime.block_on(load(&path, Arc::new(Metrics::default()), KeysPolicy::Require)) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let c = &prepared.config;
    println!("{}: ok", path.display());
    println!(
        "  listen       {} (client_auth = \"{}\")",
        c.server.listen, c.server.client_auth
    );
    if let Some(admin) = &c.admin {
        println!("  admin        {}", admin.listen);
    }
    // Printed in the configuration's own words, so the output can be compared with gateway.toml.
    for route in prepared.gateway.routes.iter() {
        let mut policy = format!("auth = \"{}\"", route.auth.name());
        if route.auth == bindgate::config::AuthPolicy::Bound {
            policy.push_str(&format!(
                ", binding = {{ mode = \"{}\", methods = {} }}",
                route.binding.name(),
                route.methods.config_list()
            ));
        }
        if !route.required_scopes.is_empty() {
            let scopes: Vec<String> = route.required_scopes.iter().map(|s| format!("{s:?}")).collect();
            policy.push_str(&format!(", required_scopes = [{}]", scopes.join(", ")));
        }
        println!(
            "  route        {} -> {} ({policy})",
            route.prefix,
            route.upstream.base()
        );
    }
    if prepared.gateway.routes.iter().any(|r| r.methods.dpop) {
        let d = &c.dpop;
        let public_url = match &d.public_url {
            Some(url) => format!("{url:?}"),
            None => "(unset: https://<Host>)".to_string(),
        };
        println!(
            "  dpop         public_url = {public_url}, iat_window = \"{}\", leeway = \"{}\", require_nonce = {}, replay_store = {}",
            format_duration(d.iat_window),
            format_duration(d.leeway),
            d.nonce.is_some(),
            prepared.gateway.dpop.replay_store().kind(),
        );
    }
    for issuer in prepared.gateway.validator.issuers() {
        let s = &issuer.settings;
        let keys = issuer.keys.current();
        let kids: Vec<&str> = keys.kids().map(|k| k.unwrap_or("(no kid)")).collect();
        let algs: Vec<&str> = s.algorithms.iter().map(|a| a.name()).collect();
        println!("  issuer       {}", s.issuer);
        println!("    audience   {}", s.audience.join(", "));
        println!("    keys       {} ({})", keys.len(), kids.join(", "));
        println!("    algorithms {}", algs.join(", "));
    }
    ExitCode::SUCCESS
}

fn run(path: PathBuf) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::default());
        let prepared = match load(&path, metrics.clone(), KeysPolicy::StartUnready).await {
            Ok(p) => p,
            Err(code) => return code,
        };
        let listeners = match bind(&prepared.config).await {
            Ok(l) => l,
            Err(message) => return fail(message),
        };
        let live = Arc::new(Live::new(path, prepared, metrics));
        reload_on_sighup(live.clone());
        bindgate::run(live, listeners, shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

/// Binds the proxy and admin sockets and prints the addresses actually bound.
async fn bind(config: &Config) -> Result<bindgate::Listeners, String> {
    async fn listen(addr: std::net::SocketAddr, what: &str) -> Result<tokio::net::TcpListener, String> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address ({what}): {e}"))?;
        println!("listening on {bound} ({what})");
        Ok(listener)
    }
    let proxy = listen(config.server.listen, "proxy").await?;
    let admin = match &config.admin {
        Some(admin) => Some(listen(admin.listen, "admin").await?),
        None => None,
    };
    Ok(bindgate::Listeners { proxy, admin })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
