//! Registration under load: the per-address throttle, taken names and emails refused before any
//! hashing, and logins that a flood of registrations cannot starve of hashing slots. Bursts are
//! written at once; the flood comes from many addresses through a trusted proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jwtd::Settings;
use jwtd::password::HashPurpose;
use reqwest::StatusCode;
use serde_json::{Value, json};

use jwtd_test_support::{
    Backend, PASSWORD, TestApp, expect_status, expect_throttled, on_every_store,
};

on_every_store!(
    a_burst_from_one_address_gets_its_allowance_then_429,
    a_burst_for_a_taken_name_or_email_is_refused_without_hashing
);

const LIMIT: u32 = 10;

fn behind_a_proxy(settings: &mut Settings) {
    settings.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
}

/// A registration from `client`, as the trusted proxy on 127.0.0.1 forwards it.
fn register_from(
    app: &TestApp,
    client: &str,
    body: Value,
) -> impl Future<Output = reqwest::Response> + Send + 'static {
    let request = app
        .client
        .post(app.url("/api/users/"))
        .header("X-Forwarded-For", client)
        .json(&body);
    async move { request.send().await.unwrap() }
}

fn newcomer(n: usize) -> Value {
    json!({"username": format!("newcomer-{n}"), "password": PASSWORD})
}

fn new_password_hashes(app: &TestApp) -> u64 {
    app.state.passwords.asked(HashPurpose::NewPassword)
}

async fn a_burst_from_one_address_gets_its_allowance_then_429(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        behind_a_proxy(settings);
        settings.throttle.registrations_per_address = LIMIT;
        settings.throttle.registration_window = Duration::from_secs(3600);
    })
    .await;
    app.create_named_user("taken", PASSWORD).await;
    let hashes_before = new_password_hashes(&app);
    // Every fifth one asks for the taken name: a 400 counts against the address too.
    let burst = (0..15).map(|n| {
        let body = match n % 5 {
            0 => json!({"username": "taken", "password": PASSWORD}),
            _ => newcomer(n),
        };
        register_from(&app, "198.51.100.7", body)
    });
    let (mut created, mut refused, mut throttled) = (0, 0, 0);
    for response in futures::future::join_all(burst).await {
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::BAD_REQUEST => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                throttled += 1;
                expect_throttled(response, 3600).await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created + refused, throttled), (LIMIT, 5));
    // Only the created ones were hashed.
    assert_eq!(
        new_password_hashes(&app) - hashes_before,
        u64::from(created)
    );

    // Another address has its own allowance; the first one stays refused.
    let other = register_from(&app, "198.51.100.8", newcomer(100)).await;
    expect_status(other, StatusCode::CREATED).await;
    let again = register_from(&app, "198.51.100.7", newcomer(101)).await;
    expect_throttled(again, 3600).await;
    if backend == Backend::Redis {
        return; // Redis expires the counter on its own clock; the SQL stores read the test's.
    }
    app.clock.advance(Duration::from_secs(3601));
    let later = register_from(&app, "198.51.100.7", newcomer(102)).await;
    expect_status(later, StatusCode::CREATED).await;
}

#[tokio::test]
async fn a_limit_of_0_turns_the_registration_throttle_off() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        behind_a_proxy(settings);
        settings.throttle.registrations_per_address = 0;
    })
    .await;
    let burst = (0..LIMIT as usize + 5).map(|n| register_from(&app, "198.51.100.9", newcomer(n)));
    for response in futures::future::join_all(burst).await {
        expect_status(response, StatusCode::CREATED).await;
    }
}

