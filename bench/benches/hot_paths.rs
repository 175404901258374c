//! Micro-benchmarks of the functions on every request: signing, verifying (decode with every
//! check), and the revocation check (one store round trip) on SQLite and Redis.
//!
//! `cargo bench -p jwtd-bench` (Redis at `REDIS_URL`, default redis://127.0.0.1:6379).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jwtd::Settings;
use jwtd::clock::{Clock, SystemClock, UnixMillis, UnixSecs};
use jwtd::config::RevocationBackend;
use jwtd::store::RevocationStore;
use jwtd::store::revocation::{
    ExpectedVersion, RefreshTokenId, Rotation, RotationOutcome, TokenKeys,
};
use jwtd::token::claims::new_jti;
use jwtd::token::keygen::generate_key_pair;
use jwtd::token::{Claims, KeySet, SessionId, TokenCodec, TokenType};
use tokio::runtime::Runtime;

const ALGORITHMS: [&str; 4] = ["HS256", "EdDSA", "ES256", "RS256"];

/// A codec for `algorithm`, with the cache of verified tokens of `cache_bytes`.
fn codec_for(algorithm: &str, dir: &std::path::Path, cache_bytes: usize) -> TokenCodec {
    let mut jwt = Settings::defaults().jwt;
    jwt.algorithm = algorithm.parse().unwrap();
    jwt.verified_cache_bytes = cache_bytes;
    if algorithm != "HS256" {
        let pair = generate_key_pair(algorithm.parse().unwrap(), 2048).unwrap();
        let path = dir.join(format!("{algorithm}.pem"));
        std::fs::write(&path, pair.private_pem).unwrap();
        jwt.private_key_file = Some(path);
    }
    let keys = KeySet::from_settings(&jwt).unwrap();
    TokenCodec::new(keys, &jwt, Arc::new(SystemClock))
}

fn access_claims() -> Claims {
    let now = SystemClock.now();
    Claims {
        token_type: TokenType::Access,
        exp: now.secs() + Duration::from_secs(3600),
        iat: now.secs(),
        jti: new_jti(),
        user_id: uuid::Uuid::new_v4().to_string(),
        subject_is_client: false,
        sid: SessionId::start(now),
        iss: None,
        aud: None,
        username: None,
        is_staff: None,
        groups: None,
        perms: None,
        metadata: Default::default(),
        scope: None,
        client_id: None,
    }
}

fn sign_and_verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let claims = access_claims();
    for algorithm in ALGORITHMS {
        // The full check (a token's first verify), then a token verified before.
        let codec = codec_for(algorithm, dir.path(), 0);
        let token = codec.sign(&claims).unwrap();
        c.bench_function(&format!("sign {algorithm}"), |b| {
            b.iter(|| codec.sign(&claims).unwrap())
        });
        c.bench_function(&format!("verify {algorithm}"), |b| {
            b.iter(|| codec.decode(&token).unwrap())
        });
        let cached = codec_for(algorithm, dir.path(), 1 << 20);
        let token = cached.sign(&claims).unwrap();
        c.bench_function(&format!("verify {algorithm}, cached"), |b| {
            b.iter(|| cached.decode(&token).unwrap())
        });
    }
}

/// A revocation store as jwtd builds it, through the same `AppState`.
fn store_on(
    runtime: &Runtime,
    backend: RevocationBackend,
    dir: &std::path::Path,
) -> Arc<dyn RevocationStore> {
    let mut settings = Settings::defaults();
    settings.database.url = format!("sqlite://{}/bench.db?mode=rwc", dir.display()).into();
    settings.revocation.store = backend;
    settings.redis.url = std::env::var("REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
        .into();
    settings.redis.key_prefix = format!("jwtd-criterion-{}", std::process::id());
    runtime.block_on(async {
        let state = jwtd::state::AppState::build(settings, Arc::new(SystemClock))
            .await
            .unwrap();
        state.revocation_store.clone()
    })
}

fn revocation_check(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let claims = access_claims();
    let sid = claims.sid.to_string();
    let keys = TokenKeys {
        user_id: &claims.user_id,
        jti: &claims.jti,
        sid: &sid,
    };
    let until = SystemClock.now().secs() + Duration::from_secs(3600);
    for (name, backend) in [
        ("sqlite", RevocationBackend::Database),
        ("redis", RevocationBackend::Redis),
    ] {
        let store = store_on(&runtime, backend, dir.path());
        c.bench_function(&format!("revocation check {name}"), |b| {
            b.iter(|| runtime.block_on(store.entries(keys)).unwrap())
        });
        // A refresh's round trip: each rotation presents the token the one before issued,
        // as a client chaining refreshes in one session does. Criterion runs this closure more
        // than once (warm-up, then samples): each run is a session of its own.
        c.bench_function(&format!("rotation {name}"), |b| {
            let sid = uuid::Uuid::new_v4().to_string();
            let keys = TokenKeys { sid: &sid, ..keys };
            let mut presented = new_jti();
            b.iter(|| {
                let successor = RefreshTokenId {
                    jti: new_jti(),
                    iat: UnixSecs(0),
                    exp: until,
                };
                let rotation = Rotation {
                    token: TokenKeys {
                        jti: &presented,
                        ..keys
                    },
                    session_started: UnixMillis(1),
                    user_version: ExpectedVersion::Is(None),
                    successor: &successor,
                    now: SystemClock.now(),
                    grace: Duration::ZERO,
                    until,
                };
                let outcome = runtime.block_on(store.rotate(&rotation)).unwrap();
                assert_eq!(outcome, RotationOutcome::Rotated);
                presented = successor.jti;
            })
        });
    }
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = sign_and_verify, revocation_check
}
criterion_main!(hot_paths);
