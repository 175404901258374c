//! A JSON response body that serde writes straight from its type, for the answers that carry
//! tokens (every login and refresh).
//!
//! poem-openapi's `Json<T>` first builds a `serde_json::Value` of the body, copying every key
//! and token into a map, then writes that out into a buffer that starts empty and doubles:
//! with two tokens of a few hundred bytes each, four reallocations (the last one large enough
//! for glibc to consolidate its free lists) and 4% of a refresh's CPU (perf). Here the body is
//! written once, into a buffer of its final size. The schema is `T`'s, as with `Json<T>`; the
//! keys come in the fields' order (through a `Value`, without serde_json's `preserve_order`,
//! they came sorted), which is JSON's business only: an object's members have no order.

use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use serde::Serialize;

use super::error::ApiError;

/// A body that knows about how long its JSON is.
pub trait SizedJson: Serialize {
    /// The length of its JSON in bytes, or a little more.
    fn json_len(&self) -> usize;
}

/// `Json<T>` on the wire and in the spec; written without the intermediate `Value`.
pub struct DirectJson<T>(pub T);

impl<T: Type> Payload for DirectJson<T> {
    const CONTENT_TYPE: &'static str = Json::<T>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        Json::<T>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// The status is 200 unless the response enum it is part of sets its own.
impl<T: Type + SizedJson> IntoResponse for DirectJson<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(self.0.json_len());
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => Response::builder()
                .content_type(Self::CONTENT_TYPE)
                .body(body),
            Err(err) => ApiError::internal(&err).into_response(),
        }
    }
}

/// As an operation's whole answer: `Json<T>`'s 200.
impl<T: ToJSON + SizedJson> ApiResponse for DirectJson<T> {
    fn meta() -> MetaResponses {
        <Json<T> as ApiResponse>::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// The bytes a JSON object of these string fields takes, besides the strings themselves
/// (base64url tokens and ids, which JSON does not escape): its keys, quotes and separators.
pub const fn object_overhead(keys: &[&str]) -> usize {
    let mut total = 2;
    let mut i = 0;
    while i < keys.len() {
        // "key":"value",
        total += keys[i].len() + 6;
        i += 1;
    }
    total
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::http::cookies::CookieTokenBody;
    use crate::http::health::HealthBody;
    use crate::http::oauth::TokenResponseBody;
    use crate::http::token::{RefreshBody, TokenPairBody};

    /// The direct body is the JSON `Json<T>` sends, and fits the size it announced.
    async fn same_as_json<T: Type + SizedJson + ToJSON>(body: T) {
        let expected = body.to_json().expect("a JSON body");
        let announced = body.json_len();
        let response = DirectJson(body).into_response();
        assert_eq!(response.content_type(), Some(Json::<T>::CONTENT_TYPE));
        let bytes = response.into_body().into_vec().await.unwrap();
        let written: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(written, expected);
        assert!(bytes.len() <= announced, "{} > {announced}", bytes.len());
    }

    fn token(len: usize) -> String {
        "eyJhbGciOiJIUzI1NiJ9.".repeat(len / 21 + 1)[..len].to_owned()
    }

    #[tokio::test]
    async fn token_answers_are_written_as_json_would_write_them() {
        same_as_json(TokenPairBody {
            access: token(420),
            refresh: token(380),
        })
        .await;
        for refresh in [Some(token(380)), None] {
            same_as_json(RefreshBody {
                access: token(420),
                refresh,
            })
            .await;
        }
        same_as_json(CookieTokenBody {
            access: token(420),
            access_expires_at: i64::MIN,
            csrf: token(43),
        })
        .await;
        let checks = BTreeMap::from([("database".into(), "unavailable".into())]);
        for checks in [BTreeMap::new(), checks] {
            same_as_json(HealthBody {
                status: "ok".into(),
                checks,
            })
            .await;
        }
        for refresh_token in [Some(token(380)), None] {
            same_as_json(TokenResponseBody {
                access_token: token(420),
                token_type: "Bearer".into(),
                expires_in: i64::MIN,
                refresh_token,
                scope: "read write".into(),
            })
            .await;
        }
    }
}