async fn a_burst_for_a_taken_name_or_email_is_refused_without_hashing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        // One slot, and no patience: a registration that hashed would mostly get 503.
        settings.password.max_concurrent_hashes = 1;
        settings.password.hash_queue_timeout = Duration::from_millis(1);
    })
    .await;
    let first = json!({"username": "Taken", "email": "taken@example.com", "password": PASSWORD});
    expect_status(app.register(&first).await, StatusCode::CREATED).await;
    let hashes_before = new_password_hashes(&app);
    let taken = |n: usize| -> (Value, &'static [&'static str]) {
        let fresh_email = format!("fresh-{n}@example.com");
        match n % 4 {
            0 => (
                json!({"username": "taken", "email": fresh_email, "password": PASSWORD}),
                &["username"],
            ),
            1 => (
                json!({"username": "ＴＡＫＥＮ", "password": PASSWORD}),
                &["username"],
            ),
            2 => (
                json!({"username": format!("fresh-{n}"), "email": "TAKEN@example.com", "password": PASSWORD}),
                &["email"],
            ),
            _ => (
                json!({"username": "TAKEN", "email": "Taken@Example.com", "password": PASSWORD}),
                &["email", "username"],
            ),
        }
    };
    let cases: Vec<_> = (0..40).map(taken).collect();
    let burst = cases.iter().map(|(body, _)| app.register(body));
    for (response, (body, fields)) in futures::future::join_all(burst)
        .await
        .into_iter()
        .zip(&cases)
    {
        let answer = expect_status(response, StatusCode::BAD_REQUEST).await;
        let named: Vec<&String> = answer["fields"].as_object().unwrap().keys().collect();
        assert_eq!(named, *fields, "{body} → {answer}");
        for field in *fields {
            let message = &answer["fields"][field][0];
            assert_eq!(
                message.as_str().unwrap(),
                format!("A user with that {field} already exists."),
                "{answer}"
            );
        }
    }
    assert_eq!(
        new_password_hashes(&app),
        hashes_before,
        "a taken name was hashed"
    );
}

/// Registrations of new names, each from its own address so that the address throttle lets
/// them all through, saturate the hashing slots; a login sent once they have all queued.
const FLOOD: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_beside_a_registration_flood_waits_for_at_most_a_few_of_them_on_one_slot() {
    a_login_beside_a_registration_flood_is_not_starved(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_beside_a_registration_flood_waits_for_at_most_a_few_of_them_on_two_slots() {
    a_login_beside_a_registration_flood_is_not_starved(2).await;
}

/// Counted in registrations answered, not in time: the login must be answered before most of
/// the registrations that had queued ahead of it. First come, first served, it would be answered
/// after all of them.
async fn a_login_beside_a_registration_flood_is_not_starved(slots: usize) {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        behind_a_proxy(settings);
        settings.password.max_concurrent_hashes = slots;
        // Hashes slow next to the rest of a request, so the whole flood asks for its hashes
        // before many of them are done, even on a loaded machine.
        settings.password.argon2.iterations = 8;
    })
    .await;
    let user = app.create_user().await;
    let hashes_before = new_password_hashes(&app);
    let answered = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..FLOOD)
        .map(|n| {
            let registration = register_from(&app, &format!("203.0.113.{n}"), newcomer(n));
            let answered = Arc::clone(&answered);
            tokio::spawn(async move {
                let status = registration.await.status();
                answered.fetch_add(1, Ordering::SeqCst);
                status
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while new_password_hashes(&app) - hashes_before < FLOOD as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flood never queued"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let answered_before = answered.load(Ordering::SeqCst);
    let login = json!({"username": user.username, "password": PASSWORD});
    let response = app.post_json("/api/token/", &login).await;
    let answered_during = answered.load(Ordering::SeqCst) - answered_before;
    expect_status(response, StatusCode::OK).await;
    let queued_ahead = FLOOD - answered_before;
    assert!(
        queued_ahead >= FLOOD / 2,
        "only {queued_ahead} registrations were still waiting: the flood did not saturate hashing"
    );
    // At most one new-password hash runs ahead of or beside the login; a few more answers may
    // arrive while the login's own SQL runs on a loaded machine.
    assert!(
        answered_during <= queued_ahead / 4,
        "the login waited for {answered_during} of the {queued_ahead} registrations ahead of it"
    );
    for registration in flood {
        assert_eq!(registration.await.unwrap(), StatusCode::CREATED);
    }
}
