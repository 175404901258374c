//! A closed-loop HTTP load generator for jwtd's scenarios: `connections` workers each send one
//! request at a time for `duration`, after a warm-up, and the figures are printed as one JSON line.
//! Written here (on reqwest / hyper) because a refresh with rotation needs each worker to chain
//! the refresh token it was just given, which wrk's per-thread scripts cannot do per connection.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// POST /api/token/verify/ with an access token.
    Verify,
    /// POST /api/token/refresh/, each worker chaining its own rotated refresh token.
    Refresh,
    /// POST /api/token/cookie/refresh/, each worker a browser: its own session's cookies and
    /// CSRF header (run jwtd with `cookies.enabled` and, over plain HTTP, `cookies.secure = false`).
    CookieRefresh,
    /// POST /api/token/ with a username and password (argon2).
    Obtain,
    /// POST /api/users/ with a new username (argon2), from a new address each time.
    Register,
    /// GET /api/users/me/ with a bearer access token.
    Me,
    /// Verify while `--background-connections` workers keep logging in.
    VerifyUnderObtain,
    /// Obtain while `--background-connections` workers keep registering new users, each
    /// registration from an address of its own in `X-Forwarded-For` (run jwtd with
    /// `server.trusted_proxies` on loopback), so the per-address limit lets them all through.
    ObtainUnderRegistration,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Workers logging in during `verify-under-obtain`, registering during
    /// `obtain-under-registration`.
    #[arg(long, default_value_t = 8)]
    background_connections: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    #[arg(long, default_value = "alice")]
    username: String,
    #[arg(long, default_value = "correct horse battery staple")]
    password: String,
    /// A name for the output row.
    #[arg(long)]
    label: Option<String>,
    /// Use this as the access token instead of logging in (for the baseline server).
    #[arg(long)]
    token: Option<String>,
    /// Only keep this many verifiers long-polling the revocation feed (`GET /api/revocations/`,
    /// `wait=2`, as a `jwtd-verifier` with the default 5 s staleness budget does) for `duration`,
    /// as OAuth client `--feed-client ID:SECRET` with the scope `revocations:read`; no other
    /// load. Run beside wrk to measure what the feed costs.
    #[arg(long, requires = "feed_client")]
    feed_pollers: Option<usize>,
    #[arg(long)]
    feed_client: Option<String>,
}

