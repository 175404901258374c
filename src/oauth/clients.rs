//! Registered OAuth 2.0 clients: creation with a secret shown once, authentication, secret
//! rotation and deletion.
//!
//! Secrets are 256 random bits, stored as a SHA-256 digest. A slow password hash protects
//! guessable secrets; these are not guessable, and every token, revoke and introspect request
//! authenticates a client, so a fast digest costs nothing and loses nothing.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::error::OAuthError;
use crate::clock::SharedClock;
use crate::flows::{AuthError, RevocationFlow};
use crate::outage::Outage;
use crate::store::clients::{ClientRecord, ClientRepository};
use crate::token::scope::{InvalidScope, Scope};

/// The grants of RFC 6749 that jwtd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    Password,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(text: &str) -> Option<GrantType> {
        GrantType::ALL
            .into_iter()
            .find(|grant| grant.as_str() == text)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub grants: Vec<GrantType>,
    /// Every scope the client may be granted.
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub secret_rotated_at: DateTime<Utc>,
}

impl Client {
    pub fn may_use(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }
}

/// A client just created (or given a new secret): the only time the secret is known.
pub struct ClientWithSecret {
    pub client: Client,
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unknown grant type {0:?} (password, refresh_token, client_credentials)")]
    UnknownGrant(String),
    #[error("a client needs at least one grant type")]
    NoGrant,
    #[error("a client name must be 1 to 150 characters")]
    BadName,
    #[error(transparent)]
    Scope(#[from] InvalidScope),
    #[error("no client with id {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] Outage),
    #[error("revoking the client's tokens failed")]
    Revocation(#[from] AuthError),
}

#[derive(Clone)]
pub struct ClientService {
    repository: ClientRepository,
    revocation: Arc<RevocationFlow>,
    clock: SharedClock,
}

impl ClientService {
    pub fn new(
        repository: ClientRepository,
        revocation: Arc<RevocationFlow>,
        clock: SharedClock,
    ) -> ClientService {
        ClientService {
            repository,
            revocation,
            clock,
        }
    }

    /// Registers a client; the secret in the answer is never stored.
    pub async fn create(
        &self,
        name: &str,
        grants: &[String],
        scopes: &[String],
    ) -> Result<ClientWithSecret, ClientError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 150 {
            return Err(ClientError::BadName);
        }
        let grants = parse_grants(grants)?;
        let scope = Scope::parse(&scopes.join(" "))?;
        let now = self.now();
        let secret = random_token(32);
        let record = ClientRecord {
            id: random_id(),
            name: name.to_owned(),
            secret_hash: digest(&secret),
            grant_types: join(grants.iter().map(|g| g.as_str())),
            scope: scope.to_string(),
            created_at: now,
            secret_rotated_at: now,
        };
        self.repository.create(record.clone()).await?;
        Ok(ClientWithSecret {
            client: client_of(record)?,
            secret,
        })
    }

    pub async fn list(&self) -> Result<Vec<Client>, ClientError> {
        let records = self.repository.list().await?;
        Ok(records
            .into_iter()
            .map(client_of)
            .collect::<Result<_, _>>()?)
    }

    /// Deletes a client and revokes the tokens issued to it as a client (client credentials).
    /// Its users' sessions stay, but only this client could refresh them, and it is gone.
    pub async fn delete(&self, id: &str) -> Result<(), ClientError> {
        if self.repository.find(id).await?.is_none() {
            return Err(ClientError::NotFound(id.to_owned()));
        }
        // Revoke first: a failure leaves a client that still exists, never live orphan tokens.
        self.revocation.revoke_all_of_client(id).await?;
        self.repository.delete(id).await?;
        Ok(())
    }

    /// A new secret; the old one stops working at once.
    pub async fn rotate_secret(&self, id: &str) -> Result<ClientWithSecret, ClientError> {
        let secret = random_token(32);
        if !self
            .repository
            .set_secret_hash(id, digest(&secret), self.now())
            .await?
        {
            return Err(ClientError::NotFound(id.to_owned()));
        }
        let record = self
            .repository
            .find(id)
            .await?
            .ok_or_else(|| ClientError::NotFound(id.to_owned()))?;
        Ok(ClientWithSecret {
            client: client_of(record)?,
            secret,
        })
    }

    /// The client whose id and secret these are; anything else is `invalid_client`.
    pub async fn authenticate(&self, id: &str, secret: &str) -> Result<Client, OAuthError> {
        let record = self.repository.find(id).await?;
        // Compare even for an unknown id, so timing does not tell which ids exist.
        let expected = record
            .as_ref()
            .map_or_else(|| digest(""), |r| r.secret_hash.clone());
        let matches = constant_time_eq(digest(secret).as_bytes(), expected.as_bytes());
        match record {
            Some(record) if matches => Ok(client_of(record)?),
            _ => Err(OAuthError::InvalidClient),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now().to_datetime()
    }
}

fn parse_grants(grants: &[String]) -> Result<Vec<GrantType>, ClientError> {
    let mut parsed = Vec::new();
    for text in grants.iter().flat_map(|g| g.split([',', ' '])) {
        if text.is_empty() {
            continue;
        }
        let grant =
            GrantType::parse(text).ok_or_else(|| ClientError::UnknownGrant(text.to_owned()))?;
        if !parsed.contains(&grant) {
            parsed.push(grant);
        }
    }
    if parsed.is_empty() {
        return Err(ClientError::NoGrant);
    }
    Ok(parsed)
}

fn client_of(record: ClientRecord) -> Result<Client, Outage> {
    let corrupt = || Outage::internal(format!("client {} has a corrupt row", record.id));
    let grants = record
        .grant_types
        .split(' ')
        .map(|g| GrantType::parse(g).ok_or_else(corrupt))
        .collect::<Result<_, _>>()?;
    let scope = Scope::parse(&record.scope).map_err(|_| corrupt())?;
    Ok(Client {
        id: record.id,
        name: record.name,
        grants,
        scope,
        created_at: record.created_at,
        secret_rotated_at: record.secret_rotated_at,
    })
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join(" ")
}

/// `bytes` of system randomness, base64url: ids and secrets safe in URLs and Basic auth.
fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buffer).expect("the system random source works");
    URL_SAFE_NO_PAD.encode(buffer)
}

/// 128 random bits in lowercase hex: a client id that never starts with '-' (which command
/// lines take for a flag) and survives case-insensitive handling.
fn random_id() -> String {
    let mut buffer = [0u8; 16];
    aws_lc_rs::rand::fill(&mut buffer).expect("the system random source works");
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_from_lists_and_commas() {
        let grants = parse_grants(&["password,refresh_token".into(), "password".into()]).unwrap();
        assert_eq!(grants, vec![GrantType::Password, GrantType::RefreshToken]);
        assert!(matches!(
            parse_grants(&["implicit".into()]),
            Err(ClientError::UnknownGrant(_))
        ));
        assert!(matches!(parse_grants(&[]), Err(ClientError::NoGrant)));
    }

    #[test]
    fn client_ids_are_random_lowercase_hex() {
        let (a, b) = (random_id(), random_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
    }

    #[test]
    fn secrets_are_random_and_compared_by_digest() {
        let (a, b) = (random_token(32), random_token(32));
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(constant_time_eq(
            digest(&a).as_bytes(),
            digest(&a).as_bytes()
        ));
        assert!(!constant_time_eq(
            digest(&a).as_bytes(),
            digest(&b).as_bytes()
        ));
    }
}
