//! The revocation store contract, run against the SQL store (SQLite, PostgreSQL) and Redis.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use jwtd::clock::{Clock, UnixMillis};
use jwtd::store::RevocationStore;
use jwtd::store::entities::revocation;
use jwtd::store::lookups::LookupStats;
use jwtd::store::redis::RedisRevocationStore;
use jwtd::store::revocation::{
    ExpectedVersion, JtiState, RefreshTokenId, RevocationEntries, Rotation, RotationOutcome,
    TokenKeys,
};
use jwtd::store::sql::SqlRevocationStore;

use jwtd_test_support::{Backend, TestApp, on_every_store};

on_every_store!(
    a_rotation_has_one_winner_under_real_concurrency,
    a_rotation_decides_as_documented,
    revocations_are_read_back_in_one_call,
    concurrent_lookups_each_get_their_own_entries,
    entries_live_as_long_as_their_tokens,
    a_revocation_cut_off_only_moves_forward,
);

fn ids() -> (String, String, String) {
    let id = || uuid::Uuid::new_v4().simple().to_string();
    (id(), id(), id())
}

fn token_id(jti: &str, app: &TestApp) -> RefreshTokenId {
    let now = app.clock.now().secs();
    RefreshTokenId {
        jti: jti.into(),
        iat: now,
        exp: now + Duration::from_secs(60),
    }
}

/// A rotation of `jti` in session `sid` of `user`, started at 1 ms, with a user copy loaded
/// while the version entry was absent.
fn rotation<'a>(
    app: &TestApp,
    keys: TokenKeys<'a>,
    successor: &'a RefreshTokenId,
    grace: Duration,
) -> Rotation<'a> {
    Rotation {
        token: keys,
        session_started: UnixMillis(1),
        user_version: ExpectedVersion::Is(None),
        successor,
        now: app.clock.now(),
        grace,
        until: successor.exp,
    }
}

/// Rotates `presented` 32 times at once, each with its own successor: the outcomes.
async fn rotate_burst(
    app: &TestApp,
    user: &str,
    sid: &str,
    presented: &str,
    grace: Duration,
) -> Vec<(RefreshTokenId, RotationOutcome)> {
    let store = &app.state.revocation_store;
    let successors: Vec<RefreshTokenId> = (0..32).map(|_| token_id(&ids().0, app)).collect();
    let racers = successors.iter().map(|successor| async move {
        let rotation = rotation(app, keys(user, presented, sid), successor, grace);
        (successor.clone(), store.rotate(&rotation).await.unwrap())
    });
    futures::future::join_all(racers).await
}

fn keys<'a>(user_id: &'a str, jti: &'a str, sid: &'a str) -> TokenKeys<'a> {
    TokenKeys { user_id, jti, sid }
}

/// Of 32 rotations of one token at once exactly one wins, both for a session's first rotation
/// (a create) and for a later one (a compare-and-set): the rest get the winner's successor
/// within the grace, and are reuse without it.
async fn a_rotation_has_one_winner_under_real_concurrency(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (user, login_jti, sid) = ids();
    let grace = Duration::from_secs(10);
    let mut presented = login_jti;
    for round in 0..2 {
        let outcomes = rotate_burst(&app, &user, &sid, &presented, grace).await;
        let winners: Vec<_> = outcomes
            .iter()
            .filter(|(_, outcome)| *outcome == RotationOutcome::Rotated)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let winner = winners[0].0.clone();
        for (_, outcome) in &outcomes {
            assert!(
                matches!(outcome, RotationOutcome::Rotated)
                    || *outcome == RotationOutcome::Grace(winner.clone()),
                "round {round}: {outcome:?}"
            );
        }
        presented = winner.jti;
    }
    // Without a grace, the losers are reuse.
    let outcomes = rotate_burst(&app, &user, &sid, &presented, Duration::ZERO).await;
    let rotated = outcomes
        .iter()
        .filter(|(_, outcome)| *outcome == RotationOutcome::Rotated)
        .count();
    let reused = outcomes
        .iter()
        .filter(|(_, outcome)| *outcome == RotationOutcome::Reused)
        .count();
    assert_eq!((rotated, reused), (1, 31), "{outcomes:?}");
}

