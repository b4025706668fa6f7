//! `bindgate families`: the refresh-token families of the configured store,
//! listed and revoked by an operator ("log this user out everywhere").
//! Works beside a running bindgate: its gateway learns of a revocation
//! within its store poll (250 ms), on every replica sharing the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use bindgate::config::{Config, EXIT_INVALID_CONFIG};
use bindgate::issuer::store::{Family, FamilyFilter, FamilyStore, RevokeReason};

#[derive(Subcommand)]
pub enum FamiliesCommand {
    /// List families, newest first: id, client, subject, generation, state and times (UTC).
    List {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
        /// Only this subject's (`sub`) families.
        #[arg(long)]
        sub: Option<String>,
        /// Only this client's families.
        #[arg(long)]
        client: Option<String>,
    },
    /// Revoke one family by id, or every live family of a subject. Their
    /// refresh tokens stop working at once, their access tokens at the
    /// gateway within a second.
    #[command(group(clap::ArgGroup::new("which").args(["id", "sub"]).required(true)))]
    Revoke {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
        /// The family id (the `sid` of its access tokens).
        id: Option<String>,
        /// Every live family of this subject: the user signed out everywhere.
        #[arg(long)]
        sub: Option<String>,
    },
}

pub fn run(command: FamiliesCommand, runtime: &tokio::runtime::Runtime) -> ExitCode {
    match command {
        FamiliesCommand::List { config, sub, client } => runtime.block_on(async {
            let store = match open(&config).await {
                Ok(store) => store,
                Err(code) => return code,
            };
            let filter = FamilyFilter {
                subject: sub,
                client_id: client,
            };
            match store.list(&filter).await {
                Ok(families) => {
                    print!("{}", table(&families, now()));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }),
        FamiliesCommand::Revoke { config, id, sub } => runtime.block_on(async {
            let store = match open(&config).await {
                Ok(store) => store,
                Err(code) => return code,
            };
            let revoked = match (id, sub) {
                (Some(id), _) => store
                    .revoke(&id, RevokeReason::Operator, now())
                    .await
                    .map(|revoked| if revoked { vec![id] } else { Vec::new() }),
                (None, Some(sub)) => store.revoke_subject(&sub, RevokeReason::Operator, now()).await,
                // clap's group requires one of the two.
                (None, None) => Ok(Vec::new()),
            };
            match revoked {
                Ok(ids) => {
                    for id in &ids {
                        println!("revoked {id}");
                    }
                    eprintln!(
                        "{} famil{} revoked",
                        ids.len(),
                        if ids.len() == 1 { "y" } else { "ies" }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }),
    }
}

/// The configured store, opened (and migrated) as `run` would.
async fn open(path: &Path) -> Result<FamilyStore, ExitCode> {
    let config = Config::load(path).map_err(|e| {
        eprintln!("bindgate: invalid configuration: {e}");
        ExitCode::from(EXIT_INVALID_CONFIG as u8)
    })?;
    let Some(settings) = &config.authorization_server else {
        eprintln!(
            "bindgate: {}: no [authorization_server], so no family store",
            path.display()
        );
        return Err(ExitCode::from(EXIT_INVALID_CONFIG as u8));
    };
    FamilyStore::open(&settings.store).await.map_err(fail)
}

fn table(families: &[Family], now: i64) -> String {
    let mut out = String::from("ID\tCLIENT\tSUBJECT\tGENERATION\tSTATE\tCREATED\tLAST_USED\tEXPIRES\n");
    for f in families {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            f.id,
            f.client_id,
            f.subject,
            f.generation,
            state(f, now),
            utc(f.created_at),
            utc(f.last_used_at),
            utc(f.usable_until()),
        ));
    }
    out
}

fn state(family: &Family, now: i64) -> String {
    match (&family.revoked_at, &family.revoked_reason) {
        (Some(_), Some(reason)) => format!("revoked:{reason}"),
        (Some(_), None) => "revoked".to_string(),
        _ if now >= family.expires_at => "expired".to_string(),
        _ if now >= family.idle_deadline() => "idle".to_string(),
        _ => "active".to_string(),
    }
}

fn utc(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| seconds.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("bindgate: {e}");
    ExitCode::FAILURE
}
