//! CORS: only the origins in `cors.allowed_origins` get `Access-Control-Allow-*` headers, with
//! credentials; every answer varies on `Origin`; without the setting, no CORS at all.

use reqwest::{Method, StatusCode};

use jwtd_test_support::{Backend, TestApp};

const APP_ORIGIN: &str = "http://app.jwtd.test:8080";
const OTHER_ORIGIN: &str = "http://evil.jwtd.test:8080";

async fn spawn() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.cors.allowed_origins = vec![APP_ORIGIN.into()];
    })
    .await
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/users/me/"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

async fn get_from(app: &TestApp, origin: &str) -> reqwest::Response {
    let request = app.client.get(app.url("/health/live"));
    request.header("origin", origin).send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    let value = response.headers().get(name)?;
    Some(value.to_str().unwrap().to_owned())
}

fn allow_headers(response: &reqwest::Response) -> Vec<String> {
    let names = response
        .headers()
        .keys()
        .map(|name| name.as_str().to_owned());
    names
        .filter(|name| name.starts_with("access-control-allow-"))
        .collect()
}

#[tokio::test]
async fn a_listed_origin_gets_its_preflight_answered_with_credentials() {
    let app = spawn().await;
    let response = preflight(&app, APP_ORIGIN).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let expected = [
        ("access-control-allow-origin", APP_ORIGIN),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "GET, POST, PATCH, DELETE"),
        (
            "access-control-allow-headers",
            "Authorization, Content-Type, X-CSRF-Token",
        ),
        ("access-control-max-age", "600"),
        ("vary", "Origin"),
    ];
    for (name, value) in expected {
        assert_eq!(header(&response, name).as_deref(), Some(value), "{name}");
    }
    let answer = get_from(&app, APP_ORIGIN).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let origin = header(&answer, "access-control-allow-origin");
    assert_eq!(origin.as_deref(), Some(APP_ORIGIN));
    let credentials = header(&answer, "access-control-allow-credentials");
    assert_eq!(credentials.as_deref(), Some("true"));
    assert_eq!(header(&answer, "vary").as_deref(), Some("Origin"));
}

#[tokio::test]
async fn any_other_origin_gets_no_allow_header_on_a_preflight_or_an_answer() {
    let app = spawn().await;
    // Near misses of the listed origin count as other origins: the match is exact.
    let others = [
        OTHER_ORIGIN,
        "http://app.jwtd.test:8081",
        "https://app.jwtd.test:8080",
        "null",
    ];
    for origin in others {
        let response = preflight(&app, origin).await;
        assert!(
            allow_headers(&response).is_empty(),
            "{origin}: {response:?}"
        );
        assert_ne!(response.status(), StatusCode::NO_CONTENT, "{origin}");
        let answer = get_from(&app, origin).await;
        assert!(allow_headers(&answer).is_empty(), "{origin}: {answer:?}");
        assert_eq!(header(&answer, "vary").as_deref(), Some("Origin"));
    }
}

#[tokio::test]
async fn without_allowed_origins_jwtd_answers_no_cors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = preflight(&app, APP_ORIGIN).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(allow_headers(&response).is_empty());
    let answer = get_from(&app, APP_ORIGIN).await;
    assert!(allow_headers(&answer).is_empty());
    assert!(header(&answer, "vary").is_none());
}
