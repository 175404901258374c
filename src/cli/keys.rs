//! `jwtd keys generate`: a new signing key pair for an asymmetric algorithm.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use jsonwebtoken::Algorithm;

use super::CliResult;
use crate::config::SigningAlgorithm;
use crate::token::keygen::generate_key_pair;
use crate::token::keys::kid_of_private_key;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new key pair: `<dir>/<alg>-<kid>.pem` (private, mode 0600) and
    /// `<dir>/<alg>-<kid>.pub.pem`.
    /// The kid is the key's RFC 7638 thumbprint, as the JWKS and token headers show it.
    Generate(Generate),
}

#[derive(Debug, Args)]
pub struct Generate {
    /// EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, PS384 or PS512.
    #[arg(long)]
    alg: SigningAlgorithm,
    /// Directory to write the key files into (created if missing).
    #[arg(long, default_value = "keys")]
    out_dir: PathBuf,
    /// RSA modulus size: 2048, 3072 or 4096.
    #[arg(long, default_value_t = 2048)]
    bits: u32,
}

pub fn run(command: KeysCommand) -> CliResult {
    let KeysCommand::Generate(args) = command;
    let algorithm = Algorithm::from(args.alg);
    let pair = generate_key_pair(algorithm, args.bits)?;
    let kid = kid_of_private_key(pair.private_pem.as_bytes(), algorithm)?;
    std::fs::create_dir_all(&args.out_dir)?;
    let stem = format!("{}-{kid}", args.alg);
    let private_path = args.out_dir.join(format!("{stem}.pem"));
    let public_path = args.out_dir.join(format!("{stem}.pub.pem"));
    write_new(&private_path, &pair.private_pem, 0o600)?;
    write_new(&public_path, &pair.public_pem, 0o644)?;
    println!(
        "{}",
        serde_json::json!({
            "kid": kid,
            "alg": args.alg.as_str(),
            "private_key_file": private_path,
            "public_key_file": public_path,
        })
    );
    Ok(())
}

/// Creates `path` (never overwrites a key) with `mode` on Unix.
fn write_new(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)?.write_all(contents.as_bytes())
}
