//! Activation and password reset through a real SMTP server (aiosmtpd, see
//! `jwtd_test_support::smtp`): the test reads what the server received, follows the link and
//! finishes the flow over HTTP. Single use and the limits are checked with bursts sent at once,
//! on every store; the outbox's retries with the server down, and exactly-once delivery with two
//! instances sending, with the injected clock moving through the back-off.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jwtd::Settings;
use jwtd::accounts::User;
use jwtd::clock::Clock;
use jwtd::config::EmailBackend;
use jwtd::store::outbox::NewMail;
use jwtd::store::users::{AdminChange, NewUser};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use jwtd_test_support::{
    Backend, PASSWORD, SmtpServer, TestApp, expect_error, expect_status, expect_throttled, link_in,
    on_every_store,
};

on_every_store!(
    activation_lets_the_user_in_and_its_link_works_once,
    a_reset_link_sets_the_password_once_and_revokes_every_token,
    unknown_addresses_get_the_same_204_and_one_address_gets_its_limit,
    a_burst_from_one_client_gets_its_allowance_then_429,
    mail_queued_while_smtp_is_down_is_delivered_once_by_two_instances
);

const ACTIVATE: &str = "http://front.test/activate/";
const RESET: &str = "http://front.test/reset/";
const NEW_PASSWORD: &str = "a brand new passphrase";
/// The back-off after a failed delivery (the test moves the clock past it).
const BACKOFF: Duration = Duration::from_secs(2);

/// Mail through `smtp`, looked for every 20 ms, links to the test's front end.
fn mail_through(settings: &mut Settings, smtp: &SmtpServer) {
    let email = &mut settings.email;
    email.backend = EmailBackend::Smtp;
    email.smtp_url = smtp.url().into();
    email.activation_url = format!("{ACTIVATE}{{uid}}/{{token}}");
    email.password_reset_url = format!("{RESET}{{uid}}/{{token}}");
    email.poll_interval = Duration::from_millis(20);
    email.smtp_timeout = Duration::from_secs(5);
    email.retry_backoff = BACKOFF;
    email.retry_backoff_max = BACKOFF;
    email.requests_per_client = 10_000;
}

async fn spawn(backend: Backend, smtp: &SmtpServer, more: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::spawn_with(backend, |settings| {
        mail_through(settings, smtp);
        more(settings);
    })
    .await
}

/// An active user `name` with the address `name@example.com` and [`PASSWORD`].
async fn user_with_email(app: &TestApp, name: &str) -> User {
    let password_hash = app.state.passwords.hash(PASSWORD.into()).await.unwrap();
    let new = NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        password_hash,
        is_staff: false,
    };
    app.state
        .users
        .create(new, chrono::Utc::now())
        .await
        .unwrap()
}

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    let body = json!({"username": username, "password": password});
    app.post_json("/api/token/", &body).await
}

/// Sends every body to `path` at once; the statuses, in order.
async fn burst(app: &TestApp, path: &str, bodies: Vec<Value>) -> Vec<reqwest::Response> {
    let requests = bodies.into_iter().map(|body| {
        let request = app.client.post(app.url(path)).json(&body);
        async move { request.send().await.unwrap() }
    });
    futures::future::join_all(requests).await
}

/// Of a burst's answers: one 204, and 400 `invalid_token` for every other.
async fn expect_one_success(responses: Vec<reqwest::Response>) {
    let mut done = 0;
    for response in responses {
        if response.status() == StatusCode::NO_CONTENT {
            done += 1;
        } else {
            expect_invalid_token(response).await;
        }
    }
    assert_eq!(done, 1, "exactly one use of the link succeeds");
}

async fn expect_invalid_token(response: reqwest::Response) {
    let detail = "Invalid token for given user.";
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_token", detail).await;
}

