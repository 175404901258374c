//! The claim set of jwtd's tokens, with the configurable `user_id` / `token_type` claim names.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::clock::{UnixMillis, UnixSecs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }

    pub(super) fn parse(text: &str) -> Option<TokenType> {
        match text {
            "access" => Some(TokenType::Access),
            "refresh" => Some(TokenType::Refresh),
            _ => None,
        }
    }
}

/// A login session (refresh-token family). A UUIDv7: its timestamp is the login time, which
/// bounds the session (`jwt.session_lifetime`) and orders it against a user's "revoke all".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A new session started at `at`.
    pub fn start(at: UnixMillis) -> SessionId {
        let ms = u64::try_from(at.0).expect("the clock is after 1970");
        let ts =
            uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, (ms % 1000) as u32 * 1_000_000);
        SessionId(Uuid::new_v7(ts))
    }

    pub fn parse(text: &str) -> Option<SessionId> {
        SessionId::from_uuid(Uuid::try_parse(text).ok()?)
    }

    /// Only a UUIDv7 carries the login time a session needs.
    pub fn from_uuid(uuid: Uuid) -> Option<SessionId> {
        (uuid.get_version_num() == 7).then_some(SessionId(uuid))
    }

    /// When the session began (login).
    pub fn started(self) -> UnixMillis {
        let (secs, nanos) = self
            .0
            .get_timestamp()
            .expect("a SessionId is always a UUIDv7")
            .to_unix();
        UnixMillis(secs as i64 * 1000 + i64::from(nanos / 1_000_000))
    }

    pub fn uuid(self) -> Uuid {
        self.0
    }

    /// Its text (as `Display` writes it) on the stack, without the formatting machinery: the
    /// store's keys for every verify and refresh are built from it.
    pub fn text(self) -> SessionText {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        self.0.hyphenated().encode_lower(&mut text);
        SessionText(text)
    }
}

/// A session id's text ([`SessionId::text`]).
pub struct SessionText([u8; uuid::fmt::Hyphenated::LENGTH]);

impl SessionText {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits and hyphens")
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A fresh random token id: 32 hex characters, as the contract promises.
pub fn new_jti() -> String {
    Uuid::new_v4().simple().to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub token_type: TokenType,
    pub exp: UnixSecs,
    pub iat: UnixSecs,
    pub jti: String,
    /// The subject, written as `sub`: the user's id (a UUID string), also written under the
    /// user-id claim; or, for a client-credentials token, the OAuth client's id.
    pub user_id: String,
    /// A client-credentials token: the subject is the client itself, and no user claim is written.
    pub subject_is_client: bool,
    pub sid: SessionId,
    pub iss: Option<String>,
    pub aud: Option<String>,
    /// Access tokens only, when configured (`jwt.access_token_extra_claims`).
    pub username: Option<String>,
    pub is_staff: Option<bool>,
    /// The user's group names and effective permissions (`groups`, `perms`), when configured.
    pub groups: Option<Vec<String>>,
    pub perms: Option<Vec<String>>,
    /// The user's `app_metadata`, one claim per key, when configured. Never holds a claim name
    /// written above (`accounts::permissions::is_reserved_claim`).
    pub metadata: Map<String, Value>,
    /// OAuth 2.0 tokens: the space-separated scopes granted, and the client they were issued to.
    pub scope: Option<String>,
    pub client_id: Option<String>,
}

/// Where the configurable claims live in the JSON payload.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    pub user_id: String,
    pub token_type: String,
}

impl ClaimNames {
    /// Serializes `claims` under these names.
    pub fn wire<'a>(&'a self, claims: &'a Claims) -> WireClaims<'a> {
        WireClaims {
            claims,
            names: self,
        }
    }
}

pub struct WireClaims<'a> {
    claims: &'a Claims,
    names: &'a ClaimNames,
}

impl Serialize for WireClaims<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = self.claims;
        let optional = [
            c.iss.is_some(),
            c.aud.is_some(),
            c.username.is_some(),
            c.is_staff.is_some(),
            c.groups.is_some(),
            c.perms.is_some(),
            c.scope.is_some(),
            c.client_id.is_some(),
            !c.subject_is_client,
        ]
        .into_iter()
        .filter(|present| *present)
        .count();
        let mut map = serializer.serialize_map(Some(6 + optional + c.metadata.len()))?;
        map.serialize_entry(&self.names.token_type, c.token_type.as_str())?;
        map.serialize_entry("exp", &c.exp.0)?;
        map.serialize_entry("iat", &c.iat.0)?;
        map.serialize_entry("jti", &c.jti)?;
        if !c.subject_is_client {
            map.serialize_entry(&self.names.user_id, &c.user_id)?;
        }
        map.serialize_entry("sub", &c.user_id)?;
        map.serialize_entry("sid", &c.sid.to_string())?;
        if let Some(iss) = &c.iss {
            map.serialize_entry("iss", iss)?;
        }
        if let Some(aud) = &c.aud {
            map.serialize_entry("aud", aud)?;
        }
        if let Some(username) = &c.username {
            map.serialize_entry("username", username)?;
        }
        if let Some(is_staff) = c.is_staff {
            map.serialize_entry("is_staff", &is_staff)?;
        }
        if let Some(groups) = &c.groups {
            map.serialize_entry("groups", groups)?;
        }
        if let Some(perms) = &c.perms {
            map.serialize_entry("perms", perms)?;
        }
        if let Some(scope) = &c.scope {
            map.serialize_entry("scope", scope)?;
        }
        if let Some(client_id) = &c.client_id {
            map.serialize_entry("client_id", client_id)?;
        }
        for (name, value) in &c.metadata {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Claims {
    /// A user's access token issued at `now`, valid for five minutes, with no optional claims.
    #[cfg(test)]
    pub(crate) fn sample_access(now: crate::clock::UnixSecs) -> Claims {
        use crate::clock::{UnixMillis, UnixSecs};
        Claims {
            token_type: TokenType::Access,
            exp: UnixSecs(now.0 + 300),
            iat: now,
            jti: new_jti(),
            user_id: uuid::Uuid::new_v4().to_string(),
            subject_is_client: false,
            sid: SessionId::start(UnixMillis(now.0 * 1000)),
            iss: None,
            aud: None,
            username: None,
            is_staff: None,
            groups: None,
            perms: None,
            metadata: Default::default(),
            scope: None,
            client_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_carries_its_start_time() {
        let sid = SessionId::start(UnixMillis(1_700_000_123_456));
        assert_eq!(sid.started(), UnixMillis(1_700_000_123_456));
        assert_eq!(SessionId::parse(&sid.to_string()), Some(sid));
        assert_eq!(sid.text().as_str(), sid.to_string());
    }

    #[test]
    fn a_non_v7_uuid_is_not_a_session() {
        assert_eq!(SessionId::parse(&Uuid::new_v4().to_string()), None);
    }

    #[test]
    fn jti_is_32_hex_characters() {
        let jti = new_jti();
        assert_eq!(jti.len(), 32);
        assert!(jti.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
