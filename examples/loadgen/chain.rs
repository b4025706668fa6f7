//! Refresh-chain mode (--refresh-chains): every worker owns one chain of
//! rotating refresh tokens. It starts from a token of the seed file and, per
//! request, POSTs `grant_type=refresh_token&client_id=...&refresh_token=<current>`
//! (with a fresh DPoP proof when --dpop-key is given: the key the chain is
//! bound to), then takes the `refresh_token` of the JSON answer as its next
//! current token. The first non-2xx answer, answer without a refresh token,
//! or failed request ends the chain: its state on the server is then unknown
//! (a refresh may have happened whose answer was lost), so it is never
//! presented again, which the server would rightly take for reuse.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use crate::stats::{lock, merged_stats, record, round3, summary};
use crate::{Conn, Shared, bounded, open, send};

/// The seed file, split among the workers, and what became of each chain.
pub struct Chains {
    path: PathBuf,
    client_id: String,
    /// The first token of each worker's chain.
    seeds: Vec<String>,
    /// The seed file's lines no worker takes, written back unchanged.
    unused: Vec<String>,
    /// Per worker: the chain's current token while it is live, `None` once it ended.
    current: Mutex<Vec<Option<String>>>,
}

impl Chains {
    /// Reads `path`; the first `workers` tokens start the chains.
    pub fn load(path: &Path, workers: usize, client_id: Option<&str>) -> Result<Chains, String> {
        let client_id = client_id.ok_or("--refresh-chains needs --client-id")?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut tokens: Vec<String> = (text.lines().map(str::trim))
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect();
        if tokens.len() < workers {
            return Err(format!(
                "{}: {} refresh tokens for {workers} chains (one per --connections)",
                path.display(),
                tokens.len()
            ));
        }
        let unused = tokens.split_off(workers);
        Ok(Chains {
            path: path.to_path_buf(),
            client_id: client_id.to_string(),
            current: Mutex::new(tokens.iter().cloned().map(Some).collect()),
            seeds: tokens,
            unused,
        })
    }

    /// The refresh request's form for `token`.
    fn form(&self, token: &str) -> Bytes {
        let mut form = String::with_capacity(64 + token.len());
        form.push_str("grant_type=refresh_token&client_id=");
        form_encode(&mut form, &self.client_id);
        form.push_str("&refresh_token=");
        form_encode(&mut form, token);
        Bytes::from(form)
    }

    /// Every live chain's current token, then the unused lines.
    fn write(&self, path: &Path) -> Result<(), String> {
        let current = lock(&self.current);
        let live = current.iter().flatten().map(String::as_str);
        write_lines(path, live.chain(self.unused.iter().map(String::as_str)))
    }
}

/// Runs every chain until the deadline (or --max-requests), then reports as
/// the other modes do, plus how many chains ended early.
pub async fn run(shared: Arc<Shared>, chains: Chains, out: Option<&Path>) -> Result<serde_json::Value, String> {
    let chains = Arc::new(chains);
    eprintln!(
        "loadgen: {} refresh chains from {} (http/1.1 keep-alive) to {} for {:?}",
        chains.seeds.len(),
        chains.path.display(),
        shared.addr,
        shared.deadline - shared.started,
    );
    let mut workers = JoinSet::new();
    for index in 0..chains.seeds.len() {
        workers.spawn(chain(shared.clone(), chains.clone(), index));
    }
    let all_done = async { while workers.join_next().await.is_some() {} };
    if timeout_at(shared.hard_deadline + std::time::Duration::from_secs(1), all_done)
        .await
        .is_err()
    {
        eprintln!("loadgen: some chains did not finish in time; they count as ended");
        workers.abort_all();
    }
    let elapsed = shared.started.elapsed().as_secs_f64();
    let stats = merged_stats();
    let ended = lock(&chains.current).iter().filter(|c| c.is_none()).count();
    let mut report = summary(&stats);
    report["elapsed_s"] = json!(round3(elapsed));
    report["rps_ok"] = json!((stats.ok as f64 / elapsed).round());
    report["chains"] = json!(chains.seeds.len());
    report["chains_ended"] = json!(ended);
    if let Some([ok, failed]) = &shared.sample {
        report["sample_body"] = json!(ok.get());
        report["sample_failure"] = json!(failed.get());
    }
    if let Some(path) = out {
        chains.write(path)?;
    }
    Ok(report)
}

/// One chain's closed loop on one keep-alive connection.
async fn chain(shared: Arc<Shared>, chains: Arc<Chains>, index: usize) {
    let mut token = chains.seeds[index].clone();
    let mut kept: Option<Conn> = None;
    let live = loop {
        // No --tokens in this mode: a permit only checks the deadline and --max-requests.
        if shared.next_permit().is_none() {
            break true;
        }
        let start = Instant::now();
        let form = chains.form(&token);
        let reuse = kept.take();
        let attempt = async {
            let mut conn = match reuse {
                Some(conn) => conn,
                None => open(&shared).await?.0,
            };
            let sent = Instant::now();
            let answer = send(&shared, &mut conn, None, form, true).await?;
            Ok((conn, answer, sent))
        };
        // A failed request is counted (and paused on) by `bounded`.
        let Some((conn, answer, sent)) = bounded(&shared, start, attempt).await else {
            break false;
        };
        record(|s| s.response(answer.status, sent));
        if !answer.status.is_success() {
            break false;
        }
        let Some(next) = answer.body.as_deref().and_then(refresh_token_of) else {
            record(|s| s.error("no_refresh_token"));
            break false;
        };
        token = next;
        kept = Some(conn);
    };
    lock(&chains.current)[index] = live.then_some(token);
}

/// The `refresh_token` member of a JSON token response.
pub fn refresh_token_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        refresh_token: Option<String>,
    }
    let response: TokenResponse = serde_json::from_slice(body).ok()?;
    response.refresh_token.filter(|token| !token.is_empty())
}

/// Writes `lines` to `path` (through a temporary file beside it, renamed over it).
pub fn write_lines<'a>(path: &Path, lines: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let partial = path.with_extension("partial");
    let written = std::fs::File::create(&partial)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&partial, path));
    written.map_err(|e| format!("{}: {e}", path.display()))
}

/// `application/x-www-form-urlencoded`: everything but the unreserved
/// characters percent-encoded (a base64url token passes unchanged).
fn form_encode(out: &mut String, value: &str) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_carries_the_token_and_the_answer_gives_the_next() {
        let chains = Chains {
            path: PathBuf::new(),
            client_id: "mobile app".into(),
            seeds: vec![],
            unused: vec![],
            current: Mutex::default(),
        };
        assert_eq!(
            chains.form("a-b_c+/="),
            "grant_type=refresh_token&client_id=mobile%20app&refresh_token=a-b_c%2B%2F%3D"
        );
        let answer = br#"{"access_token":"x","token_type":"DPoP","refresh_token":"next"}"#;
        assert_eq!(refresh_token_of(answer).as_deref(), Some("next"));
        assert_eq!(refresh_token_of(br#"{"access_token":"x"}"#), None);
        assert_eq!(refresh_token_of(b"not json"), None);
    }
}