/// Waits until `handled` address requests were handled and the outbox is empty (every mail
/// queued by them sent): what the SMTP server has then is all it will get.
async fn drained(app: &TestApp, handled: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let email = &app.state.email;
        if email.requests_handled() >= handled && email.outbox.all().await.unwrap().is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the outbox did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn activation_lets_the_user_in_and_its_link_works_once(backend: Backend) {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let app = spawn(backend, &smtp, |s| s.users.require_activation = true).await;
    let no_email = json!({"username": "nomail", "password": PASSWORD});
    let refused = expect_status(app.register(&no_email).await, StatusCode::BAD_REQUEST).await;
    assert!(refused["fields"]["email"].is_array(), "{refused}");

    let alice = json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD});
    let created = expect_status(app.register(&alice).await, StatusCode::CREATED).await;
    assert_eq!(created["is_active"], false);
    let refused = login(&app, "alice", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let mail = &smtp.wait_for(1).await[0];
    // Asked again while awaiting activation: a second mail.
    let resend = json!({"email": "alice@example.com"});
    let answer = app
        .post_json("/api/users/resend_activation/", &resend)
        .await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    smtp.wait_for(2).await;
    assert_eq!(mail["rcpt_tos"], json!(["alice@example.com"]));
    assert_eq!(mail["subject"], "Activate your account");
    assert_eq!(mail["content_type"], "multipart/alternative");
    assert!(mail["text"].as_str().unwrap().contains("Hello alice"));
    let (uid, token) = link_in(mail, ACTIVATE);
    let link = format!("{ACTIVATE}{uid}/{token}");
    assert!(mail["html"].as_str().unwrap().contains(&link), "{mail}");

    let uses = vec![json!({"uid": uid, "token": token}); 8];
    expect_one_success(burst(&app, "/api/users/activation/", uses).await).await;
    let again = json!({"uid": uid, "token": token});
    expect_invalid_token(app.post_json("/api/users/activation/", &again).await).await;
    expect_status(login(&app, "alice", PASSWORD).await, StatusCode::OK).await;
    // An active user asking for activation again gets the same 204 and no mail.
    let answer = app
        .post_json("/api/users/resend_activation/", &resend)
        .await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    drained(&app, 2).await;
    assert_eq!(smtp.messages().len(), 2);

    // Deactivated by staff: neither a new mail nor the old link activates the user again.
    let id = jwtd::email::decode_uid(&uid).unwrap();
    let deactivate = AdminChange {
        is_active: Some(false),
        ..Default::default()
    };
    app.state
        .accounts
        .admin_update(id, deactivate)
        .await
        .unwrap();
    let answer = app
        .post_json("/api/users/resend_activation/", &resend)
        .await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    expect_invalid_token(app.post_json("/api/users/activation/", &again).await).await;
    drained(&app, 3).await;
    assert_eq!(smtp.messages().len(), 2);

    // Activated by staff instead, then deactivated: no activation mail either.
    let bert = json!({"username": "bert", "email": "bert@example.com", "password": PASSWORD});
    let created = expect_status(app.register(&bert).await, StatusCode::CREATED).await;
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    for is_active in [true, false] {
        let change = AdminChange {
            is_active: Some(is_active),
            ..Default::default()
        };
        app.state.accounts.admin_update(id, change).await.unwrap();
    }
    let resend = json!({"email": "bert@example.com"});
    let answer = app
        .post_json("/api/users/resend_activation/", &resend)
        .await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    drained(&app, 4).await;
    assert_eq!(smtp.messages().len(), 3, "bert's registration mail only");
}

async fn a_reset_link_sets_the_password_once_and_revokes_every_token(backend: Backend) {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let app = spawn(backend, &smtp, |_| {}).await;
    let bob = user_with_email(&app, "bob").await;
    let (access, refresh) = app.login(&bob).await;
    // Addresses compare ignoring case, as the unique index does.
    let asked = json!({"email": "BOB@example.com"});
    let answer = app.post_json("/api/users/reset_password/", &asked).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let mail = &smtp.wait_for(1).await[0];
    assert_eq!(mail["rcpt_tos"], json!(["bob@example.com"]));
    assert_eq!(mail["subject"], "Reset your password");
    let (uid, token) = link_in(mail, RESET);

    // A weak password is refused and leaves the link usable.
    let weak = json!({"uid": uid, "token": token, "new_password": "bob"});
    let refused = app
        .post_json("/api/users/reset_password_confirm/", &weak)
        .await;
    let body = expect_status(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "invalid");
    assert!(body["fields"]["new_password"].is_array(), "{body}");

    let confirm = json!({"uid": uid, "token": token, "new_password": NEW_PASSWORD});
    let uses = vec![confirm.clone(); 6];
    expect_one_success(burst(&app, "/api/users/reset_password_confirm/", uses).await).await;
    let again = app
        .post_json("/api/users/reset_password_confirm/", &confirm)
        .await;
    expect_invalid_token(again).await;

    let me = app.get_authed("/api/users/me/", &access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "bob", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    expect_status(login(&app, "bob", NEW_PASSWORD).await, StatusCode::OK).await;
}

async fn unknown_addresses_get_the_same_204_and_one_address_gets_its_limit(backend: Backend) {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let app = spawn(backend, &smtp, |s| s.email.mails_per_address = 3).await;
    user_with_email(&app, "carol").await;
    for (path, email) in [
        ("/api/users/reset_password/", "nobody@example.com"),
        ("/api/users/resend_activation/", "nobody@example.com"),
        // An active user: no activation mail.
        ("/api/users/resend_activation/", "carol@example.com"),
    ] {
        let answer = app.post_json(path, &json!({ "email": email })).await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT, "{path} {email}");
        assert_eq!(answer.text().await.unwrap(), "");
    }
    drained(&app, 3).await;
    assert_eq!(smtp.messages().len(), 0);

    let asks = vec![json!({"email": "carol@example.com"}); 10];
    for answer in burst(&app, "/api/users/reset_password/", asks).await {
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    }
    drained(&app, 13).await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 3, "the address's limit");
    for message in &messages {
        assert_eq!(message["rcpt_tos"], json!(["carol@example.com"]));
    }
}