/// What one worker saw in the measured window.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = Client::builder()
        .pool_max_idle_per_host(args.connections + args.background_connections)
        .build()
        .expect("an HTTP client");
    if let (Some(pollers), Some(credentials)) = (args.feed_pollers, &args.feed_client) {
        let polls = follow_feed(&client, &args, pollers, credentials).await;
        println!(
            "{}",
            json!({"feed_pollers": pollers, "polls": polls.0, "errors": polls.1})
        );
        return;
    }
    let access_tokens = match &args.token {
        Some(token) => vec![token.clone()],
        None => access_tokens(&client, &args)
            .await
            .expect("the bench user can log in and refresh"),
    };
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.duration);
    let (scenario, background_scenario) = match args.scenario {
        Scenario::VerifyUnderObtain => (Scenario::Verify, Some(Scenario::Obtain)),
        Scenario::ObtainUnderRegistration => (Scenario::Obtain, Some(Scenario::Register)),
        other => (other, None),
    };
    let mut background = Vec::new();
    for _ in 0..background_scenario.map_or(0, |_| args.background_connections) {
        let (client, args) = (client.clone(), clone_args(&args));
        let scenario = background_scenario.expect("a background scenario");
        background.push(tokio::spawn(async move {
            worker(client, args, scenario, String::new(), measure_from, until).await
        }));
    }
    let mut workers = Vec::new();
    for i in 0..args.connections {
        let access = access_tokens[i % access_tokens.len()].clone();
        let (client, worker_args) = (client.clone(), clone_args(&args));
        workers.push(tokio::spawn(async move {
            worker(client, worker_args, scenario, access, measure_from, until).await
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await.expect("a worker finished");
        total.latencies_us.extend(tally.latencies_us);
        total.errors += tally.errors;
    }
    let background = futures_sum(background).await;
    report(&args, total, background);
}

/// The background workers' answered requests and errors.
async fn futures_sum(handles: Vec<tokio::task::JoinHandle<Tally>>) -> (u64, u64) {
    let (mut answered, mut errors) = (0, 0);
    for handle in handles {
        let tally = handle.await.expect("a worker finished");
        answered += tally.latencies_us.len() as u64;
        errors += tally.errors;
    }
    (answered, errors)
}

fn clone_args(args: &Args) -> Args {
    Args {
        url: args.url.clone(),
        username: args.username.clone(),
        password: args.password.clone(),
        label: args.label.clone(),
        token: args.token.clone(),
        feed_client: args.feed_client.clone(),
        ..*args
    }
}

fn report(args: &Args, mut total: Tally, (background_answered, background_errors): (u64, u64)) {
    total.latencies_us.sort_unstable();
    let percentile = |p: f64| {
        let samples = &total.latencies_us;
        if samples.is_empty() {
            return 0.0;
        }
        let index = ((samples.len() as f64 * p) as usize).min(samples.len() - 1);
        f64::from(samples[index]) / 1000.0
    };
    let requests = total.latencies_us.len() as u64 + total.errors;
    let row = json!({
        "label": args.label.clone().unwrap_or_else(|| format!("{:?}", args.scenario)),
        "connections": args.connections,
        "requests": requests,
        "rps": requests as f64 / args.duration as f64,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "errors": total.errors + background_errors,
        "background_rps": background_answered as f64 / args.duration as f64,
    });
    println!("{row}");
}

/// An access token for each worker, all different (as many clients' would be): one login,
/// then its refresh token rotated once per further token.
async fn access_tokens(client: &Client, args: &Args) -> Result<Vec<String>, String> {
    let field = |pair: &Value, name: &str| pair[name].as_str().unwrap_or_default().to_owned();
    let mut pair = obtain(client, args).await?;
    let mut tokens = vec![field(&pair, "access")];
    while tokens.len() < args.connections {
        let body = json!({"refresh": field(&pair, "refresh")});
        pair = post(client, &args.url, "/api/token/refresh/", body)
            .await
            .ok()
            .flatten()
            .ok_or("a refresh failed")?;
        tokens.push(field(&pair, "access"));
    }
    Ok(tokens)
}

/// A fresh login: `{"access","refresh"}`.
async fn obtain(client: &Client, args: &Args) -> Result<Value, String> {
    let response = client
        .post(format!("{}/api/token/", args.url))
        .json(&json!({"username": args.username, "password": args.password}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != StatusCode::OK {
        return Err(format!("login answered {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}

async fn worker(
    client: Client,
    args: Args,
    scenario: Scenario,
    access: String,
    measure_from: Instant,
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut refresh = match scenario {
        Scenario::Refresh => obtain(&client, &args)
            .await
            .map(|pair| pair["refresh"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let mut browser = match scenario {
        Scenario::CookieRefresh => BrowserSession::log_in(&client, &args).await.ok(),
        _ => None,
    };
    loop {
        let sent = Instant::now();
        if sent >= until {
            return tally;
        }
        let outcome = match scenario {
            Scenario::Verify | Scenario::VerifyUnderObtain => {
                post(
                    &client,
                    &args.url,
                    "/api/token/verify/",
                    json!({"token": access}),
                )
                .await
            }
            Scenario::Me => get_me(&client, &args.url, &access).await,
            Scenario::Obtain | Scenario::ObtainUnderRegistration => {
                let body = json!({"username": args.username, "password": args.password});
                post(&client, &args.url, "/api/token/", body).await
            }
            Scenario::Register => register(&client, &args).await,
            Scenario::Refresh => {
                let body = json!({"refresh": refresh});
                let result = post(&client, &args.url, "/api/token/refresh/", body).await;
                match &result {
                    Ok(Some(next)) => {
                        refresh = next["refresh"].as_str().unwrap_or_default().to_owned();
                    }
                    _ => {
                        // Start a new session so the worker keeps going; the error is counted.
                        if let Ok(pair) = obtain(&client, &args).await {
                            refresh = pair["refresh"].as_str().unwrap_or_default().to_owned();
                        }
                    }
                }
                result
            }
            Scenario::CookieRefresh => {
                let refreshed = match &mut browser {
                    Some(session) => session.refresh(&client, &args.url).await,
                    None => Err(()),
                };
                if refreshed.is_err() {
                    browser = BrowserSession::log_in(&client, &args).await.ok();
                }
                refreshed.map(|()| None)
            }
        };
        if sent < measure_from {
            continue;
        }
        match outcome {
            Ok(_) => tally
                .latencies_us
                .push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(()) => tally.errors += 1,
        }
    }
}

/// A 200 with its JSON body (parsed only when the scenario needs it), or an error.
async fn post(client: &Client, url: &str, path: &str, body: Value) -> Result<Option<Value>, ()> {
    let response = client
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await
        .map_err(|_| ())?;
    if response.status() != StatusCode::OK {
        return Err(());
    }
    if path == "/api/token/refresh/" {
        return response.json().await.map(Some).map_err(|_| ());
    }
    response.bytes().await.map(|_| None).map_err(|_| ())
}

/// A registration of a new user from a new client address: 201, or an error.
async fn register(client: &Client, args: &Args) -> Result<Option<Value>, ()> {
    static REGISTERED: AtomicU32 = AtomicU32::new(0);
    let n = REGISTERED.fetch_add(1, Ordering::Relaxed);
    let address = std::net::Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff));
    let body = json!({
        "username": format!("flood-{}-{n}", std::process::id()),
        "password": args.password,
    });
    let request = client
        .post(format!("{}/api/users/", args.url))
        .header("X-Forwarded-For", address.to_string())
        .json(&body);
    drained(request, StatusCode::CREATED).await
}

async fn get_me(client: &Client, url: &str, access: &str) -> Result<Option<Value>, ()> {
    let request = client
        .get(format!("{url}/api/users/me/"))
        .bearer_auth(access);
    drained(request, StatusCode::OK).await
}

/// Sends `request`; `status` with its body read, or an error.
async fn drained(
    request: reqwest::RequestBuilder,
    status: StatusCode,
) -> Result<Option<Value>, ()> {
    let response = request.send().await.map_err(|_| ())?;
    if response.status() != status {
        return Err(());
    }
    response.bytes().await.map(|_| None).map_err(|_| ())
}

/// A browser's cookies for one session: the refresh cookie and the CSRF cookie, whose value it
/// also sends as `X-CSRF-Token`.
struct BrowserSession {
    refresh: String,
    csrf: String,
}

const REFRESH_COOKIE: &str = "jwtd_refresh";
const CSRF_COOKIE: &str = "jwtd_csrf";

impl BrowserSession {
    async fn log_in(client: &Client, args: &Args) -> Result<BrowserSession, ()> {
        let response = client
            .post(format!("{}/api/token/cookie/", args.url))
            .json(&json!({"username": args.username, "password": args.password}))
            .send()
            .await
            .map_err(|_| ())?;
        let mut session = BrowserSession {
            refresh: String::new(),
            csrf: String::new(),
        };
        session.take_cookies(response).await?;
        Ok(session)
    }

    /// One refresh: the cookies and the header sent, the rotated refresh cookie kept.
    async fn refresh(&mut self, client: &Client, url: &str) -> Result<(), ()> {
        let response = client
            .post(format!("{url}/api/token/cookie/refresh/"))
            .header(
                "Cookie",
                format!(
                    "{REFRESH_COOKIE}={}; {CSRF_COOKIE}={}",
                    self.refresh, self.csrf
                ),
            )
            .header("X-CSRF-Token", &self.csrf)
            .send()
            .await
            .map_err(|_| ())?;
        self.take_cookies(response).await
    }

    /// A 200's `Set-Cookie` values, its body read.
    async fn take_cookies(&mut self, response: reqwest::Response) -> Result<(), ()> {
        if response.status() != StatusCode::OK {
            return Err(());
        }
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap_or_default().split(';').next();
            match pair.and_then(|pair| pair.split_once('=')) {
                Some((REFRESH_COOKIE, value)) => value.clone_into(&mut self.refresh),
                Some((CSRF_COOKIE, value)) => value.clone_into(&mut self.csrf),
                _ => {}
            }
        }
        response.bytes().await.map(|_| ()).map_err(|_| ())
    }
}

/// `pollers` verifiers following the revocation feed for `duration` seconds, each with a
/// 2-second long poll: the polls answered and the errors.
async fn follow_feed(
    client: &Client,
    args: &Args,
    pollers: usize,
    credentials: &str,
) -> (u64, u64) {
    let token = feed_token(client, &args.url, credentials)
        .await
        .expect("the feed client gets a token");
    let until = Instant::now() + Duration::from_secs(args.warmup + args.duration);
    let snapshot: Value = client
        .get(format!("{}/api/revocations/snapshot/", args.url))
        .bearer_auth(&token)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("the feed's snapshot")
        .json()
        .await
        .expect("a snapshot page");
    let cursor = snapshot["cursor"].as_str().unwrap_or_default().to_owned();
    let handles: Vec<_> = (0..pollers)
        .map(|_| {
            let (client, url, token, mut cursor) = (
                client.clone(),
                args.url.clone(),
                token.clone(),
                cursor.clone(),
            );
            tokio::spawn(async move {
                let (mut polls, mut errors) = (0, 0);
                while Instant::now() < until {
                    let page = client
                        .get(format!("{url}/api/revocations/"))
                        .query(&[("after", cursor.as_str()), ("wait", "2")])
                        .bearer_auth(&token)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status);
                    let page: Option<Value> = match page {
                        Ok(page) => page.json().await.ok(),
                        Err(_) => None,
                    };
                    match page.as_ref().and_then(|page| page["cursor"].as_str()) {
                        Some(next) => (polls, cursor) = (polls + 1, next.to_owned()),
                        None => errors += 1,
                    }
                }
                (polls, errors)
            })
        })
        .collect();
    // Each poller ends with the poll in flight at `until`, within its 2 s wait.
    let mut total = (0, 0);
    for handle in handles {
        let (polls, errors) = handle.await.expect("a poller finished");
        total = (total.0 + polls, total.1 + errors);
    }
    total
}

/// An access token for the OAuth client `ID:SECRET` with the scope `revocations:read`.
async fn feed_token(client: &Client, url: &str, credentials: &str) -> Result<String, String> {
    let (id, secret) = credentials
        .split_once(':')
        .ok_or("--feed-client ID:SECRET")?;
    let response: Value = client
        .post(format!("{url}/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "revocations:read"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    response["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no token: {response}"))
}
