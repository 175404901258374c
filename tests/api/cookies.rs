//! The browser transport over HTTP: the cookies' exact attributes, every error of the cookie
//! endpoints (CSRF first, then the refresh cookie), the multi-tab grace under a burst, and CORS.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

use jwtd::Settings;
use jwtd::clock::Clock;
use jwtd_test_support::{
    Backend, PASSWORD, TestApp, claims_of, expect_error, expect_status, on_every_store,
    string_field,
};

on_every_store!(
    tabs_refreshing_at_once_share_one_successor_and_a_replay_after_the_grace_ends_the_session,
    a_refused_csrf_changes_nothing,
);

const LOGIN: &str = "/api/token/cookie/";
const REFRESH: &str = "/api/token/cookie/refresh/";
const LOGOUT: &str = "/api/token/cookie/logout/";
const APP_ORIGIN: &str = "http://app.jwtd.test:8080";
const TABS: usize = 8;

fn browser_transport(settings: &mut Settings) {
    settings.cookies.enabled = true;
    settings.cookies.secure = false;
    settings.cors.allowed_origins = vec![APP_ORIGIN.into()];
}

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, browser_transport).await
}

/// A browser's side of a session: what the page keeps and what its cookie jar keeps.
struct Browser {
    access: String,
    csrf: String,
    refresh_cookie: String,
    csrf_cookie: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        format!(
            "jwtd_refresh={}; jwtd_csrf={}",
            self.refresh_cookie, self.csrf_cookie
        )
    }
}

/// `name`'s value in the answer's `Set-Cookie` headers.
fn set_cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    set_cookies(headers).into_iter().find_map(|line| {
        let (pair, _) = line.split_once(';')?;
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

fn cleared_cookies() -> Vec<String> {
    let attributes = "Path=/api/token/cookie/; Max-Age=0; HttpOnly; SameSite=Strict";
    vec![
        format!("jwtd_refresh=; {attributes}"),
        format!("jwtd_csrf=; {attributes}"),
    ]
}

async fn cookie_login(app: &TestApp, username: &str) -> Browser {
    let body = json!({ "username": username, "password": PASSWORD });
    let response = app.post_json(LOGIN, &body).await;
    let headers = response.headers().clone();
    let body = expect_status(response, StatusCode::OK).await;
    browser_of(&headers, &body)
}

fn browser_of(headers: &HeaderMap, body: &Value) -> Browser {
    Browser {
        access: string_field(body, "access"),
        csrf: string_field(body, "csrf"),
        refresh_cookie: set_cookie_value(headers, "jwtd_refresh").expect("refresh cookie"),
        csrf_cookie: set_cookie_value(headers, "jwtd_csrf").expect("csrf cookie"),
    }
}

/// POST to a cookie endpoint with these cookies and this `X-CSRF-Token`.
async fn post_with(
    app: &TestApp,
    path: &str,
    cookies: Option<&str>,
    csrf: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(path));
    if let Some(cookies) = cookies {
        request = request.header("cookie", cookies);
    }
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    request.send().await.unwrap()
}

async fn refresh(app: &TestApp, browser: &Browser) -> reqwest::Response {
    let cookies = browser.cookie_header();
    post_with(app, REFRESH, Some(&cookies), Some(&browser.csrf)).await
}

async fn expect_cleared_401(response: reqwest::Response, detail: &str) {
    assert_eq!(set_cookies(response.headers()), cleared_cookies());
    expect_error(
        response,
        StatusCode::UNAUTHORIZED,
        "token_not_valid",
        detail,
    )
    .await;
}

async fn expect_csrf_failed(response: reqwest::Response) {
    let cookies = set_cookies(response.headers());
    assert!(cookies.is_empty(), "{} {cookies:?}", response.status());
    let detail =
        "CSRF check failed: send the X-CSRF-Token header with the value of the csrf field.";
    expect_error(response, StatusCode::FORBIDDEN, "csrf_failed", detail).await;
}

#[tokio::test]
async fn login_sets_exactly_the_two_cookies_and_answers_no_refresh_token() {
    for secure in [true, false] {
        let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
            browser_transport(settings);
            settings.cookies.secure = secure;
        })
        .await;
        let user = app.create_user().await;
        let body = json!({ "username": user.username, "password": PASSWORD });
        let response = app.post_json(LOGIN, &body).await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        let cookies = set_cookies(response.headers());
        let body = expect_status(response, StatusCode::OK).await;
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["access", "access_expires_at", "csrf"]);
        let now = app.clock.now().secs().0;
        assert_eq!(body["access_expires_at"], now + 300);
        assert_eq!(
            claims_of(&string_field(&body, "access"))["token_type"],
            "access"
        );
        let csrf = string_field(&body, "csrf");
        assert_eq!(csrf.len(), 64, "two v4 UUIDs in hex");
        let (prefix, secure_flag) = if secure {
            ("__Secure-", "; Secure")
        } else {
            ("", "")
        };
        let refresh = cookies[0]
            .strip_prefix(&format!("{prefix}jwtd_refresh="))
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        assert_eq!(claims_of(refresh)["token_type"], "refresh");
        let attributes = format!(
            "Path=/api/token/cookie/; Max-Age=86400; HttpOnly{secure_flag}; SameSite=Strict"
        );
        assert_eq!(
            cookies,
            [
                format!("{prefix}jwtd_refresh={refresh}; {attributes}"),
                format!("{prefix}jwtd_csrf={csrf}; {attributes}"),
            ]
        );
        // The refresh token is never in a body.
        assert!(!body.to_string().contains(refresh));
    }
}