async fn a_burst_from_one_client_gets_its_allowance_then_429(backend: Backend) {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let app = spawn(backend, &smtp, |s| {
        s.email.requests_per_client = 5;
        s.email.request_window = Duration::from_secs(3600);
    })
    .await;
    let asks = (0..8)
        .map(|n| json!({"email": format!("someone-{n}@example.com")}))
        .collect();
    let (mut answered, mut throttled) = (0, 0);
    for answer in burst(&app, "/api/users/reset_password/", asks).await {
        if answer.status() == StatusCode::NO_CONTENT {
            answered += 1;
        } else {
            expect_throttled(answer, 3600).await;
            throttled += 1;
        }
    }
    assert_eq!((answered, throttled), (5, 3));
    let malformed = json!({"email": "not an address"});
    let answer = app
        .post_json("/api/users/resend_activation/", &malformed)
        .await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
}

async fn mail_queued_while_smtp_is_down_is_delivered_once_by_two_instances(backend: Backend) {
    let Some(mut smtp) = SmtpServer::start() else {
        return;
    };
    let app = spawn(backend, &smtp, |_| {}).await;
    let sibling = app.spawn_sibling().await;
    smtp.stop();
    let mut users = Vec::new();
    for n in 0..8 {
        users.push(user_with_email(&app, &format!("user{n}")).await.email);
    }
    let started = Instant::now();
    let first = json!({"email": users[0]});
    let answer = app.post_json("/api/users/reset_password/", &first).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );
    wait_for_a_failed_attempt(&app, &sibling).await;

    // More mail through both instances while the server is still down.
    for (n, email) in users.iter().enumerate().skip(1) {
        let instance = if n % 2 == 0 { &app } else { &sibling };
        let answer = instance
            .post_json("/api/users/reset_password/", &json!({ "email": email }))
            .await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    }
    smtp.restart();
    app.clock.advance(BACKOFF * 2);
    sibling.clock.advance(BACKOFF * 2);
    smtp.wait_for(users.len()).await;
    drained(&app, 4).await;
    drained(&sibling, 4).await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), users.len(), "each mail exactly once");
    let recipients: BTreeSet<String> = messages
        .iter()
        .map(|m| m["rcpt_tos"][0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recipients, users.iter().cloned().collect());
    let sent = app.state.metrics.emails_sent() + sibling.state.metrics.emails_sent();
    assert_eq!(sent, 8);
}

