//! The revocation store contract, run against the SQL store (SQLite, PostgreSQL) and Redis.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use jwtd::clock::{Clock, UnixMillis, UnixSecs};
use jwtd::store::RevocationStore;
use jwtd::store::entities::revocation;
use jwtd::store::lookups::LookupStats;
use jwtd::store::redis::RedisRevocationStore;
use jwtd::store::revocation::{JtiState, RevocationEntries, SpendOutcome, SpendRecord, TokenKeys};
use jwtd::store::sql::SqlRevocationStore;

use jwtd_test_support::{Backend, TestApp, on_every_store};

on_every_store!(
    spend_is_atomic_under_real_concurrency,
    a_checked_spend_is_atomic_and_reads_the_revocations,
    revocations_are_read_back_in_one_call,
    concurrent_lookups_each_get_their_own_entries,
    entries_live_as_long_as_their_tokens,
    a_revocation_cut_off_only_moves_forward,
);

fn record(successor: &str) -> SpendRecord {
    SpendRecord {
        spent_at: UnixMillis(1),
        successor_jti: successor.into(),
        successor_iat: UnixSecs(2),
        successor_exp: UnixSecs(3),
    }
}

fn ids() -> (String, String, String) {
    let id = || uuid::Uuid::new_v4().simple().to_string();
    (id(), id(), id())
}

async fn spend_is_atomic_under_real_concurrency(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store: Arc<dyn RevocationStore> = app.state.revocation_store.clone();
    let (user, jti, _) = ids();
    let until = app.clock.now().secs() + Duration::from_secs(60);
    let racers = (0..32).map(|i| {
        let (store, user, jti) = (store.clone(), user.clone(), jti.clone());
        tokio::spawn(async move {
            store
                .spend(&user, &jti, &record(&format!("successor-{i}")), until)
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<SpendOutcome> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == SpendOutcome::Spent)
            .count(),
        1
    );
    // Every loser sees the winner's record, and it is the one stored.
    let stored = store.jti_state(&user, &jti).await.unwrap().unwrap();
    for outcome in outcomes.iter().filter(|o| **o != SpendOutcome::Spent) {
        assert_eq!(*outcome, SpendOutcome::AlreadyUsed(stored.clone()));
    }
    assert!(matches!(stored, JtiState::Spent(_)));
}

/// `spend_checked` (a refresh's one round trip) spends like `spend` and reads like `entries`.
async fn a_checked_spend_is_atomic_and_reads_the_revocations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store: Arc<dyn RevocationStore> = app.state.revocation_store.clone();
    let (user, jti, sid) = ids();
    let until = app.clock.now().secs() + Duration::from_secs(60);
    let racers = (0..32).map(|i| {
        let (store, user, jti, sid) = (store.clone(), user.clone(), jti.clone(), sid.clone());
        tokio::spawn(async move {
            let keys = TokenKeys {
                user_id: &user,
                jti: &jti,
                sid: &sid,
            };
            store
                .spend_checked(keys, &record(&format!("successor-{i}")), until)
                .await
                .unwrap()
        })
    });
    let results: Vec<(RevocationEntries, SpendOutcome)> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, outcome)| *outcome == SpendOutcome::Spent)
        .collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0].0, RevocationEntries::default());
    let stored = store.jti_state(&user, &jti).await.unwrap().unwrap();
    for (entries, outcome) in results.iter().filter(|(_, o)| *o != SpendOutcome::Spent) {
        assert_eq!(*outcome, SpendOutcome::AlreadyUsed(stored.clone()));
        assert_eq!(entries.jti.as_ref(), Some(&stored));
    }

    store.revoke_session(&user, &sid, until).await.unwrap();
    store
        .revoke_user(&user, UnixMillis(99), until)
        .await
        .unwrap();
    store.mark_user_changed(&user, "v2", until).await.unwrap();
    let (_, next_jti, _) = ids();
    let keys = TokenKeys {
        user_id: &user,
        jti: &next_jti,
        sid: &sid,
    };
    let (entries, outcome) = store
        .spend_checked(keys, &record("x"), until)
        .await
        .unwrap();
    assert_eq!(outcome, SpendOutcome::Spent);
    assert!(entries.session_revoked);
    assert_eq!(entries.user_revoked_before, Some(UnixMillis(99)));
    assert_eq!(entries.user_version.as_deref(), Some("v2"));
}