#[tokio::test]
async fn refresh_rotates_the_cookie_keeps_the_csrf_and_the_cookie_lives_as_long_as_its_token() {
    let app = spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let first = cookie_login(&app, &user.username).await;
    app.clock.advance(Duration::from_secs(3600));
    let response = refresh(&app, &first).await;
    let headers = response.headers().clone();
    let body = expect_status(response, StatusCode::OK).await;
    let second = browser_of(&headers, &body);
    assert_ne!(second.refresh_cookie, first.refresh_cookie);
    assert_eq!(
        (&second.csrf, &second.csrf_cookie),
        (&first.csrf, &first.csrf)
    );
    assert!(!body.to_string().contains(&second.refresh_cookie));
    let max_age = "Max-Age=86400;";
    assert!(
        set_cookies(&headers).iter().all(|c| c.contains(max_age)),
        "{headers:?}"
    );
    let me = app.get_authed("/api/users/me/", &second.access).await;
    assert_eq!(
        expect_status(me, StatusCode::OK).await["username"],
        user.username
    );
    // The spent cookie, past the grace, is reuse: the session ends.
    app.clock.advance(Duration::from_secs(11));
    expect_cleared_401(refresh(&app, &first).await, "Token is blacklisted").await;
    expect_cleared_401(refresh(&app, &second).await, "Token is blacklisted").await;
}

#[tokio::test]
async fn every_cookie_error_is_its_contract_answer() {
    let app = spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let browser = cookie_login(&app, &user.username).await;
    // No refresh cookie (the CSRF pair is right): 401, cookies cleared.
    let csrf_only = format!("jwtd_csrf={}", browser.csrf);
    let missing = post_with(&app, REFRESH, Some(&csrf_only), Some(&browser.csrf)).await;
    expect_cleared_401(missing, "No refresh cookie was sent: log in again.").await;
    let missing = post_with(&app, LOGOUT, Some(&csrf_only), Some(&browser.csrf)).await;
    expect_cleared_401(missing, "No refresh cookie was sent: log in again.").await;
    // A cookie that is not a token, or the access token in its place.
    for bad in ["garbage", browser.access.as_str()] {
        let cookies = format!("jwtd_refresh={bad}; {csrf_only}");
        let response = post_with(&app, REFRESH, Some(&cookies), Some(&browser.csrf)).await;
        let detail = if bad == "garbage" {
            "Token is invalid"
        } else {
            "Token has wrong type"
        };
        expect_cleared_401(response, detail).await;
    }
    // Expired: past the refresh token's life.
    app.clock.advance(Duration::from_secs(86_401));
    expect_cleared_401(refresh(&app, &browser).await, "Token is expired").await;
}

#[tokio::test]
async fn a_blacklisted_or_logged_out_cookie_is_refused_and_cleared() {
    let app = spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let blacklisted = cookie_login(&app, &user.username).await;
    let body = json!({ "refresh": blacklisted.refresh_cookie });
    expect_status(
        app.post_json("/api/token/blacklist/", &body).await,
        StatusCode::OK,
    )
    .await;
    expect_cleared_401(refresh(&app, &blacklisted).await, "Token is blacklisted").await;

    let browser = cookie_login(&app, &user.username).await;
    let cookies = browser.cookie_header();
    let logout = post_with(&app, LOGOUT, Some(&cookies), Some(&browser.csrf)).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(set_cookies(logout.headers()), cleared_cookies());
    let me = app.get_authed("/api/users/me/", &browser.access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    expect_cleared_401(refresh(&app, &browser).await, "Token is blacklisted").await;
    let again = post_with(&app, LOGOUT, Some(&cookies), Some(&browser.csrf)).await;
    expect_cleared_401(again, "Token is blacklisted").await;
}

#[tokio::test]
async fn with_the_cookie_transport_off_its_endpoints_are_not_found() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let body = json!({ "username": user.username, "password": PASSWORD });
    let login = app.post_json(LOGIN, &body).await;
    assert!(set_cookies(login.headers()).is_empty());
    expect_error(login, StatusCode::NOT_FOUND, "not_found", "Not found.").await;
    for path in [REFRESH, LOGOUT] {
        let response = post_with(&app, path, Some("jwtd_csrf=x"), Some("x")).await;
        expect_error(response, StatusCode::NOT_FOUND, "not_found", "Not found.").await;
    }
    // Before anything reads the request: a malformed body, without the trailing slash, too.
    let malformed = app
        .post_raw("/api/token/cookie", "application/json", "{")
        .await;
    expect_error(malformed, StatusCode::NOT_FOUND, "not_found", "Not found.").await;
}

