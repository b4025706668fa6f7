//! The `bindgate` command line: parses arguments, dispatches, exits with a meaningful code.
#![forbid(unsafe_code)]

/// `--features count-allocs`: every allocation counted, for `bench/allocs.sh`.
#[cfg(feature = "count-allocs")]
#[global_allocator]
static COUNTED: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

#[cfg(feature = "dev")]
mod dev_cli;
mod families_cli;
mod signals;

use signals::Signals;

use bindgate::app::live::Live;
use bindgate::config::{Config, EXIT_INVALID_CONFIG, format_duration};
use bindgate::metrics::Metrics;
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
    /// List or revoke the authorization server's refresh-token families, in its configured store.
    Families {
        #[command(subcommand)]
        command: families_cli::FamiliesCommand,
    },
    /// Print the RFC 8705 x5t#S256 thumbprint of a PEM certificate (its first one).
    Thumbprint {
        /// PEM file holding the certificate.
        cert: PathBuf,
        /// Print the base64url SHA-256 of its SubjectPublicKeyInfo instead: a
        /// `[[trusted_proxy]]` `peer_spki_sha256` (it survives reissuing the
        /// certificate for the same key).
        #[arg(long)]
        spki: bool,
    },
    #[cfg(feature = "dev")]
    #[command(flatten)]
    Dev(dev_cli::DevCommand),
    /// Print a shell completion script (e.g. `bindgate completions bash > /etc/bash_completion.d/bindgate`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) for bindgate(1).
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    #[cfg(feature = "count-allocs")]
    bindgate::metrics::count_allocations(|| {
        let stats = stats_alloc::INSTRUMENTED_SYSTEM.stats();
        (
            (stats.allocations + stats.reallocations) as u64,
            stats.bytes_allocated as u64,
        )
    });
    match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
        Command::Families { command } => match runtime() {
            Ok(runtime) => families_cli::run(command, &runtime),
            Err(code) => code,
        },
        Command::Thumbprint { cert, spki } => thumbprint(&cert, spki),
        #[cfg(feature = "dev")]
        Command::Dev(command) => dev_cli::run(command),
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

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("bindgate: {e}");
    ExitCode::FAILURE
}

fn thumbprint(path: &std::path::Path, spki: bool) -> ExitCode {
    let chain = match bindgate::conn::pem::certificates(path) {
        Ok(chain) => chain,
        Err(e) => return fail(format_args!("{}: {e}", path.display())),
    };
    let leaf = chain.first().map(|c| c.as_ref()).unwrap_or_default();
    if !spki {
        println!("{}", bindgate::conn::identity::x5t_s256(leaf));
        return ExitCode::SUCCESS;
    }
    match bindgate::conn::identity::ClientIdentity::from_der(leaf) {
        Ok(identity) => {
            println!("{}", bindgate::conn::identity::spki_pin(&identity.spki_sha256));
            ExitCode::SUCCESS
        }
        Err(e) => fail(format_args!("{}: {e}", path.display())),
    }
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
    if !c.server.crls.is_empty() || c.server.crl_fetch.is_some() {
        let expired = match c.server.crl_expired {
            bindgate::config::CrlExpired::Deny => "deny",
            bindgate::config::CrlExpired::Allow => "allow",
        };
        println!(
            "  revocation   {} CRL file(s), crl_fetch = {}, crl_expired = \"{expired}\"",
            c.server.crls.len(),
            c.server.crl_fetch.is_some()
        );
    }
    for proxy in &c.trusted_proxies {
        let hop = match &proxy.hop {
            bindgate::config::HopMatch::PeerSpki(pin) => {
                format!("peer_spki_sha256 = {:?}", bindgate::conn::identity::spki_pin(pin))
            }
            bindgate::config::HopMatch::PeerSan(san) => format!("peer_san = {san:?}"),
            bindgate::config::HopMatch::Cidr(ranges) => {
                let ranges: Vec<String> = ranges.iter().map(|r| format!("{:?}", r.to_string())).collect();
                format!("cidr = [{}]", ranges.join(", "))
            }
        };
        println!(
            "  trusted_proxy {} ({hop}, format = {:?}, header = {:?})",
            proxy.name,
            proxy.format.name(),
            proxy.header.as_str()
        );
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
        println!("    keys from  {}", s.keys);
        println!("    algorithms {}", algs.join(", "));
    }
    if let Some(issuer) = &prepared.issuer {
        print_authorization_server(issuer);
    }
    ExitCode::SUCCESS
}

/// The authorization server part of `check`, in the configuration's own words.
fn print_authorization_server(issuer: &bindgate::issuer::Issuer) {
    let s = &issuer.settings;
    println!("  authorization server {}", s.issuer);
    println!("    listen     {}", s.listen);
    println!(
        "    store      {} (schema v{}; refresh_absolute_lifetime = \"{}\", refresh_idle_timeout = \"{}\", refresh_grace = \"{}\")",
        s.store,
        bindgate::issuer::store::schema::VERSION,
        format_duration(s.refresh.absolute_lifetime),
        format_duration(s.refresh.idle_timeout),
        format_duration(s.refresh.grace)
    );
    for subject_issuer in &s.subject_issuers {
        println!(
            "    subject    {} (audience = {:?})",
            subject_issuer.issuer, subject_issuer.audience
        );
    }
    for (index, key) in issuer.keys.keys().enumerate() {
        let role = if index == 0 { "signs" } else { "published, not signing" };
        println!("    key        {} kid {} ({role})", key.alg().name(), key.kid());
    }
    for client in &s.clients {
        let grants: Vec<String> = client.grant_types.iter().map(|g| format!("{:?}", g.name())).collect();
        println!(
            "    client     {} (auth = \"{}\", grant_types = [{}], binding = {})",
            client.client_id,
            client.auth.name(),
            grants.join(", "),
            client.binding.config_list()
        );
    }
}

fn run(path: PathBuf) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let signals = Signals::install();
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
        let shutdown = signals.serve(live.clone());
        bindgate::run(live, listeners, shutdown).await;
        ExitCode::SUCCESS
    })
}

/// Binds the proxy, admin and authorization server sockets and prints the
/// addresses actually bound.
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
    let authorization_server = match &config.authorization_server {
        Some(settings) => Some(listen(settings.listen, "authorization server").await?),
        None => None,
    };
    Ok(bindgate::Listeners {
        proxy,
        admin,
        authorization_server,
    })
}
