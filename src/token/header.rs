//! A token's JOSE header, read for what jwtd's tokens carry in it: `alg`, `kid` and `typ`.
//!
//! jsonwebtoken's `decode_header` splits the whole token again and reads every registered
//! member into a struct of a dozen options, some of them allocated: twice what reading the
//! claims costs now (callgrind). Other members are skipped here, unread; the signature, checked
//! next with the key `kid` names, covers the header anyway.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::de::{Error, IgnoredAny, MapAccess, Visitor};

use super::TokenError;
use super::payload::{Text, read_object};

pub(super) struct JoseHeader {
    pub alg: Algorithm,
    pub kid: String,
}

impl JoseHeader {
    /// The header of `encoded` (its base64url part): an `alg` jsonwebtoken knows, a `kid`, and
    /// a `typ` of `JWT` when there is one. Anything else, or a member given twice, is invalid.
    pub fn read(encoded: &str) -> Result<JoseHeader, TokenError> {
        let json = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenError::Invalid)?;
        read_object(&json, HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = JoseHeader;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JOSE header")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JoseHeader, A::Error> {
        let (mut alg, mut kid, mut typ) = (None, None, None);
        while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
            let slot = match name.as_ref() {
                "alg" => &mut alg,
                "kid" => &mut kid,
                "typ" => &mut typ,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.replace(map.next_value::<Text<'de>>()?).is_some() {
                return Err(A::Error::custom(format_args!("{name} given twice")));
            }
        }
        if typ.is_some_and(|Text(typ)| !typ.eq_ignore_ascii_case("JWT")) {
            return Err(A::Error::custom("not a JWT"));
        }
        let alg = alg.ok_or_else(|| A::Error::missing_field("alg"))?;
        let alg = Algorithm::from_str(&alg.0).map_err(A::Error::custom)?;
        let Text(kid) = kid.ok_or_else(|| A::Error::missing_field("kid"))?;
        Ok(JoseHeader {
            alg,
            kid: kid.into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(header: serde_json::Value) -> Result<JoseHeader, TokenError> {
        JoseHeader::read(&URL_SAFE_NO_PAD.encode(header.to_string()))
    }

    #[test]
    fn alg_kid_and_typ_are_read_and_other_members_skipped() {
        let header = read(json!({"typ": "jwt", "alg": "EdDSA", "kid": "k1", "x5c": [{"a": 1}]}));
        let header = header.unwrap();
        assert_eq!((header.alg, header.kid.as_str()), (Algorithm::EdDSA, "k1"));
        assert!(
            read(json!({"alg": "HS256", "kid": "k\u{e9}"})).is_ok(),
            "no typ"
        );
    }

    #[test]
    fn anything_else_is_invalid() {
        let invalid = [
            json!({"alg": "HS256"}),
            json!({"kid": "k1"}),
            json!({"alg": "none", "kid": "k1"}),
            json!({"alg": "hs256", "kid": "k1"}),
            json!({"alg": "HS256", "kid": 1}),
            json!({"alg": "HS256", "kid": "k1", "typ": "at+jwt"}),
            json!({"alg": "HS256", "kid": "k1", "typ": null}),
            json!(["HS256", "k1"]),
        ];
        for header in invalid {
            assert!(read(header.clone()).is_err(), "{header}");
        }
        let twice = r#"{"alg":"HS256","kid":"k1","alg":"none"}"#;
        assert!(JoseHeader::read(&URL_SAFE_NO_PAD.encode(twice)).is_err());
        assert!(JoseHeader::read("not base64!").is_err());
        let trailing = r#"{"alg":"HS256","kid":"k1"} {}"#;
        assert!(JoseHeader::read(&URL_SAFE_NO_PAD.encode(trailing)).is_err());
    }
}