async fn a_refused_csrf_changes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let user = app.create_user().await;
    let browser = cookie_login(&app, &user.username).await;
    let refresh_only = format!("jwtd_refresh={}", browser.refresh_cookie);
    let both = browser.cookie_header();
    // One character off, at the end: the slowest guess for a comparison that stops early.
    let last = if browser.csrf.ends_with('0') {
        '1'
    } else {
        '0'
    };
    let wrong = format!("{}{last}", &browser.csrf[..63]);
    let refused: [(Option<&str>, Option<&str>); 5] = [
        (Some(&both), None),                        // a cross-site form: no header
        (Some(&both), Some(&wrong)),                // a guess
        (Some(&both), Some("")),                    // empty
        (Some(&refresh_only), Some(&browser.csrf)), // no CSRF cookie
        (None, Some(&browser.csrf)),                // no cookies at all
    ];
    for path in [REFRESH, LOGOUT] {
        for (cookies, csrf) in refused {
            expect_csrf_failed(post_with(&app, path, cookies, csrf).await).await;
        }
    }
    // Nothing was spent or revoked: the session refreshes as if nothing happened.
    let response = refresh(&app, &browser).await;
    expect_status(response, StatusCode::OK).await;
}

async fn tabs_refreshing_at_once_share_one_successor_and_a_replay_after_the_grace_ends_the_session(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let user = app.create_user().await;
    let browser = cookie_login(&app, &user.username).await;
    let tabs = (0..TABS).map(|_| {
        let request = app
            .client
            .post(app.url(REFRESH))
            .header("cookie", browser.cookie_header())
            .header("x-csrf-token", browser.csrf.clone());
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let cookie = set_cookie_value(response.headers(), "jwtd_refresh");
            (response.status(), cookie)
        })
    });
    let answers: Vec<_> = futures::future::join_all(tabs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        answers.iter().all(|(status, _)| *status == StatusCode::OK),
        "{answers:?}"
    );
    let successor = answers[0].1.clone().unwrap();
    assert!(
        answers
            .iter()
            .all(|(_, cookie)| cookie.as_deref() == Some(&successor))
    );
    let original = browser.cookie_header();
    let tab = Browser {
        refresh_cookie: successor,
        ..browser
    };
    let refreshed = expect_status(refresh(&app, &tab).await, StatusCode::OK).await;
    let access = string_field(&refreshed, "access");
    // A copy of the first cookie replayed after the grace: reuse ends the session, so every
    // tab's access token and cookie stop working.
    app.clock.advance(Duration::from_secs(10));
    let replay = post_with(&app, REFRESH, Some(&original), Some(&tab.csrf)).await;
    expect_cleared_401(replay, "Token is blacklisted").await;
    let me = app.get_authed("/api/users/me/", &access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_csrf_header_that_is_not_text_is_a_failed_csrf_check() {
    let app = spawn(Backend::Sqlite).await;
    let header = reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap();
    let response = (app.client.post(app.url(REFRESH)))
        .header("cookie", "jwtd_csrf=x; jwtd_refresh=y")
        .header("x-csrf-token", header)
        .send()
        .await
        .unwrap();
    expect_csrf_failed(response).await;
}

/// The cookie login takes JSON only: a cross-site HTML form (form data, no preflight) cannot log
/// a browser into an account of the attacker's choosing. Refused with 415, and no cookie is set.
#[tokio::test]
async fn the_cookie_login_refuses_form_data_and_sets_no_cookie() {
    let app = spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let form = [("username", user.username.as_str()), ("password", PASSWORD)];
    let response = app
        .client
        .post(app.url(LOGIN))
        .header("origin", "http://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(set_cookies(response.headers()).is_empty());
    let body = expect_status(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(body["code"], "unsupported_media_type");
    assert!(
        app.state
            .flows
            .revocation
            .sessions_of(user.id)
            .await
            .unwrap()
            .is_empty(),
        "no session started"
    );
}