async fn revocations_are_read_back_in_one_call(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = &app.state.revocation_store;
    let (user, jti, sid) = ids();
    let keys = TokenKeys {
        user_id: &user,
        jti: &jti,
        sid: &sid,
    };
    let until = app.clock.now().secs() + Duration::from_secs(60);
    assert_eq!(
        store.entries(keys).await.unwrap(),
        RevocationEntries::default()
    );

    store.revoke_token(&user, &jti, until).await.unwrap();
    store.revoke_session(&user, &sid, until).await.unwrap();
    store
        .revoke_user(&user, UnixMillis(1_234), until)
        .await
        .unwrap();
    store.mark_user_changed(&user, "v1", until).await.unwrap();
    let entries = store.entries(keys).await.unwrap();
    assert_eq!(
        entries,
        RevocationEntries {
            jti: Some(JtiState::Revoked),
            session_revoked: true,
            user_revoked_before: Some(UnixMillis(1_234)),
            user_version: Some("v1".into()),
        }
    );
    // Revoking a spent token replaces its spend record; a later spend cannot undo it.
    let (_, other_jti, _) = ids();
    assert_eq!(
        store
            .spend(&user, &other_jti, &record("s"), until)
            .await
            .unwrap(),
        SpendOutcome::Spent
    );
    store.revoke_token(&user, &other_jti, until).await.unwrap();
    assert_eq!(
        store
            .spend(&user, &other_jti, &record("t"), until)
            .await
            .unwrap(),
        SpendOutcome::AlreadyUsed(JtiState::Revoked)
    );
    // Another user's keys are separate.
    let (stranger, _, _) = ids();
    let theirs = TokenKeys {
        user_id: &stranger,
        jti: &jti,
        sid: &sid,
    };
    assert_eq!(
        store.entries(theirs).await.unwrap(),
        RevocationEntries::default()
    );
}

/// Lookups in flight together (which both stores answer with shared reads) each get their
/// own token's entries: 240 tokens of three users, with every kind of entry among them.
async fn concurrent_lookups_each_get_their_own_entries(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A store of the test's own, so its read count is this test's alone.
    let (sql, redis);
    let (store, stats): (Arc<dyn RevocationStore>, &LookupStats) = if backend == Backend::Redis {
        let settings = &app.state.settings.redis;
        redis = Arc::new(RedisRevocationStore::new(settings, app.clock.clone()).unwrap());
        (
            redis.clone(),
            redis.lookup_stats().expect("a single server"),
        )
    } else {
        sql = SqlRevocationStore::new(app.state.db.clone(), app.clock.clone());
        (Arc::new(sql.clone()), sql.lookup_stats())
    };
    let users = [ids().0, ids().0, ids().0];
    let sids = [ids().0, ids().0, ids().0, ids().0];
    let tokens: Vec<(usize, String, usize)> = (0..240).map(|i| (i % 3, ids().0, i % 4)).collect();
    let until = app.clock.now().secs() + Duration::from_secs(60);
    for (i, (_, jti, _)) in tokens.iter().enumerate().step_by(5) {
        store.revoke_token(&users[i % 3], jti, until).await.unwrap();
    }
    store
        .revoke_session(&users[0], &sids[1], until)
        .await
        .unwrap();
    store
        .revoke_user(&users[1], UnixMillis(77), until)
        .await
        .unwrap();
    store
        .mark_user_changed(&users[2], "v2", until)
        .await
        .unwrap();

    let lookups = tokens.iter().map(|(user, jti, sid)| {
        store.entries(TokenKeys {
            user_id: &users[*user],
            jti,
            sid: &sids[*sid],
        })
    });
    let found = futures::future::join_all(lookups).await;
    for (i, ((user, _, sid), entries)) in tokens.iter().zip(found).enumerate() {
        let expected = RevocationEntries {
            jti: (i % 5 == 0).then_some(JtiState::Revoked),
            session_revoked: (*user, *sid) == (0, 1),
            user_revoked_before: (*user == 1).then_some(UnixMillis(77)),
            user_version: (*user == 2).then(|| "v2".into()),
        };
        assert_eq!(entries.unwrap(), expected, "token {i}");
    }
    assert_eq!(stats.lookups(), 240);
    assert!(
        stats.reads() <= 60,
        "{} reads for 240 lookups in flight together",
        stats.reads()
    );
}

