//! The sections of the configuration other than `[jwt]`, as `config/default.toml` lays them out.

use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use super::{PublicUrl, human_duration};

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    pub max_body_bytes: usize,
    /// The request line and headers together; more gets 431 `headers_too_large`.
    pub max_header_bytes: usize,
    /// The whole request, body included; a slower one gets 408 `request_timeout`.
    #[serde(deserialize_with = "human_duration")]
    pub request_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    #[serde(deserialize_with = "human_duration")]
    pub idle_timeout: Duration,
    /// The URL clients reach jwtd at (behind a proxy): the OAuth metadata's issuer and
    /// endpoints. Production requires it (`Settings::validate`).
    #[serde(default)]
    pub public_url: Option<PublicUrl>,
    /// Where `GET /metrics` is served instead of the API port (production requires it).
    #[serde(default)]
    pub metrics_bind: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed: CIDR blocks, a plain address being a block
    /// of one.
    #[serde(default, deserialize_with = "ip_blocks")]
    pub trusted_proxies: Vec<IpNet>,
}

/// Login and registration throttling (see `throttle`).
#[derive(Debug, Clone, Deserialize)]
pub struct ThrottleSettings {
    /// Logins one client address may attempt per `client_window`; 0 turns the limit off.
    pub client_attempts: u32,
    #[serde(deserialize_with = "human_duration")]
    pub client_window: Duration,
    /// Failed logins of one account before the back-off starts.
    pub account_free_failures: u32,
    /// The first lock; each further failure doubles it, up to `account_backoff_max`.
    #[serde(deserialize_with = "human_duration")]
    pub account_backoff: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub account_backoff_max: Duration,
    /// Failures are forgotten this long after the first one (or at a successful login).
    #[serde(deserialize_with = "human_duration")]
    pub account_window: Duration,
    /// Registrations one client address may attempt per `registration_window`; 0 turns the
    /// limit off.
    pub registrations_per_address: u32,
    #[serde(deserialize_with = "human_duration")]
    pub registration_window: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// Secret: a PostgreSQL URL carries the password.
    pub url: SecretString,
    pub max_connections: u32,
    #[serde(deserialize_with = "human_duration")]
    pub acquire_timeout: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub sqlite_checkpoint_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationBackend {
    Database,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RevocationSettings {
    pub store: RevocationBackend,
    #[serde(deserialize_with = "human_duration")]
    pub purge_interval: Duration,
    /// See `store::leases`.
    #[serde(deserialize_with = "human_duration")]
    pub lease: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// Secret: `redis://:password@host` carries the password.
    pub url: SecretString,
    pub cluster: bool,
    pub key_prefix: String,
    #[serde(deserialize_with = "human_duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub response_timeout: Duration,
    /// Production starts on a Redis without an append-only file, or with an evicting
    /// `maxmemory-policy`, only when this is set (see `store::redis::persistence`).
    pub allow_volatile: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PasswordSettings {
    pub argon2: Argon2Settings,
    pub max_concurrent_hashes: usize,
    /// How many of those slots hashes of new passwords may hold at once (0: half); never all
    /// of them when there are two or more (see `password`).
    pub max_new_password_hashes: usize,
    #[serde(deserialize_with = "human_duration")]
    pub hash_queue_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserSettings {
    pub allow_registration: bool,
    /// Registration creates an inactive user and mails an activation link (see `email`).
    pub require_activation: bool,
    /// Taking a permission or group away revokes the affected users' tokens.
    pub revoke_on_permission_loss: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `["10.0.0.0/8", "192.168.1.7", "::1"]`: CIDR blocks, or addresses (a block of one).
fn ip_blocks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|entry| {
            parse_ip_block(entry).ok_or_else(|| {
                // The config crate adds "for key `server.trusted_proxies`".
                serde::de::Error::custom(format!("{entry:?} is not an IP address or CIDR block"))
            })
        })
        .collect()
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is its IPv4 address, as client addresses are.
pub fn parse_ip_block(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry.parse::<IpNet>().ok().or_else(|| {
        let address: std::net::IpAddr = entry.parse().ok()?;
        Some(IpNet::from(address.to_canonical()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_blocks_or_addresses() {
        let block = |text: &str| parse_ip_block(text).map(|net| net.to_string());
        assert_eq!(block("10.0.0.0/8").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(block(" 192.168.1.7 ").as_deref(), Some("192.168.1.7/32"));
        assert_eq!(block("::1").as_deref(), Some("::1/128"));
        assert_eq!(block("fd00::/8").as_deref(), Some("fd00::/8"));
        assert_eq!(block("::ffff:10.0.0.1").as_deref(), Some("10.0.0.1/32"));
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::/129", "10.0.0.0/", ""] {
            assert_eq!(block(bad), None, "{bad}");
        }
    }
}