/// Waits until a delivery has failed (the server is down): the row says so, and an instance's
/// metrics count the failure and the mail that waits.
async fn wait_for_a_failed_attempt(app: &TestApp, sibling: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = app.state.email.outbox.all().await.unwrap();
        let failed_row = rows.iter().any(|row| row.attempts >= 1);
        let mut counted = false;
        for instance in [app, sibling] {
            let text = instance.get("/metrics").await.text().await.unwrap();
            let has = |line: &str| text.lines().any(|l| l == line);
            counted |=
                has(r#"jwtd_email_failed_total{reason="retry"} 1"#) && has("jwtd_email_queued 1");
        }
        if failed_row && counted {
            return;
        }
        assert!(Instant::now() < deadline, "no failed delivery: {rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_expired_or_forged_link_is_refused() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let app = spawn(Backend::Sqlite, &smtp, |_| {}).await;
    user_with_email(&app, "dave").await;
    let asked = json!({"email": "dave@example.com"});
    app.post_json("/api/users/reset_password/", &asked).await;
    let (uid, token) = link_in(&smtp.wait_for(1).await[0], RESET);
    let confirm =
        |uid: &str, token: &str| json!({"uid": uid, "token": token, "new_password": NEW_PASSWORD});
    for (bad_uid, bad_token) in [
        ("not-base64!", token.as_str()),
        ("bm90LWEtdXVpZA", token.as_str()),
        (uid.as_str(), "0-AAAA"),
        (uid.as_str(), "garbage"),
    ] {
        let answer = app
            .post_json(
                "/api/users/reset_password_confirm/",
                &confirm(bad_uid, bad_token),
            )
            .await;
        expect_invalid_token(answer).await;
    }
    let activation = json!({"uid": uid, "token": token});
    let wrong_purpose = app.post_json("/api/users/activation/", &activation).await;
    expect_invalid_token(wrong_purpose).await;
    app.clock.advance(Duration::from_secs(3601));
    let expired = app
        .post_json("/api/users/reset_password_confirm/", &confirm(&uid, &token))
        .await;
    expect_invalid_token(expired).await;
    let missing = app
        .post_json("/api/users/reset_password_confirm/", &json!({"uid": uid}))
        .await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
}

on_every_store!(senders_claiming_at_once_never_share_a_mail);

/// The outbox's claim on its own: many senders claiming the same due mails at once get disjoint
/// sets that cover them all (one conditional update per row decides).
async fn senders_claiming_at_once_never_share_a_mail(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let outbox = app.state.email.outbox.clone();
    // Due only later than the app's clock says: its own sender leaves them to the claims below.
    let now = app.clock.now() + Duration::from_secs(60);
    for n in 0..40 {
        let mail = NewMail {
            kind: "password_reset",
            recipient: format!("user{n}@example.com"),
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
        };
        outbox.enqueue(mail, now).await.unwrap();
    }
    let claims = (0..8).map(|_| {
        let outbox = outbox.clone();
        let until = now + Duration::from_secs(60);
        tokio::spawn(async move { outbox.claim_due(Uuid::new_v4(), now, until, 40).await })
    });
    let mut claimed = Vec::new();
    for result in futures::future::join_all(claims).await {
        claimed.extend(result.unwrap().unwrap().into_iter().map(|mail| mail.id));
    }
    let distinct: BTreeSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!((claimed.len(), distinct.len()), (40, 40));
    // Claimed, so nobody else gets them until the claim ends.
    let later = outbox
        .claim_due(Uuid::new_v4(), now, now, 40)
        .await
        .unwrap();
    assert!(later.is_empty());
}

/// Known and unknown addresses answered in about the same time: sent in alternation, the
/// medians stay within a few milliseconds of each other (the request path does the same work
/// for both; a lookup, a hash or an SMTP exchange on it for one of them would show).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_and_unknown_addresses_are_answered_in_about_the_same_time() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let app = spawn(Backend::Sqlite, &smtp, |s| s.email.mails_per_address = 1000).await;
    user_with_email(&app, "frank").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for n in 0..40 {
        let (email, times) = match n % 2 {
            0 => ("frank@example.com".to_owned(), &mut known),
            _ => (format!("nobody-{n}@example.com"), &mut unknown),
        };
        let started = Instant::now();
        let answer = app
            .post_json("/api/users/reset_password/", &json!({ "email": email }))
            .await;
        times.push(started.elapsed());
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    eprintln!("reset_password medians: known {known:?}, unknown {unknown:?}");
    let gap = known.abs_diff(unknown);
    assert!(
        gap < Duration::from_millis(5),
        "known {known:?}, unknown {unknown:?}"
    );
    drained(&app, 40).await;
    assert_eq!(smtp.messages().len(), 20);
}

/// With the store of the throttling counters (here Redis) down, an address request fails closed
/// with 503 and queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_counter_cannot_be_kept_is_503_and_queues_nothing() {
    let mut redis = jwtd_test_support::RedisServer::start(None);
    let app = TestApp::spawn_on_redis(&redis).await;
    user_with_email(&app, "gina").await;
    redis.stop();
    for path in [
        "/api/users/reset_password/",
        "/api/users/resend_activation/",
    ] {
        let answer = app
            .post_json(path, &json!({"email": "gina@example.com"}))
            .await;
        let body = expect_status(answer, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(body["code"], "unavailable", "{body}");
    }
    assert_eq!(app.state.email.requests_handled(), 0);
    assert!(app.state.email.outbox.all().await.unwrap().is_empty());
}
