//! Scale-out: three jwtd processes on one PostgreSQL database and a real Redis Cluster (three
//! masters, three replicas, on loopback), requests spread round-robin, every guarantee of the
//! contract holding across instances as on one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jwtd::clock::{SharedClock, SystemClock};
use jwtd::store::CounterStore;
use jwtd::store::counters::{LockRule, Reservation};
use jwtd::store::redis::RedisRevocationStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

use jwtd_test_support::{
    PASSWORD, PostgresDatabase, RedisCluster, free_port, string_field as string,
};

const NEW_PASSWORD: &str = "a brand new horse battery";

/// One `jwtd serve` process.
struct Instance {
    port: u16,
    child: std::process::Child,
}

impl Instance {
    fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three instances behind a round-robin "load balancer" (the test's client).
struct Fleet {
    instances: Vec<Instance>,
    next: AtomicUsize,
    client: reqwest::Client,
    env: Vec<(String, String)>,
}

fn jwtd() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_jwtd"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("JWTD_ENV")
        .env("RUST_LOG", "warn");
    command
}

impl Fleet {
    /// `instances` processes on `database` and `redis`, with `extra` settings.
    async fn start(
        instances: usize,
        database: &PostgresDatabase,
        redis: &RedisCluster,
        extra: &[(&str, &str)],
    ) -> Fleet {
        let prefix = format!("jwtd-scale-{}", uuid::Uuid::new_v4().simple());
        let mut env: Vec<(String, String)> = vec![
            ("JWTD__DATABASE__URL".into(), database.url.clone()),
            ("JWTD__REVOCATION__STORE".into(), "redis".into()),
            ("JWTD__REDIS__CLUSTER".into(), "true".into()),
            ("JWTD__REDIS__URL".into(), redis.seeds()),
            ("JWTD__REDIS__KEY_PREFIX".into(), prefix),
            // Replicas need a moment after a master dies; the test waits for the failover.
            ("JWTD__REDIS__RESPONSE_TIMEOUT".into(), "1s".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let migrated = jwtd().arg("migrate").envs(env.clone()).output().unwrap();
        assert!(migrated.status.success(), "{migrated:?}");
        let mut fleet = Fleet {
            instances: Vec::new(),
            next: AtomicUsize::new(0),
            client: reqwest::Client::new(),
            env,
        };
        for _ in 0..instances {
            fleet.spawn_instance().await;
        }
        fleet
    }

    async fn spawn_instance(&mut self) {
        let port = free_port();
        let child = jwtd()
            .arg("serve")
            .envs(self.env.clone())
            .env("JWTD__SERVER__BIND", format!("127.0.0.1:{port}"))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "jwtd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.instances.push(Instance { port, child });
    }

    fn create_user(&self, username: &str) {
        let created = jwtd()
            .args([
                "users",
                "create",
                "--username",
                username,
                "--password",
                PASSWORD,
            ])
            .envs(self.env.clone())
            .output()
            .unwrap();
        assert!(created.status.success(), "{created:?}");
    }

    /// The next live instance's URL for `path`, round-robin.
    fn url(&self, path: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.instances.len();
        self.url_on(n, path)
    }

    fn url_on(&self, instance: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.instances[instance].port)
    }

    async fn post(&self, url: String, body: Value, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.post(url).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn login_on(
        &self,
        instance: usize,
        username: &str,
        password: &str,
    ) -> (StatusCode, Value) {
        let body = json!({"username": username, "password": password});
        self.post(self.url_on(instance, "/api/token/"), body, None)
            .await
    }

    async fn login(&self, username: &str) -> (String, String) {
        let body = json!({"username": username, "password": PASSWORD});
        let (status, pair) = self.post(self.url("/api/token/"), body, None).await;
        assert_eq!(status, StatusCode::OK, "{pair}");
        (string(&pair, "access"), string(&pair, "refresh"))
    }

    async fn verify_on(&self, instance: usize, token: &str) -> StatusCode {
        let url = self.url_on(instance, "/api/token/verify/");
        self.post(url, json!({ "token": token }), None).await.0
    }

    async fn refresh_on(&self, instance: usize, refresh: &str) -> (StatusCode, Value) {
        let url = self.url_on(instance, "/api/token/refresh/");
        self.post(url, json!({ "refresh": refresh }), None).await
    }

    /// Every instance refuses `token` with 401.
    async fn refused_everywhere(&self, token: &str, what: &str) {
        for instance in 0..self.instances.len() {
            assert_eq!(
                self.verify_on(instance, token).await,
                StatusCode::UNAUTHORIZED,
                "{what}: instance {instance} still accepts the token"
            );
        }
    }
}

fn cluster_tests_enabled() -> bool {
    jwtd_test_support::postgres_available()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_guarantee_holds_across_three_instances_on_a_redis_cluster() {
    if !cluster_tests_enabled() {
        return;
    }
    let redis = RedisCluster::start();
    let database = PostgresDatabase::create().await;
    let throttle = [
        ("JWTD__THROTTLE__ACCOUNT_FREE_FAILURES", "3"),
        ("JWTD__THROTTLE__ACCOUNT_BACKOFF", "10m"),
    ];
    let fleet = Fleet::start(3, &database, &redis, &throttle).await;
    fleet.create_user("ada");

    // The rotation race: 24 concurrent refreshes of one token, spread over the instances.
    let (_, refresh) = fleet.login("ada").await;
    let attempts = (0..24).map(|n| fleet.refresh_on(n % 3, &refresh));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(winners, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(s))
    );

    // Reuse detected on one instance revokes the session on all.
    let (access, first) = fleet.login("ada").await;
    let (status, rotated) = fleet.refresh_on(0, &first).await;
    assert_eq!(status, StatusCode::OK);
    let (reused, _) = fleet.refresh_on(1, &first).await;
    assert_eq!(reused, StatusCode::UNAUTHORIZED);
    let (successor, _) = fleet.refresh_on(2, &string(&rotated, "refresh")).await;
    assert_eq!(
        successor,
        StatusCode::UNAUTHORIZED,
        "the session survived reuse"
    );
    fleet.refused_everywhere(&access, "reuse").await;
    fleet
        .refused_everywhere(&string(&rotated, "access"), "reuse")
        .await;

    // Blacklist through one instance: refused by the others at once.
    let (access, refresh) = fleet.login("ada").await;
    let url = fleet.url_on(0, "/api/token/blacklist/");
    assert_eq!(
        fleet.post(url, json!({ "refresh": refresh }), None).await.0,
        StatusCode::OK
    );
    fleet.refused_everywhere(&access, "blacklist").await;

    // Logout-all through one instance.
    let (access, refresh) = fleet.login("ada").await;
    let url = fleet.url_on(1, "/api/token/logout-all/");
    assert_eq!(
        fleet.post(url, json!({}), Some(&access)).await.0,
        StatusCode::NO_CONTENT
    );
    fleet.refused_everywhere(&access, "logout-all").await;
    assert_eq!(
        fleet.refresh_on(0, &refresh).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A password change through one instance.
    let (access, refresh) = fleet.login("ada").await;
    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let url = fleet.url_on(2, "/api/users/me/password/");
    let (status, body) = fleet.post(url, change, Some(&access)).await;
    assert!(status.is_success(), "{status} {body}");
    fleet.refused_everywhere(&access, "password change").await;
    assert_eq!(
        fleet.refresh_on(1, &refresh).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Login throttling counts across instances: 3 free failures, the 4th locks the account,
    // wherever each lands; then even the right password is refused, on another instance.
    fleet.create_user("bob");
    for instance in [0, 1, 2, 0] {
        let (status, _) = fleet.login_on(instance, "bob", "wrong password!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = fleet.login_on(1, "bob", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the lock did not reach instance 1"
    );
    let (status, _) = fleet.login_on(2, "ada", NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "another account is not locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_or_a_redis_master_loses_no_revocation_and_service_recovers() {
    if !cluster_tests_enabled() {
        return;
    }
    let mut redis = RedisCluster::start();
    let database = PostgresDatabase::create().await;
    let mut fleet = Fleet::start(3, &database, &redis, &[]).await;
    fleet.create_user("cy");
    let (live_access, live_refresh) = fleet.login("cy").await;

    // A logout answered by instance 2, which is then killed at once: the others refuse.
    let (revoked_access, revoked_refresh) = fleet.login("cy").await;
    let url = fleet.url_on(2, "/api/token/blacklist/");
    let body = json!({ "refresh": revoked_refresh });
    assert_eq!(fleet.post(url, body, None).await.0, StatusCode::OK);
    fleet.instances[2].kill();
    fleet.instances.truncate(2);
    fleet
        .refused_everywhere(&revoked_access, "blacklist before the kill")
        .await;
    for instance in 0..2 {
        assert_eq!(
            fleet.verify_on(instance, &live_access).await,
            StatusCode::OK
        );
    }

    // The master holding this user's keys dies; its replica takes over.
    redis.wait_until_replicated();
    let user_id = jwtd_test_support::claims_of(&live_access)["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let killed = redis.kill_master_of(&user_id);
    // Each instance finds the new master by itself (on its next failed command); until then it
    // answers 503, never 200 for a token it cannot check.
    let deadline = Instant::now() + Duration::from_secs(60);
    for instance in 0..fleet.instances.len() {
        loop {
            let status = fleet.verify_on(instance, &live_access).await;
            if status == StatusCode::OK {
                break;
            }
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "while master {killed} is down, answers are 503"
            );
            assert!(
                Instant::now() < deadline,
                "no recovery a minute after the failover began"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    fleet
        .refused_everywhere(&revoked_access, "blacklist after the failover")
        .await;
    let (status, body) = fleet.refresh_on(1, &live_refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (reused, _) = fleet.refresh_on(0, &live_refresh).await;
    assert_eq!(
        reused,
        StatusCode::UNAUTHORIZED,
        "a spend on the new master is seen"
    );
    fleet.spawn_instance().await;
    assert_eq!(
        fleet.verify_on(2, &revoked_access).await,
        StatusCode::UNAUTHORIZED
    );
}

/// The sum over the instances of `jwtd_login_failures_total{reason="<reason>"}`.
async fn login_failures(fleet: &Fleet, reason: &str) -> usize {
    let sample = format!(r#"jwtd_login_failures_total{{reason="{reason}"}} "#);
    let mut sum = 0;
    for instance in 0..fleet.instances.len() {
        let url = fleet.url_on(instance, "/metrics");
        let text = fleet.client.get(url).send().await.unwrap().text().await;
        let text = text.unwrap();
        let value = text.lines().find_map(|line| line.strip_prefix(&sample));
        sum += value.map_or(0, |value| value.parse::<f64>().unwrap() as usize);
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_guesses_over_three_instances_gets_the_free_failures_and_one() {
    if !cluster_tests_enabled() {
        return;
    }
    let redis = RedisCluster::start();

    // The reservation itself, straight on the cluster: accounts whose keys fall in different
    // slots (so on every master), 24 attempts each at once, 3 free failures.
    let mut settings = jwtd::Settings::defaults();
    settings.redis.cluster = true;
    settings.redis.url = redis.seeds().into();
    settings.redis.key_prefix = format!("jwtd-scale-{}", uuid::Uuid::new_v4().simple());
    let clock: SharedClock = Arc::new(SystemClock);
    let store = Arc::new(RedisRevocationStore::new(&settings.redis, clock).unwrap());
    let rule = LockRule {
        window: Duration::from_secs(3600),
        free_failures: 3,
        locks: vec![Duration::from_secs(600)],
    };
    let attempts = (0..8 * 24).map(|n| {
        let (store, rule) = (store.clone(), rule.clone());
        let key = format!("a:account-{}", n % 8);
        tokio::spawn(async move { (n % 8, store.reserve(&key, &rule).await.unwrap()) })
    });
    let mut admitted = [0; 8];
    for attempt in futures::future::join_all(attempts).await {
        let (account, reservation) = attempt.unwrap();
        if let Reservation::Admitted { .. } = reservation {
            admitted[account] += 1;
        }
    }
    assert_eq!(admitted, [4; 8]);

    // Over HTTP: 60 wrong passwords spread over three instances at once, then the right one.
    let database = PostgresDatabase::create().await;
    let throttle = [
        ("JWTD__THROTTLE__CLIENT_ATTEMPTS", "0"),
        ("JWTD__THROTTLE__ACCOUNT_FREE_FAILURES", "3"),
        ("JWTD__THROTTLE__ACCOUNT_BACKOFF", "10m"),
    ];
    let fleet = Fleet::start(3, &database, &redis, &throttle).await;
    fleet.create_user("eve");
    let mut burst: FuturesUnordered<_> = (0..60)
        .map(|n| fleet.login_on(n % 3, "eve", "a wrong guess!"))
        .collect();
    // Sent once the burst is in and its first answer back (see tests/api/lockout.rs).
    let first = burst.next().await.unwrap();
    let (right, _) = tokio::join!(fleet.login_on(1, "eve", PASSWORD), async {
        let mut statuses = vec![first.0];
        while let Some((status, _)) = burst.next().await {
            statuses.push(status);
        }
        assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    });
    assert_eq!(
        right.0,
        StatusCode::UNAUTHORIZED,
        "the right password got in"
    );
    assert_eq!(login_failures(&fleet, "invalid_credentials").await, 4);
    assert_eq!(login_failures(&fleet, "locked").await, 57);
}
