//! Argon2id itself: the parameters, a new hash as a PHC string, checking a password against a
//! stored hash (with that hash's own parameters, and a new hash when they are not the current
//! ones), and the unmatchable hash that unknown users are checked against.

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, Version, password_hash,
};

use super::{PasswordError, Verified};
use crate::config::Argon2Settings;

pub(super) fn argon2_params(settings: &Argon2Settings) -> Result<Params, PasswordError> {
    Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        None,
    )
    .map_err(|e| PasswordError::Hashing(format!("password.argon2 parameters: {e}")))
}

fn hashing_error(err: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hashing(err.to_string())
}

/// A new PHC string (`$argon2id$v=19$m=…`) for `password` with a fresh 128-bit salt.
pub(super) fn hash_now(
    params: &Params,
    password: &str,
    memory: &mut [Block],
) -> Result<String, PasswordError> {
    let salt = password_hash::try_generate_salt().map_err(hashing_error)?;
    let mut output = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut output, memory)
        .map_err(hashing_error)?;
    phc_string(params, &salt, &output)
}

/// A well-formed hash that no password matches: a random salt and a random output. Checking a
/// password against it costs a full hash, like a real one, and computing it costs nothing (nor
/// 19 MiB of working memory at startup).
pub(super) fn unmatchable_hash(params: &Params) -> Result<String, PasswordError> {
    let salt = password_hash::try_generate_salt().map_err(hashing_error)?;
    let mut output = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    aws_lc_rs::rand::fill(&mut output).map_err(|_| hashing_error("no system randomness"))?;
    phc_string(params, &salt, &output)
}

/// `$argon2id$v=19$m=…,t=…,p=…$<salt>$<output>`
fn phc_string(params: &Params, salt: &[u8], output: &[u8]) -> Result<String, PasswordError> {
    let hash = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(hashing_error)?,
        salt: Some(Salt::new(salt).map_err(hashing_error)?),
        hash: Some(Output::new(output).map_err(hashing_error)?),
    };
    Ok(hash.to_string())
}

pub(super) fn verify_now(
    params: &Params,
    password: &str,
    stored: &str,
    memory: &mut [Block],
) -> Result<Verified, PasswordError> {
    // An unparsable stored hash cannot match anything; it is not the caller's fault.
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Ok(Verified::Wrong);
    };
    if recompute_matches(&parsed, password, memory) != Some(true) {
        return Ok(Verified::Wrong);
    }
    if uses_params(&parsed, params) {
        Ok(Verified::Correct)
    } else {
        Ok(Verified::CorrectRehashed(hash_now(
            params, password, memory,
        )?))
    }
}

/// Hashes `password` with the stored hash's own algorithm, version, parameters and salt, and
/// compares in constant time (`Output`'s equality). `None` when the stored hash is unusable.
fn recompute_matches(stored: &PasswordHash, password: &str, memory: &mut [Block]) -> Option<bool> {
    let (salt, expected) = (stored.salt.as_ref()?, stored.hash.as_ref()?);
    let algorithm = Algorithm::try_from(stored.algorithm.as_str()).ok()?;
    let version = stored
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let params = Params::try_from(stored).ok()?;
    let argon2 = Argon2::new(algorithm, version.ok()?, params.clone());
    let mut output = vec![0u8; expected.len()];
    let computed = if params.block_count() == memory.len() {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut output, memory)
    } else {
        // A hash from other parameters (about to be upgraded): its own, one-off memory.
        argon2.hash_password_into(password.as_bytes(), salt, &mut output)
    };
    computed.ok()?;
    Some(Output::new(&output).ok()? == *expected)
}

fn uses_params(hash: &PasswordHash, wanted: &Params) -> bool {
    hash.algorithm.as_str() == ARGON2ID_IDENT.as_str()
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(hash).is_ok_and(|p| {
            p.m_cost() == wanted.m_cost()
                && p.t_cost() == wanted.t_cost()
                && p.p_cost() == wanted.p_cost()
        })
}
