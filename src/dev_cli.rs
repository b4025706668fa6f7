//! The developer subcommands (`dev-certs`, `mint`, `dpop-proof`,
//! `client-assertion`, `demo`),
//! built only with the `dev` feature (on by default): a hardened build
//! (`--no-default-features`) leaves them and rcgen out of the binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::{fail, runtime};

#[derive(Subcommand)]
pub enum DevCommand {
    /// Write a development PKI: CA, server certificate for localhost, two client certificates, an issuer key and its
    /// JWKS, a client's DPoP key (dpop-key.pem), and the authorization server's Ed25519 signing key
    /// (as-signing-key.pem, mode 0600).
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
        long_about = "Print a development access token (typ at+jwt) signed by the dev issuer key: ES256 for an EC P-256 key, \
            EdDSA for an Ed25519 key.\n\n\
            The token is bound through its `cnf` claim: to a client certificate with --cert (cnf.\"x5t#S256\", \
            RFC 8705), to a DPoP key with --dpop-key (cnf.jkt, RFC 9449), or to both. At least one is required.",
        group(clap::ArgGroup::new("binding").args(["cert", "dpop_key", "id_token"]).multiple(true).required(true))
    )]
    Mint {
        /// Bind the token to this client certificate (PEM): cnf."x5t#S256" is its SHA-256 thumbprint.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Bind the token to this DPoP key (EC P-256, PKCS#8 PEM, e.g. certs/dpop-key.pem): cnf.jkt is the RFC 7638
        /// thumbprint of its public key. Sign the matching proofs with `bindgate dpop-proof --key`.
        #[arg(long)]
        dpop_key: Option<PathBuf>,
        /// The issuer's signing key (EC P-256 or Ed25519, PKCS#8 PEM); certs/as-signing-key.pem signs as the
        /// embedded authorization server does.
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
        /// Mint the dev identity provider's id_token instead (typ JWT, no cnf), the subject token a public client
        /// exchanges for bound tokens: `--id-token --key certs/idp-key.pem --iss https://idp.bindgate.dev --aud app`.
        #[arg(long, conflicts_with_all = ["cert", "dpop_key"])]
        id_token: bool,
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
    /// Print a private_key_jwt client assertion (RFC 7523) for one token request, signed with a client's key.
    #[command(
        long_about = "Print a client assertion JWT (RFC 7523, private_key_jwt) for one request to the authorization \
            server: the value of the form's client_assertion parameter. iss and sub are the client_id, aud the \
            issuer identifier, jti random (an assertion is good for one request), exp a minute ahead.\n\n\
            Example:\n  \
            curl --cacert certs/ca.pem https://localhost:8444/token \\\n    \
            -H \"DPoP: $(bindgate dpop-proof --method POST --url https://localhost:8444/token)\" \\\n    \
            -d grant_type=client_credentials -d client_id=app \\\n    \
            -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \\\n    \
            -d client_assertion=$(bindgate client-assertion)"
    )]
    ClientAssertion {
        /// The client's private key (EC P-256 or Ed25519, PKCS#8 PEM), whose public key is in the client's jwks.
        #[arg(long, default_value = "certs/app-key.pem")]
        key: PathBuf,
        #[arg(long, default_value = "app")]
        client_id: String,
        /// The authorization server's issuer identifier ([authorization_server] issuer).
        #[arg(long, default_value = "https://localhost:8444")]
        aud: String,
        /// Lifetime, e.g. 60s; the server accepts at most 5m.
        #[arg(long, default_value = "60s", value_parser = parse_ttl)]
        ttl: std::time::Duration,
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
}

pub fn run(command: DevCommand) -> ExitCode {
    match command {
        DevCommand::DevCerts { out, force } => dev_certs(&out, force),
        DevCommand::Mint {
            cert,
            dpop_key,
            key,
            iss,
            aud,
            sub,
            ttl,
            scope,
            id_token,
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
                id_token,
            };
            match mint_tokens(&request, count) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        DevCommand::DpopProof {
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
        DevCommand::ClientAssertion {
            key,
            client_id,
            aud,
            ttl,
        } => {
            let request = bindgate::dev::assertion::AssertionRequest {
                client_id: &client_id,
                audience: &aud,
                lifetime: ttl,
            };
            match bindgate::dev::assertion::assertion_with_key_file(&key, &request) {
                Ok(assertion) => {
                    println!("{assertion}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        DevCommand::Demo { config, certs, once } => demo(&config, &certs, once),
    }
}

fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    bindgate::config::parse_duration(text)
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
