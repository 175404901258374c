//! Reading the answers: status and body, the contract's error shapes, and a token's parts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;

pub fn string_field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name:?} in {body}"))
        .to_owned()
}

/// Asserts the status and returns the JSON body.
pub async fn expect_status(response: reqwest::Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
}

/// Asserts the contract's error: status, `code` and `detail`, and the 401 challenge.
pub async fn expect_error(
    response: reqwest::Response,
    status: StatusCode,
    code: &str,
    detail: &str,
) -> Value {
    let challenge = response.headers().get("www-authenticate").cloned();
    let body = expect_status(response, status).await;
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["detail"], detail, "{body}");
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(challenge.unwrap(), r#"Bearer realm="api""#);
    }
    body
}

/// Asserts the contract's 429 `throttled` with a `Retry-After` of 1 to `window_secs` seconds,
/// which the detail repeats; returns the `Retry-After`.
pub async fn expect_throttled(response: reqwest::Response, window_secs: u64) -> u64 {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=window_secs).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let detail = format!("Request was throttled. Expected available in {retry_after} seconds.");
    expect_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        &detail,
    )
    .await;
    retry_after
}

pub async fn expect_token_error(response: reqwest::Response, detail: &str) {
    expect_error(
        response,
        StatusCode::UNAUTHORIZED,
        "token_not_valid",
        detail,
    )
    .await;
}

/// Asserts RFC 6749 §5.2's error: status, `error`, and no-store caching.
pub async fn expect_oauth_error(
    response: reqwest::Response,
    status: StatusCode,
    error: &str,
) -> Value {
    let headers = response.headers().clone();
    let body = expect_status(response, status).await;
    assert_eq!(body["error"], error, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description
            .chars()
            .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'),
        "{description:?}"
    );
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(headers["www-authenticate"], r#"Basic realm="jwtd""#);
    }
    body
}

/// The payload of a token, without checking anything.
pub fn claims_of(token: &str) -> Value {
    part_of(token, 1)
}

pub fn header_of(token: &str) -> Value {
    part_of(token, 0)
}

fn part_of(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}