/// What a rotation answers for each state of the token's entries, the same on every store
/// (the Redis script and the SQL store's decision are held to one table).
async fn a_rotation_decides_as_documented(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = &app.state.revocation_store;
    let grace = Duration::from_secs(10);
    let (user, first, sid) = ids();
    let second = token_id(&ids().0, &app);
    let third = token_id(&ids().0, &app);
    // A stale copy of the user: nothing is written, the stored version comes back.
    let until = app.clock.now().secs() + Duration::from_secs(60);
    store.mark_user_changed(&user, "v2", until).await.unwrap();
    let stale = rotation(&app, keys(&user, &first, &sid), &second, grace);
    let outcome = store.rotate(&stale).await.unwrap();
    assert_eq!(outcome, RotationOutcome::UserChanged(Some("v2".into())));
    let unknown = Rotation {
        user_version: ExpectedVersion::Unknown,
        ..stale.clone()
    };
    let outcome = store.rotate(&unknown).await.unwrap();
    assert_eq!(outcome, RotationOutcome::UserChanged(Some("v2".into())));
    let current = Rotation {
        user_version: ExpectedVersion::Is(Some("v2")),
        ..stale.clone()
    };
    assert_eq!(
        store.rotate(&current).await.unwrap(),
        RotationOutcome::Rotated
    );
    // Without a grace the previous token is reuse, even from a caller whose clock read came
    // before the winner's (a loser of the race that started first).
    let earlier = Rotation {
        now: UnixMillis(app.clock.now().0 - 5),
        grace: Duration::ZERO,
        ..current.clone()
    };
    assert_eq!(
        store.rotate(&earlier).await.unwrap(),
        RotationOutcome::Reused
    );
    // The previous token within the grace gets the current one; after it, it is reuse.
    let outcome = store.rotate(&current).await.unwrap();
    assert_eq!(outcome, RotationOutcome::Grace(second.clone()));
    let next = Rotation {
        token: keys(&user, &second.jti, &sid),
        successor: &third,
        ..current.clone()
    };
    assert_eq!(store.rotate(&next).await.unwrap(), RotationOutcome::Rotated);
    assert_eq!(
        store.rotate(&current).await.unwrap(),
        RotationOutcome::Reused
    );
    app.clock.advance(grace);
    let late = Rotation {
        now: app.clock.now(),
        ..next.clone()
    };
    assert_eq!(store.rotate(&late).await.unwrap(), RotationOutcome::Reused);
    // A user's "revoke all" covers sessions started at or before it, not after.
    let fresh = Rotation {
        token: keys(&user, &third.jti, &sid),
        now: app.clock.now(),
        ..current.clone()
    };
    store
        .revoke_user(&user, UnixMillis(1), until)
        .await
        .unwrap();
    assert_eq!(
        store.rotate(&fresh).await.unwrap(),
        RotationOutcome::Revoked
    );
    let later_session = Rotation {
        session_started: UnixMillis(5),
        ..fresh.clone()
    };
    let outcome = store.rotate(&later_session).await.unwrap();
    assert_eq!(outcome, RotationOutcome::Rotated);
    // A revoked session, and a token revoked on its own.
    let (other_user, token, other_sid) = ids();
    let successor = token_id(&ids().0, &app);
    let own = rotation(
        &app,
        keys(&other_user, &token, &other_sid),
        &successor,
        grace,
    );
    store
        .revoke_token(&other_user, &token, until)
        .await
        .unwrap();
    assert_eq!(store.rotate(&own).await.unwrap(), RotationOutcome::Revoked);
    let (other_user, token, other_sid) = ids();
    let session = rotation(
        &app,
        keys(&other_user, &token, &other_sid),
        &successor,
        grace,
    );
    store
        .revoke_session(&other_user, &other_sid, until)
        .await
        .unwrap();
    assert_eq!(
        store.rotate(&session).await.unwrap(),
        RotationOutcome::Revoked
    );
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
            rotation: None,
        }
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
            rotation: None,
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
