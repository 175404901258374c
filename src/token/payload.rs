//! Reading a verified payload: the claims jwtd decides on, in one pass over the JSON.
//!
//! Parsing into a `serde_json::Map` first allocated every key and every value of the payload
//! (an access token's groups, permissions and metadata included) only to drop most of them, and
//! cost about as many instructions as the rest of decoding apart from the signature (callgrind).
//! Here claims nothing reads are skipped unparsed, and names are compared where they lie.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::TokenError;
use super::claims::{ClaimNames, Claims, SessionId, TokenType};
use crate::clock::UnixSecs;

impl ClaimNames {
    /// Reads a verified payload, and its `aud` as written (a string or a list, RFC 7519
    /// §4.1.3), which the codec checks. Every contract claim must be present with its JSON
    /// type; anything else is an invalid token, never a panic. A claim written twice must have
    /// its type each time and counts as written last. Claims nothing reads are skipped without
    /// being checked: the payload is one jwtd signed.
    pub fn read(&self, json: &[u8]) -> Result<(Claims, Option<Value>), TokenError> {
        read_object(json, PayloadVisitor { names: self })?.into_claims()
    }
}

/// The JSON object `json` as `visitor` reads it, with nothing after it; anything else is an
/// invalid token.
pub(super) fn read_object<'de, V: Visitor<'de>>(
    json: &'de [u8],
    visitor: V,
) -> Result<V::Value, TokenError> {
    let mut reader = serde_json::Deserializer::from_slice(json);
    let value = reader
        .deserialize_map(visitor)
        .map_err(|_| TokenError::Invalid)?;
    reader.end().map_err(|_| TokenError::Invalid)?;
    Ok(value)
}

/// The claims read, as they came.
#[derive(Default)]
struct Fields<'de> {
    token_type: Option<Text<'de>>,
    exp: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
    sub: Option<String>,
    sid: Option<Text<'de>>,
    iss: Option<String>,
    aud: Option<Value>,
    scope: Option<String>,
    client_id: Option<String>,
    user_id: Option<String>,
}

impl Fields<'_> {
    fn into_claims(self) -> Result<(Claims, Option<Value>), TokenError> {
        let token_type = self
            .token_type
            .and_then(|text| TokenType::parse(&text.0))
            .ok_or(TokenError::Invalid)?;
        let sid = self
            .sid
            .and_then(|text| SessionId::parse(&text.0))
            .ok_or(TokenError::Invalid)?;
        let (Some(exp), Some(iat), Some(jti), Some(sub)) = (self.exp, self.iat, self.jti, self.sub)
        else {
            return Err(TokenError::Invalid);
        };
        // Without a user claim, the token must be a client's own: `sub` is its `client_id`.
        let subject_is_client = self.user_id.is_none();
        let consistent = match &self.user_id {
            Some(user_id) => *user_id == sub,
            None => self.client_id.as_deref() == Some(sub.as_str()),
        };
        if !consistent || jti.is_empty() || sub.is_empty() {
            return Err(TokenError::Invalid);
        }
        let claims = Claims {
            token_type,
            exp: UnixSecs(exp),
            iat: UnixSecs(iat),
            jti,
            user_id: sub,
            subject_is_client,
            sid,
            iss: self.iss,
            // Set by the codec once it has checked `aud`.
            aud: None,
            // Informational extras: nothing in jwtd decides on them.
            username: None,
            is_staff: None,
            groups: None,
            perms: None,
            metadata: serde_json::Map::new(),
            scope: self.scope,
            client_id: self.client_id,
        };
        Ok((claims, self.aud))
    }
}

struct PayloadVisitor<'a> {
    names: &'a ClaimNames,
}

