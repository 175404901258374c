//! The `jwtd` binary itself: configuration layers end to end, commands, the committed spec.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd_test_support::{SmtpServer, free_port};

mod config_docs;

const PASSWORD: &str = "a long enough password";

fn jwtd(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jwtd"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("JWTD_ENV")
        .env(
            "JWTD__DATABASE__URL",
            format!("sqlite://{}?mode=rwc", dir.join("cli.db").display()),
        )
        .env("RUST_LOG", "warn");
    command
}

fn create_user(dir: &Path, username: &str, password: &str) -> Output {
    let mut child = jwtd(dir)
        .args(["users", "create", "--username", username])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_committed_spec_is_what_the_code_generates() {
    let output = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(output.status.success());
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json"))
            .unwrap();
    assert!(
        String::from_utf8(output.stdout).unwrap() == committed,
        "openapi/openapi.json is stale: run `cargo run -q -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn an_environment_override_reaches_the_served_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let created = create_user(dir.path(), "carol", PASSWORD);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let user: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(user["username"], "carol");
    assert!(user.get("password_hash").is_none());

    let port = free_port();
    let mut server = jwtd(dir.path())
        .arg("serve")
        .env("JWTD__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("JWTD__JWT__ACCESS_TOKEN_LIFETIME", "10m")
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/token/");
    let deadline = Instant::now() + Duration::from_secs(20);
    let body: serde_json::Value = loop {
        let attempt = client
            .post(&url)
            .json(&serde_json::json!({"username": "carol", "password": PASSWORD}))
            .send()
            .await;
        if let Ok(response) = attempt {
            assert_eq!(response.status(), 200);
            break response.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "jwtd did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let payload = body["access"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );

    // SIGTERM: a graceful stop with a successful exit.
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

/// Everything production needs but a signing key: the key is then all a refusal can be about.
const PRODUCTION_SERVER: [(&str, &str); 2] = [
    ("JWTD__SERVER__PUBLIC_URL", "https://auth.example.com"),
    ("JWTD__SERVER__METRICS_BIND", "127.0.0.1:0"),
];

/// 48 random base64 characters: an HMAC key production accepts.
fn random_signing_key() -> String {
    let bytes: Vec<u8> = (0..3)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .take(36)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn production_refuses_the_development_key_and_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = jwtd(dir.path())
        .arg("serve")
        .env("JWTD_ENV", "production")
        .envs(PRODUCTION_SERVER)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("development signing key") && stderr.contains("JWTD__JWT__SIGNING_KEY"),
        "{stderr}"
    );

    let short = jwtd(dir.path())
        .arg("serve")
        .env("JWTD_ENV", "production")
        .envs(PRODUCTION_SERVER)
        .env("JWTD__JWT__SIGNING_KEY", "too-short")
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("9-byte signing key for HS256"));
}

/// `JWTD_ENV` is read in any letter case: `Production` is production, and refuses the
/// development key as `production` does; a name jwtd does not know refuses to start.
#[test]
fn a_miscased_production_refuses_the_development_key_and_unknown_names_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    // Its stderr once it has exited; a server that starts instead is stopped, and fails the test.
    let serve = |env: &[(&str, &str)]| {
        let mut server = jwtd(dir.path())
            .arg("serve")
            .env("JWTD__SERVER__BIND", "127.0.0.1:0")
            .envs(PRODUCTION_SERVER)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                server.kill().unwrap();
                panic!("jwtd started with {env:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = server.wait_with_output().unwrap();
        assert!(!output.status.success(), "{env:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    for name in ["Production", "PRODUCTION"] {
        let stderr = serve(&[("JWTD_ENV", name)]);
        assert!(
            stderr.contains("refuses the development signing key")
                && stderr.contains("JWTD__JWT__SIGNING_KEY")
                && stderr.contains("openssl rand -base64 32"),
            "{stderr}"
        );
    }
    let weak = "k".repeat(64);
    let stderr = serve(&[
        ("JWTD_ENV", "Production"),
        ("JWTD__JWT__SIGNING_KEY", weak.as_str()),
    ]);
    assert!(stderr.contains("distinct bytes"), "{stderr}");
    assert!(
        !stderr.contains(&weak),
        "the key is never printed: {stderr}"
    );

    let stderr = serve(&[("JWTD_ENV", "staging")]);
    assert!(
        stderr.contains("JWTD_ENV=\"staging\" is not an environment"),
        "{stderr}"
    );
    let stderr = serve(&[("JWTD__JWT__ALGORITHM", "none")]);
    assert!(stderr.contains("\"none\" is not supported"), "{stderr}");
    assert!(stderr.contains("jwt.algorithm"), "{stderr}");
}

/// Production takes neither the metadata's issuer from a request's `Host` header nor serves
/// `/metrics` to the public: each missing setting is refused by name; with both, `/metrics` is
/// on its own port only.
#[tokio::test]
async fn production_refuses_to_start_without_a_public_url_or_a_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let key = random_signing_key();
    assert_eq!(key.len(), 48);
    // Its stderr, once it has refused to start.
    let refused = |env: &[(&str, &str)]| {
        let output = jwtd(dir.path())
            .arg("serve")
            .env("JWTD_ENV", "production")
            .env("JWTD__JWT__SIGNING_KEY", &key)
            .env("JWTD__SERVER__BIND", "127.0.0.1:0")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{env:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let no_url = refused(&[("JWTD__SERVER__METRICS_BIND", "127.0.0.1:0")]);
    assert!(no_url.contains("needs server.public_url"), "{no_url}");
    assert!(no_url.contains("JWTD__SERVER__PUBLIC_URL"), "{no_url}");
    let no_metrics = refused(&[("JWTD__SERVER__PUBLIC_URL", "https://auth.example.com")]);
    assert!(
        no_metrics.contains("/metrics on the API port"),
        "{no_metrics}"
    );
    assert!(
        no_metrics.contains("JWTD__SERVER__METRICS_BIND"),
        "{no_metrics}"
    );
    let bad_url = refused(&[
        ("JWTD__SERVER__PUBLIC_URL", "auth.example.com"),
        ("JWTD__SERVER__METRICS_BIND", "127.0.0.1:0"),
    ]);
    assert!(
        bad_url.contains("\"auth.example.com\" is not a public URL"),
        "{bad_url}"
    );
    assert!(bad_url.contains("server.public_url"), "{bad_url}");

    let metrics_port = free_port().to_string();
    let metrics_bind = format!("127.0.0.1:{metrics_port}");
    let (mut server, port) = serve_with(
        dir.path(),
        &[
            ("JWTD_ENV", "production"),
            ("JWTD__JWT__SIGNING_KEY", &key),
            ("JWTD__SERVER__PUBLIC_URL", "https://auth.example.com"),
            ("JWTD__SERVER__METRICS_BIND", &metrics_bind),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let get = |address: String| client.get(address).send();
    let on_api = get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(on_api.status(), 404);
    let scraped = get(format!("http://{metrics_bind}/metrics")).await.unwrap();
    assert_eq!(scraped.status(), 200);
    let metadata: serde_json::Value = get(format!(
        "http://127.0.0.1:{port}/.well-known/oauth-authorization-server"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["issuer"], "https://auth.example.com");
    stop(&mut server);
}

/// A Redis that forgets revocations at a restart is a loud warning in development.
#[tokio::test]
async fn a_redis_without_an_append_only_file_is_a_warning_in_development() {
    let dir = tempfile::tempdir().unwrap();
    let redis = jwtd_test_support::RedisServer::start(None); // --appendonly no
    let url = redis.url();
    let env = [
        ("JWTD__REVOCATION__STORE", "redis"),
        ("JWTD__REDIS__URL", url.as_str()),
    ];
    let (mut server, port) = serve_with(dir.path(), &env).await;
    // Answered: serving, with its SIGTERM handler in place.
    let live = reqwest::get(format!("http://127.0.0.1:{port}/health/live"))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    stop(&mut server);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        stderr.contains("Redis can lose revocations")
            && stderr.contains("appendonly is no: blacklisted tokens come back"),
        "{stderr}"
    );
}

#[test]
fn users_create_refuses_bad_passwords_and_taken_names() {
    let dir = tempfile::tempdir().unwrap();
    let short = create_user(dir.path(), "dave", "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("This password is too short"));

    assert!(create_user(dir.path(), "Dave", PASSWORD).status.success());
    let again = create_user(dir.path(), "DAVE", PASSWORD);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let flag = jwtd(dir.path())
        .args([
            "users",
            "create",
            "--username",
            "erin",
            "--staff",
            "--password",
            PASSWORD,
        ])
        .output()
        .unwrap();
    let user: serde_json::Value = serde_json::from_slice(&flag.stdout).unwrap();
    assert_eq!(user["is_staff"], true);
}

#[test]
fn migrate_creates_the_database_and_every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = jwtd(dir.path()).arg("migrate").output().unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(dir.path().join("cli.db").exists());

    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["users", "--help"],
        &["users", "create", "--help"],
        &["openapi", "--help"],
        &["users", "list", "--help"],
        &["users", "set-password", "--help"],
        &["users", "deactivate", "--help"],
        &["users", "delete", "--help"],
        &["clients", "create", "--help"],
        &["clients", "list", "--help"],
        &["clients", "delete", "--help"],
        &["clients", "rotate-secret", "--help"],
        &["keys", "generate", "--help"],
    ] {
        let output = jwtd(dir.path()).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage: jwtd"),
            "{args:?}"
        );
    }
    let unknown = jwtd(dir.path()).arg("frobnicate").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let output = jwtd(dir).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn listed(dir: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let output = run(dir, &[&["users", "list"][..], args].concat());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn users_can_be_listed_deactivated_re_passworded_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["frank", "grace", "heidi"] {
        run(
            dir.path(),
            &[
                "users",
                "create",
                "--username",
                name,
                "--password",
                PASSWORD,
            ],
        );
    }
    let all = listed(dir.path(), &[]);
    assert_eq!(
        all.iter()
            .map(|u| u["username"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["frank", "grace", "heidi"]
    );
    assert!(all.iter().all(|u| u.get("password_hash").is_none()));

    run(dir.path(), &["users", "deactivate", "--username", "grace"]);
    let inactive = listed(dir.path(), &["--active", "false"]);
    assert_eq!(inactive.len(), 1);
    assert_eq!(inactive[0]["username"], "grace");

    let weak = jwtd(dir.path())
        .args([
            "users",
            "set-password",
            "--username",
            "heidi",
            "--password",
            "123",
        ])
        .output()
        .unwrap();
    assert!(!weak.status.success());
    run(
        dir.path(),
        &[
            "users",
            "set-password",
            "--username",
            "heidi",
            "--password",
            "a different passphrase",
        ],
    );

    run(dir.path(), &["users", "delete", "--username", "frank"]);
    assert_eq!(listed(dir.path(), &["--username", "fr"]).len(), 0);
    let missing = jwtd(dir.path())
        .args(["users", "delete", "--username", "frank"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user named"));
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Waits for `serve` to answer, then POSTs a client-credentials grant.
async fn client_credentials_token(port: u16, id: &str, secret: &str) -> reqwest::Response {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = client
            .post(format!("http://127.0.0.1:{port}/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        if let Ok(response) = attempt {
            return response;
        }
        assert!(Instant::now() < deadline, "jwtd did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_generated_key_and_a_registered_client_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let keys_dir_arg = keys_dir.to_str().unwrap();
    let generated = run(
        dir.path(),
        &[
            "keys",
            "generate",
            "--alg",
            "EdDSA",
            "--out-dir",
            keys_dir_arg,
        ],
    );
    let key = &json_lines(&generated)[0];
    let private_file = key["private_key_file"].as_str().unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(private_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the private key is readable by its owner only"
    );
    assert!(
        std::fs::read_to_string(private_file)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let public = std::fs::read_to_string(key["public_key_file"].as_str().unwrap()).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));

    let created = run(
        dir.path(),
        &[
            "clients",
            "create",
            "--name",
            "billing",
            "--grant",
            "client_credentials",
            "--scope",
            "invoices:read",
            "--json",
        ],
    );
    let credentials = &json_lines(&created)[0];
    assert_eq!(credentials.as_object().unwrap().len(), 2, "{credentials}");
    let id = credentials["client_id"].as_str().unwrap().to_owned();
    let secret = credentials["client_secret"].as_str().unwrap().to_owned();
    let listed = json_lines(&run(dir.path(), &["clients", "list"]));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["client_id"], id.as_str());
    assert_eq!(listed[0]["scope"], "invoices:read");
    assert!(
        !listed[0].to_string().contains(&secret),
        "a secret is never listed"
    );

    let port = free_port();
    let mut server = jwtd(dir.path())
        .arg("serve")
        .env("JWTD__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("JWTD__JWT__ALGORITHM", "EdDSA")
        .env("JWTD__JWT__PRIVATE_KEY_FILE", private_file)
        .spawn()
        .unwrap();
    let response = client_credentials_token(port, &id, &secret).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let header = body["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], key["kid"]);

    // A rotated secret replaces the old one; a deleted client cannot authenticate.
    let rotated = run(
        dir.path(),
        &["clients", "rotate-secret", "--client-id", &id, "--json"],
    );
    let new_secret = json_lines(&rotated)[0]["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        client_credentials_token(port, &id, &secret).await.status(),
        401
    );
    assert_eq!(
        client_credentials_token(port, &id, &new_secret)
            .await
            .status(),
        200
    );
    run(dir.path(), &["clients", "delete", "--client-id", &id]);
    assert_eq!(
        client_credentials_token(port, &id, &new_secret)
            .await
            .status(),
        401
    );
    assert!(json_lines(&run(dir.path(), &["clients", "list"])).is_empty());
    let missing = jwtd(dir.path())
        .args(["clients", "delete", "--client-id", &id])
        .output()
        .unwrap();
    assert!(!missing.status.success());

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

/// `jwtd serve` on a free port with `env`, stderr captured; returns it once it answers.
async fn serve_with(dir: &Path, env: &[(&str, &str)]) -> (std::process::Child, u16) {
    let port = free_port();
    let server = jwtd(dir)
        .arg("serve")
        .env("JWTD__SERVER__BIND", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "jwtd did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, port)
}

fn stop(server: &mut std::process::Child) {
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

fn healthcheck(dir: &Path, port: u16, extra: &[&str]) -> Output {
    jwtd(dir)
        .arg("healthcheck")
        .args(extra)
        .env("JWTD__SERVER__BIND", format!("0.0.0.0:{port}"))
        .output()
        .unwrap()
}

#[tokio::test]
async fn healthcheck_exits_0_only_when_the_server_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ready, port) = serve_with(dir.path(), &[]).await;
    let answer = healthcheck(dir.path(), port, &[]);
    assert!(answer.status.success(), "{answer:?}");
    stop(&mut ready);
    let gone = healthcheck(dir.path(), port, &[]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("cannot reach"),
        "{gone:?}"
    );

    // Live, but its Redis is gone: not ready.
    let closed_port = free_port().to_string();
    let redis_url = format!("redis://127.0.0.1:{closed_port}");
    let env = [
        ("JWTD__REVOCATION__STORE", "redis"),
        ("JWTD__REDIS__URL", redis_url.as_str()),
    ];
    let (mut degraded, port) = serve_with(dir.path(), &env).await;
    let not_ready = healthcheck(dir.path(), port, &[]);
    assert!(!not_ready.status.success());
    let said = String::from_utf8_lossy(&not_ready.stderr);
    assert!(said.contains("not ready: HTTP/1.1 503"), "{said}");
    assert!(healthcheck(dir.path(), port, &["--live"]).status.success());
    stop(&mut degraded);
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_never_a_password_or_token() {
    let dir = tempfile::tempdir().unwrap();
    assert!(create_user(dir.path(), "dora", PASSWORD).status.success());
    let (mut server, port) = serve_with(
        dir.path(),
        &[
            ("JWTD__LOG__FORMAT", "json"),
            ("RUST_LOG", "info,jwtd=trace"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let pair: serde_json::Value = client
        .post(url("/api/token/"))
        .header("x-request-id", "login-req-1")
        .json(&serde_json::json!({"username": "dora", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (access, refresh) = (
        pair["access"].as_str().unwrap(),
        pair["refresh"].as_str().unwrap(),
    );
    let wrong = serde_json::json!({"username": "dora", "password": "wrong horse battery"});
    client
        .post(url("/api/token/"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    for (path, field, token) in [
        ("/api/token/verify/", "token", access),
        ("/api/token/refresh/", "refresh", refresh),
        // Spent: reuse detection logs a warning.
        ("/api/token/refresh/", "refresh", refresh),
    ] {
        client
            .post(url(path))
            .json(&serde_json::json!({ field: token }))
            .send()
            .await
            .unwrap();
    }
    stop(&mut server);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let in_request = |id: &str| lines.iter().filter(|line| line["span"]["id"] == id).count();
    assert!(in_request("login-req-1") >= 1, "{stderr}");
    let reuse = lines
        .iter()
        .find(|line| {
            line["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("reuse")
        })
        .unwrap_or_else(|| panic!("no reuse warning in {stderr}"));
    assert_eq!(reuse["span"]["id"].as_str().unwrap().len(), 32, "{reuse}");
    for secret in [PASSWORD, "wrong horse battery", access, refresh] {
        assert!(!stderr.contains(secret), "a secret was logged: {secret}");
    }
    // Nor any part of a token that would let it be pieced together.
    let signature = access.rsplit('.').next().unwrap();
    assert!(!stderr.contains(signature));
}

/// The default text logs of the binary (stderr is not a terminal: no colours), written in
/// batches: every request's access line comes out whole, in order, with its span's fields and
/// an RFC 3339 timestamp, by the time the server has stopped.
#[tokio::test]
async fn text_logs_have_every_access_line_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = serve_with(dir.path(), &[("RUST_LOG", "info")]).await;
    let client = reqwest::Client::new();
    const REQUESTS: usize = 300;
    for i in 0..REQUESTS {
        let answer = client
            .get(format!("http://127.0.0.1:{port}/health/live"))
            .header("x-request-id", format!("plain-{i}"))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }
    stop(&mut server);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();

    assert!(!stderr.contains('\x1b'), "no colour codes: {stderr}");
    let access: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("jwtd::access"))
        .collect();
    assert_eq!(access.len(), REQUESTS, "{stderr}");
    for (i, line) in access.iter().enumerate() {
        let (timestamp, rest) = line.split_once(' ').unwrap();
        let bytes = timestamp.as_bytes();
        assert!(
            timestamp.len() == 27 && bytes[10] == b'T' && bytes[19] == b'.' && bytes[26] == b'Z',
            "{line}"
        );
        let expected = format!(
            " INFO request{{id=plain-{i} method=\"GET\" path=/health/live}}: jwtd::access: \
             answered operation=\"health_live\" status=200 micros="
        );
        let micros = rest
            .strip_prefix(&expected)
            .unwrap_or_else(|| panic!("{line}"));
        assert!(micros.parse::<u64>().is_ok(), "{line}");
    }
}

/// The default `console` backend: a reset asked over HTTP and one queued by `jwtd users
/// send-reset` both reach the log, with their links, and no mail server (one listens at
/// `email.smtp_url`, and receives nothing).
#[tokio::test]
async fn the_console_backend_writes_mail_to_the_log_and_nothing_else() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut create = jwtd(dir.path())
        .args([
            "users",
            "create",
            "--username",
            "erin",
            "--email",
            "erin@example.com",
        ])
        .args(["--password", PASSWORD])
        .output()
        .unwrap();
    assert!(create.status.success(), "{create:?}");
    let smtp_url = smtp.url();
    let env = [
        ("JWTD__EMAIL__SMTP_URL", smtp_url.as_str()),
        ("JWTD__EMAIL__POLL_INTERVAL", "50ms"),
        ("RUST_LOG", "info"),
    ];
    let (mut server, port) = serve_with(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let asked = client
        .post(format!("http://127.0.0.1:{port}/api/users/reset_password/"))
        .json(&serde_json::json!({"email": "erin@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), reqwest::StatusCode::NO_CONTENT);
    create = run(dir.path(), &["users", "send-reset", "--username", "erin"]);
    let said = String::from_utf8_lossy(&create.stderr);
    assert!(create.status.success(), "{said}");
    assert!(
        said.contains("mail to erin@example.com is queued"),
        "{said}"
    );
    let nobody = jwtd(dir.path())
        .args(["users", "send-reset", "--username", "nobody"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&nobody.stderr);
    assert!(
        !nobody.status.success() && said.contains("no user named"),
        "{said}"
    );

    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = client
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|line| line == "jwtd_email_sent_total 2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mails were not written: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(&mut server);
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut log).unwrap();
    let links = log.matches("http://localhost:3000/password-reset/").count();
    assert_eq!(links, 2, "{log}");
    assert!(log.contains("Reset your password"), "{log}");
    assert!(smtp.messages().is_empty(), "the console backend sent mail");
}

/// `jwtd groups create` and `jwtd users grant`: the grant service from the command line, with
/// its validation; the user is printed with their groups and effective permissions.
#[test]
fn groups_and_grants_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    assert!(create_user(dir.path(), "gina", PASSWORD).status.success());
    let run = |args: &[&str]| jwtd(dir.path()).args(args).output().unwrap();
    let json = |output: &Output| -> serde_json::Value {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let create = ["groups", "create", "--name", "support"];
    let perms = ["--perm", "tickets.view", "--perm", "tickets.close"];
    let group = json(&run(&[&create[..], &perms[..]].concat()));
    assert_eq!(
        group["permissions"],
        serde_json::json!(["tickets.close", "tickets.view"])
    );
    let grant = ["users", "grant", "--username", "gina"];
    let user = json(&run(&[
        &grant[..],
        &["--group", "support", "--perm", "billing.view"],
    ]
    .concat()));
    assert_eq!(user["groups"], serde_json::json!(["support"]));
    let effective = ["billing.view", "tickets.close", "tickets.view"];
    assert_eq!(user["permissions"], serde_json::json!(effective));

    for (args, message) in [
        (&create[..], "A group with that name already exists."),
        (
            &["groups", "create", "--name", "x", "--perm", "nodot"][..],
            "app_label.codename",
        ),
        (
            &[&grant[..], &["--group", "nobody"]].concat()[..],
            "no group named \"nobody\"",
        ),
        (&grant[..], "--group"),
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
