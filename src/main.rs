//! The `bindgate` command line: parses arguments, dispatches, exits with a meaningful code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use bindgate::config::{Config, EXIT_INVALID_CONFIG};

#[derive(Parser)]
#[command(name = "bindgate", version, about = "mTLS-bound access token gateway (RFC 8705)", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load(path: &std::path::Path) -> Result<bindgate::Prepared, ExitCode> {
    Config::load(path).and_then(bindgate::prepare).map_err(|e| {
        eprintln!("bindgate: invalid configuration: {e}");
        ExitCode::from(EXIT_INVALID_CONFIG as u8)
    })
}

fn check(path: PathBuf) -> ExitCode {
    let prepared = match load(&path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let c = &prepared.config;
    println!("{}: ok", path.display());
    println!(
        "  listen       {} (client_auth = {})",
        c.server.listen, c.server.client_auth
    );
    println!("  upstream     {}", c.upstream.url);
    println!("  issuer       {}", c.token.issuer);
    println!("  audience     {}", c.token.audience.join(", "));
    let kids: Vec<String> = prepared
        .keys
        .kids()
        .map(|k| k.unwrap_or("(no kid)").to_string())
        .collect();
    println!(
        "  keys         {} ({})",
        prepared.keys.len(),
        kids.join(", ")
    );
    let algs: Vec<&str> = c.token.algorithms.iter().map(|a| a.name()).collect();
    println!("  algorithms   {}", algs.join(", "));
    ExitCode::SUCCESS
}

fn run(path: PathBuf) -> ExitCode {
    let prepared = match load(&path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bindgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listen = prepared.config.server.listen;
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bindgate: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => println!("listening on {addr} (proxy)"),
            Err(e) => {
                eprintln!("bindgate: cannot read the bound address: {e}");
                return ExitCode::FAILURE;
            }
        }
        bindgate::run(prepared, listener, shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
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