async fn entries_live_as_long_as_their_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = &app.state.revocation_store;
    let (user, jti, sid) = ids();
    let keys = TokenKeys {
        user_id: &user,
        jti: &jti,
        sid: &sid,
    };
    let until = app.clock.now().secs() + Duration::from_secs(120);
    store.revoke_session(&user, &sid, until).await.unwrap();
    assert!(store.entries(keys).await.unwrap().session_revoked);

    if backend == Backend::Redis {
        // Redis expires entries itself: the TTL is the token's remaining life.
        let settings = &app.state.settings.redis;
        let client =
            redis::Client::open(secrecy::ExposeSecret::expose_secret(&settings.url)).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("{}:{{{user}}}:s:{sid}", settings.key_prefix);
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        // Counted down in real time since the write: allow a slow machine some seconds.
        assert!((100..=120).contains(&ttl), "ttl {ttl}");
    } else {
        let live_sid = ids().2;
        store
            .revoke_session(&user, &live_sid, until + Duration::from_secs(1_000))
            .await
            .unwrap();
        app.clock.advance(Duration::from_secs(121));
        assert!(
            !store.entries(keys).await.unwrap().session_revoked,
            "expired entries no longer count"
        );
        // The app's own purger may run first; either way the expired row goes and the live one stays.
        SqlRevocationStore::new(app.state.db.clone(), app.clock.clone())
            .purge_expired()
            .await
            .unwrap();
        let rows_of_session = |sid: String| {
            let db = app.state.db.clone();
            let key = format!("{{{user}}}:s:{sid}");
            async move {
                revocation::Entity::find()
                    .filter(revocation::Column::Key.contains(key))
                    .count(&db)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(rows_of_session(sid.clone()).await, 0, "expired row purged");
        assert_eq!(rows_of_session(live_sid).await, 1, "live row kept");
    }
}

/// Concurrent revoke-alls with cut-offs in any order leave the latest; an earlier one after
/// that (an instance with a slower clock) still moves it forward, by a millisecond.
async fn a_revocation_cut_off_only_moves_forward(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = app.state.revocation_store.clone();
    let (user, _, _) = ids();
    let until = app.clock.now().secs() + Duration::from_secs(60);
    let writers = [7, 3, 20, 11, 1, 19, 4, 15].map(|ms| {
        let (store, user) = (store.clone(), user.clone());
        tokio::spawn(async move { store.revoke_user(&user, UnixMillis(ms), until).await })
    });
    for written in futures::future::join_all(writers).await {
        written.unwrap().unwrap();
    }
    let after_burst = store.user_revoked_before(&user).await.unwrap().unwrap();
    assert!(after_burst >= UnixMillis(20), "{after_burst:?}");
    let sooner = app.clock.now().secs() + Duration::from_secs(5);
    store
        .revoke_user(&user, UnixMillis(2), sooner)
        .await
        .unwrap();
    let after_slow = store.user_revoked_before(&user).await.unwrap().unwrap();
    assert_eq!(after_slow, UnixMillis(after_burst.0 + 1));
    // Nor did its expiry come sooner.
    app.clock.advance(Duration::from_secs(10));
    assert_eq!(
        store.user_revoked_before(&user).await.unwrap(),
        Some(after_slow)
    );
}