impl<'de> Visitor<'de> for PayloadVisitor<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
            match name.as_ref() {
                "exp" => fields.exp = Some(map.next_value()?),
                "iat" => fields.iat = Some(map.next_value()?),
                "jti" => fields.jti = Some(map.next_value()?),
                "sub" => fields.sub = Some(map.next_value()?),
                "sid" => fields.sid = Some(map.next_value()?),
                "iss" => fields.iss = Some(map.next_value()?),
                "aud" => fields.aud = Some(map.next_value()?),
                "scope" => fields.scope = Some(map.next_value()?),
                "client_id" => fields.client_id = Some(map.next_value()?),
                name if name == self.names.token_type => {
                    fields.token_type = Some(map.next_value()?);
                }
                name if name == self.names.user_id => fields.user_id = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

/// A JSON string, borrowed from the payload unless it holds escapes.
pub(super) struct Text<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SID: &str = "01938d2e-7a00-7c3b-8d5e-3a1b2c3d4e5f";

    fn names() -> ClaimNames {
        ClaimNames {
            user_id: "uid".into(),
            token_type: "kind".into(),
        }
    }

    fn payload() -> Value {
        json!({
            "kind": "refresh", "exp": 2000, "iat": 1000, "jti": "j1", "uid": "u1", "sub": "u1",
            "sid": SID, "iss": "jwtd", "aud": ["a", "b"], "scope": "read",
            "perms": ["x.y"], "meta": {"deep": [1, {"k": null}]}, "is_staff": true,
        })
    }

    fn read(payload: &Value) -> Result<(Claims, Option<Value>), TokenError> {
        names().read(payload.to_string().as_bytes())
    }

    #[test]
    fn the_claims_are_read_under_their_configured_names_and_the_rest_skipped() {
        let (claims, aud) = read(&payload()).unwrap();
        assert_eq!(claims.token_type, TokenType::Refresh);
        assert_eq!((claims.exp, claims.iat), (UnixSecs(2000), UnixSecs(1000)));
        assert_eq!((claims.jti.as_str(), claims.user_id.as_str()), ("j1", "u1"));
        assert_eq!(claims.sid.to_string(), SID);
        assert_eq!(claims.iss.as_deref(), Some("jwtd"));
        assert_eq!(claims.scope.as_deref(), Some("read"));
        assert!(!claims.subject_is_client);
        assert_eq!(aud, Some(json!(["a", "b"])));
    }

    #[test]
    fn a_missing_or_mistyped_contract_claim_is_invalid() {
        for claim in ["kind", "exp", "iat", "jti", "sub", "sid"] {
            let mut missing = payload();
            missing.as_object_mut().unwrap().remove(claim);
            assert!(read(&missing).is_err(), "without {claim}");
        }
        let wrong = [
            ("kind", json!("id")),
            ("exp", json!(1.5)),
            ("exp", json!(u64::MAX)),
            ("iat", json!("1000")),
            ("jti", json!(7)),
            ("jti", json!("")),
            ("sub", json!(null)),
            ("sid", json!("not-a-session")),
            ("iss", json!(["jwtd"])),
            ("uid", json!("someone-else")),
        ];
        for (claim, value) in wrong {
            let mut mistyped = payload();
            mistyped[claim] = value.clone();
            assert!(read(&mistyped).is_err(), "{claim} = {value}");
        }
    }

    #[test]
    fn a_client_token_has_no_user_claim_and_its_client_as_subject() {
        let mut client = payload();
        let object = client.as_object_mut().unwrap();
        object.remove("uid");
        object.insert("sub".into(), json!("app"));
        assert!(read(&client).is_err(), "no client_id");
        client["client_id"] = json!("app");
        let (claims, _) = read(&client).unwrap();
        assert!(claims.subject_is_client);
        assert_eq!(claims.client_id.as_deref(), Some("app"));
    }

    #[test]
    fn escapes_repeats_and_trailing_bytes_are_read_as_json_reads_them() {
        let escaped = payload()
            .to_string()
            .replace("\"jti\":\"j1\"", "\"j\\u0074i\":\"j\\n1\"");
        let (claims, _) = names().read(escaped.as_bytes()).unwrap();
        assert_eq!(claims.jti, "j\n1");
        let repeated = payload()
            .to_string()
            .replacen('{', "{\"jti\":\"first\",", 1);
        assert_eq!(names().read(repeated.as_bytes()).unwrap().0.jti, "j1");
        let trailing = format!("{} x", payload());
        assert!(names().read(trailing.as_bytes()).is_err());
        for not_an_object in ["[]", "\"x\"", "", "{"] {
            assert!(names().read(not_an_object.as_bytes()).is_err());
        }
    }
}
