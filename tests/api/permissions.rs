//! Groups, permissions and custom claims: the staff API, the claims tokens carry, revocation on
//! a loss (on every instance), the size guard, OAuth scope narrowing, and concurrent edits.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use jwtd::Settings;
use jwtd::accounts::User;
use jwtd::config::ExtraClaim;
use jwtd_test_support::{
    Backend, PASSWORD, TestApp, claims_of, expect_error, expect_oauth_error, expect_status,
    expect_token_error, on_every_store, string_field,
};

on_every_store!(
    a_permission_taken_from_a_group_revokes_tokens_on_every_instance,
    concurrent_edits_never_leave_a_token_with_a_permission_the_final_state_lacks,
);

fn with_grant_claims(settings: &mut Settings) {
    settings.jwt.access_token_extra_claims = vec![
        ExtraClaim::Groups,
        ExtraClaim::Perms,
        ExtraClaim::AppMetadata,
    ];
}

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, with_grant_claims).await
}

async fn staff_access(app: &TestApp) -> String {
    let staff = app.create_staff().await;
    app.login(&staff).await.0
}

async fn send(app: &TestApp, method: Method, path: &str, access: &str, body: Value) -> Value {
    let expected = if method == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    expect_status(app.send_authed(method, path, access, &body).await, expected).await
}

/// Creates a group through the API; its id.
async fn create_group(app: &TestApp, staff: &str, name: &str, perms: &[&str]) -> String {
    let body = json!({"name": name, "permissions": perms});
    let group = send(app, Method::POST, "/api/groups/", staff, body).await;
    string_field(&group, "id")
}

async fn set_groups(app: &TestApp, staff: &str, user: &User, groups: &[&str]) -> Value {
    let path = format!("/api/users/{}/groups/", user.id);
    send(app, Method::PUT, &path, staff, json!({ "groups": groups })).await
}

async fn set_group_perms(app: &TestApp, staff: &str, group: &str, perms: &[&str]) -> Value {
    let path = format!("/api/groups/{group}/");
    let body = json!({ "permissions": perms });
    send(app, Method::PATCH, &path, staff, body).await
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|item| item.as_str().unwrap().to_owned())
        .collect()
}

fn perms_of(token: &str) -> Vec<String> {
    strings(&claims_of(token)["perms"])
}

#[tokio::test]
async fn a_group_s_permissions_reach_the_next_token_and_me() {
    let app = spawn(Backend::Sqlite).await;
    let staff = staff_access(&app).await;
    let alice = app.create_user().await;
    let (before, refresh) = app.login(&alice).await;
    assert_eq!(perms_of(&before), Vec::<String>::new());
    let group = create_group(
        &app,
        &staff,
        "order managers",
        &["orders.view", "orders.change"],
    )
    .await;
    let shown = set_groups(&app, &staff, &alice, &[&group]).await;
    assert_eq!(strings(&shown["groups"]), ["order managers"]);
    let path = format!("/api/users/{}/permissions/", alice.id);
    let own = json!({"permissions": ["billing.view", "orders.view"]});
    send(&app, Method::PUT, &path, &staff, own).await;

    // A gain revokes nothing: the next refresh shows it, on another instance too.
    let sibling = app.spawn_sibling().await;
    let refreshed = expect_status(sibling.refresh(&refresh).await, StatusCode::OK).await;
    let access = string_field(&refreshed, "access");
    let effective = ["billing.view", "orders.change", "orders.view"];
    assert_eq!(perms_of(&access), effective);
    assert_eq!(strings(&claims_of(&access)["groups"]), ["order managers"]);
    let (login_access, _) = app.login(&alice).await;
    assert_eq!(perms_of(&login_access), effective);

    let me = expect_status(
        app.get_authed("/api/users/me/", &access).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(strings(&me["permissions"]), effective);
    assert_eq!(strings(&me["groups"]), ["order managers"]);
    assert_eq!(me["app_metadata"], json!({}));
    let staff_view = app
        .get_authed(&format!("/api/users/{}/", alice.id), &staff)
        .await;
    let staff_view = expect_status(staff_view, StatusCode::OK).await;
    assert_eq!(strings(&staff_view["permissions"]), effective);
    let listed = expect_status(
        app.get_authed(&format!("/api/users/?username={}", alice.username), &staff)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(strings(&listed["results"][0]["groups"]), ["order managers"]);
    let groups = expect_status(app.get_authed("/api/groups/", &staff).await, StatusCode::OK).await;
    assert_eq!(
        groups,
        json!([{"id": group, "name": "order managers", "permissions": ["orders.change", "orders.view"]}])
    );
}

#[tokio::test]
async fn non_staff_get_403_and_anonymous_401_on_every_new_endpoint() {
    let app = spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (access, _) = app.login(&user).await;
    let group = format!("/api/groups/{}/", uuid::Uuid::now_v7());
    let body = Some(json!({}));
    let endpoints = [
        (Method::GET, "/api/groups/".to_owned(), None),
        (Method::POST, "/api/groups/".to_owned(), body.clone()),
        (Method::GET, group.clone(), None),
        (Method::PATCH, group.clone(), body.clone()),
        (Method::DELETE, group, None),
        (
            Method::PUT,
            format!("/api/users/{}/groups/", user.id),
            body.clone(),
        ),
        (
            Method::PUT,
            format!("/api/users/{}/permissions/", user.id),
            body.clone(),
        ),
        (
            Method::PATCH,
            format!("/api/users/{}/", user.id),
            Some(json!({"app_metadata": {}})),
        ),
    ];
    for (method, path, body) in endpoints {
        let anonymous = app.call(method.clone(), &path, None, body.clone()).await;
        assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{method} {path}");
        // Refused before the body is read: `{}` is no valid group or list of groups.
        let body = body.unwrap_or(json!({}));
        let forbidden = app.send_authed(method.clone(), &path, &access, &body).await;
        let denied = "You do not have permission to perform this action.";
        expect_error(
            forbidden,
            StatusCode::FORBIDDEN,
            "permission_denied",
            denied,
        )
        .await;
    }
}

#[tokio::test]
async fn bad_input_gets_clear_400s_404s_and_a_409() {
    let app = spawn(Backend::Sqlite).await;
    let staff = staff_access(&app).await;
    let user = app.create_user().await;
    let group = create_group(&app, &staff, "support", &["tickets.view"]).await;
    let post = |body: Value| {
        let (app, staff) = (&app, &staff);
        async move {
            app.send_authed(Method::POST, "/api/groups/", staff, &body)
                .await
        }
    };
    let invalid = |response| expect_status(response, StatusCode::BAD_REQUEST);

    let body = invalid(post(json!({"name": "x", "permissions": ["orders"]})).await).await;
    assert!(
        body["fields"]["permissions"][0]
            .as_str()
            .unwrap()
            .contains("app_label.codename")
    );
    let body = invalid(post(json!({"name": "x", "permissions": "orders.view"})).await).await;
    assert!(body["fields"]["permissions"].is_array(), "{body}");
    let body = invalid(post(json!({"permissions": []})).await).await;
    assert!(body["fields"]["name"].is_array(), "{body}");
    let taken = post(json!({"name": "support"})).await;
    expect_error(
        taken,
        StatusCode::CONFLICT,
        "conflict",
        "A group with that name already exists.",
    )
    .await;

    let unknown = uuid::Uuid::now_v7();
    let missing = app
        .get_authed(&format!("/api/groups/{unknown}/"), &staff)
        .await;
    expect_error(missing, StatusCode::NOT_FOUND, "not_found", "Not found.").await;
    let path = format!("/api/users/{}/groups/", user.id);
    let response = app
        .send_authed(
            Method::PUT,
            &path,
            &staff,
            &json!({"groups": [unknown.to_string()]}),
        )
        .await;
    let body = invalid(response).await;
    assert!(
        body["fields"]["groups"][0]
            .as_str()
            .unwrap()
            .contains(&unknown.to_string())
    );
    let response = app
        .send_authed(
            Method::PUT,
            &path,
            &staff,
            &json!({"groups": ["not-a-uuid"]}),
        )
        .await;
    invalid(response).await;
    let nobody = format!("/api/users/{unknown}/groups/");
    let response = app
        .send_authed(Method::PUT, &nobody, &staff, &json!({"groups": [group]}))
        .await;
    expect_status(response, StatusCode::NOT_FOUND).await;

    let user_path = format!("/api/users/{}/", user.id);
    for metadata in [
        json!({"exp": 1}),
        json!({"user_id": "someone else"}),
        json!({"perms": ["admin.all"]}),
        json!("a string"),
        json!({"blob": "x".repeat(4096)}),
    ] {
        let response = app
            .send_authed(
                Method::PATCH,
                &user_path,
                &staff,
                &json!({"app_metadata": metadata}),
            )
            .await;
        let body = invalid(response).await;
        assert!(body["fields"]["app_metadata"].is_array(), "{body}");
    }
    // Nothing changed: the group and the user are as they were.
    let shown = expect_status(app.get_authed(&user_path, &staff).await, StatusCode::OK).await;
    assert_eq!(shown["app_metadata"], json!({}));
    assert_eq!(strings(&shown["groups"]), Vec::<String>::new());
}

#[tokio::test]
async fn the_default_claim_set_is_unchanged_whatever_the_user_holds() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let staff = staff_access(&app).await;
    let user = app.create_user().await;
    let group = create_group(&app, &staff, "staffers", &["orders.view"]).await;
    set_groups(&app, &staff, &user, &[&group]).await;
    let path = format!("/api/users/{}/", user.id);
    let metadata = json!({"app_metadata": {"tenant": "acme"}});
    send(&app, Method::PATCH, &path, &staff, metadata).await;
    let (access, _) = app.login(&user).await;
    let claims = claims_of(&access);
    let names: BTreeSet<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let simplejwt = ["exp", "iat", "jti", "sid", "sub", "token_type", "user_id"];
    assert_eq!(names, BTreeSet::from(simplejwt));
}

#[tokio::test]
async fn app_metadata_becomes_claims_and_a_change_shows_in_the_next_refresh() {
    let app = spawn(Backend::Sqlite).await;
    let staff = staff_access(&app).await;
    let user = app.create_user().await;
    let (_, refresh) = app.login(&user).await;
    let path = format!("/api/users/{}/", user.id);
    let metadata = json!({"app_metadata": {"tenant": "acme", "plan": {"seats": 5}}});
    let shown = send(&app, Method::PATCH, &path, &staff, metadata).await;
    assert_eq!(shown["app_metadata"]["tenant"], "acme");
    let refreshed = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    let claims = claims_of(&string_field(&refreshed, "access"));
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["plan"], json!({"seats": 5}));
    assert_eq!(claims["user_id"], user.id.to_string());
}

/// Tokens carry the user's grants, and at most 1 KB.
async fn spawn_size_limited() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |settings| {
        with_grant_claims(settings);
        settings.jwt.max_access_token_bytes = 1024;
    })
    .await
}

#[tokio::test]
async fn a_token_over_the_size_limit_is_refused_at_obtain_with_a_metric() {
    let app = spawn_size_limited().await;
    let staff = staff_access(&app).await;
    let user = app.create_user().await;
    let path = format!("/api/users/{}/", user.id);
    let metadata = json!({"app_metadata": {"notes": "n".repeat(1500)}});
    send(&app, Method::PATCH, &path, &staff, metadata).await;
    let response = app
        .post_json(
            "/api/token/",
            &json!({"username": user.username, "password": PASSWORD}),
        )
        .await;
    let body = expect_status(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "token_too_large");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("jwt.max_access_token_bytes")
    );
    let metrics = app.state.metrics.render();
    assert!(
        metrics
            .lines()
            .any(|l| l == "jwtd_access_tokens_too_large_total 1"),
        "{metrics}"
    );
    // Nothing was started: the user has no session.
    let sessions = app
        .state
        .flows
        .revocation
        .sessions_of(user.id)
        .await
        .unwrap();
    assert!(sessions.is_empty());
}

#[tokio::test]
async fn an_oauth_token_carries_permissions_only_as_far_as_its_scope_allows() {
    let app = spawn(Backend::Sqlite).await;
    let staff = staff_access(&app).await;
    let user = app.create_user().await;
    let group = create_group(&app, &staff, "billing", &["billing.view", "billing.refund"]).await;
    set_groups(&app, &staff, &user, &[&group]).await;
    let path = format!("/api/users/{}/permissions/", user.id);
    let own = json!({"permissions": ["orders.change", "orders.view"]});
    send(&app, Method::PUT, &path, &staff, own).await;
    let scopes = ["read", "orders.view", "billing.*", "groups"];
    let client = app
        .register_client(&["password", "refresh_token"], &scopes)
        .await;

    let narrow = app
        .password_grant(&client, &user.username, "read orders.view")
        .await;
    let claims = claims_of(&string_field(&narrow, "access_token"));
    assert_eq!(strings(&claims["perms"]), ["orders.view"]);
    assert!(claims.get("groups").is_none(), "{claims}");

    let wide = app
        .password_grant(&client, &user.username, "billing.* groups")
        .await;
    let claims = claims_of(&string_field(&wide, "access_token"));
    assert_eq!(
        strings(&claims["perms"]),
        ["billing.refund", "billing.view"]
    );
    assert_eq!(strings(&claims["groups"]), ["billing"]);

    // A refresh keeps the scope's limit; a scope the client may not hold is refused.
    let refreshed = app
        .refresh_grant(&client, &string_field(&narrow, "refresh_token"))
        .await;
    let refreshed = expect_status(refreshed, StatusCode::OK).await;
    assert_eq!(
        perms_of(&string_field(&refreshed, "access_token")),
        ["orders.view"]
    );
    let fields = [
        ("grant_type", "password"),
        ("username", user.username.as_str()),
        ("password", PASSWORD),
        ("scope", "orders.change"),
    ];
    let widened = app.oauth_post("/oauth/token", Some(&client), &fields).await;
    expect_oauth_error(widened, StatusCode::BAD_REQUEST, "invalid_scope").await;
}

/// Staff take a permission away from a group on one instance: the member's access and refresh
/// tokens are refused at once on the other, and the next login has the smaller set.
async fn a_permission_taken_from_a_group_revokes_tokens_on_every_instance(backend: Backend) {
    let one = spawn(backend).await;
    let two = one.spawn_sibling().await;
    let staff = staff_access(&one).await;
    let member = one.create_user().await;
    let group = create_group(&one, &staff, "editors", &["posts.edit", "posts.view"]).await;
    set_groups(&one, &staff, &member, &[&group]).await;
    // Logged in where the edit happens: each test app has a clock of its own, and a revocation
    // covers the sessions started by its writer's clock (see docs/permissions.md).
    let (access, refresh) = one.login(&member).await;
    assert_eq!(perms_of(&access), ["posts.edit", "posts.view"]);
    // Two's cache holds the member now (a refresh reads it).
    let refreshed = expect_status(two.refresh(&refresh).await, StatusCode::OK).await;
    let (access, refresh) = (
        string_field(&refreshed, "access"),
        string_field(&refreshed, "refresh"),
    );
    expect_status(two.verify(&access).await, StatusCode::OK).await;

    set_group_perms(&one, &staff, &group, &["posts.view"]).await;
    let blacklisted = "Token is blacklisted";
    expect_token_error(two.verify(&access).await, blacklisted).await;
    expect_token_error(two.refresh(&refresh).await, blacklisted).await;
    let me = two.get_authed("/api/users/me/", &access).await;
    expect_status(me, StatusCode::UNAUTHORIZED).await;
    expect_token_error(one.verify(&access).await, blacklisted).await;
    let (next, _) = one.login(&member).await;
    assert_eq!(perms_of(&next), ["posts.view"]);
    expect_status(two.verify(&next).await, StatusCode::OK).await;
}

/// A burst of group edits, edits of the user's groups, logins and refreshes at once. Whatever
/// the interleaving, every token still accepted afterwards carries only permissions the final
/// state grants (edits commit, then revoke; tokens minted from reads before a commit die).
async fn concurrent_edits_never_leave_a_token_with_a_permission_the_final_state_lacks(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let staff = staff_access(&app).await;
    let user = app.create_user().await;
    let group = create_group(&app, &staff, "burst", &["x.a", "x.b", "x.c"]).await;
    set_groups(&app, &staff, &user, &[&group]).await;
    let mut refreshes = Vec::new();
    for _ in 0..6 {
        refreshes.push(app.login(&user).await.1);
    }
    let perm_sets: [&[&str]; 4] = [&["x.a"], &["x.b", "x.c"], &[], &["x.a", "x.b", "x.c"]];
    let group_edits = (0..8).map(|i| {
        let (app, staff, group) = (&app, &staff, &group);
        async move {
            set_group_perms(app, staff, group, perm_sets[i % 4]).await;
        }
    });
    let user_edits = (0..8).map(|i| {
        let (app, staff, user, group) = (&app, &staff, &user, &group);
        async move {
            let groups: &[&str] = if i % 2 == 0 { &[] } else { &[group] };
            set_groups(app, staff, user, groups).await;
        }
    });
    let logins = (0..6).map(|_| {
        let (app, user) = (&app, &user);
        async move {
            let response = app
                .post_json(
                    "/api/token/",
                    &json!({"username": user.username, "password": PASSWORD}),
                )
                .await;
            access_of(response).await
        }
    });
    let refreshed = refreshes.iter().map(|refresh| {
        let app = &app;
        async move { access_of(app.refresh(refresh).await).await }
    });
    let (_, _, minted, refreshed) = tokio::join!(
        futures::future::join_all(group_edits),
        futures::future::join_all(user_edits),
        futures::future::join_all(logins),
        futures::future::join_all(refreshed),
    );
    let final_state = send(
        &app,
        Method::GET,
        &format!("/api/users/{}/", user.id),
        &staff,
        json!({}),
    )
    .await;
    let granted: BTreeSet<String> = strings(&final_state["permissions"]).into_iter().collect();
    let tokens: Vec<String> = minted.into_iter().chain(refreshed).flatten().collect();
    assert!(!tokens.is_empty(), "no token was minted during the burst");
    for token in tokens {
        if app.verify(&token).await.status() == StatusCode::OK {
            let carried: BTreeSet<String> = perms_of(&token).into_iter().collect();
            assert!(
                carried.is_subset(&granted),
                "a live token carries {carried:?}; the final state grants {granted:?}"
            );
        }
    }
}

/// The access token of a 200, if the answer was one (a refresh racing a revocation gets 401).
async fn access_of(response: reqwest::Response) -> Option<String> {
    if response.status() != StatusCode::OK {
        return None;
    }
    let body: Value = response.json().await.unwrap();
    Some(string_field(&body, "access"))
}

/// The groups migration runs on a database that already has users: they keep everything and
/// get an empty `app_metadata`, and can be put in groups at once.
async fn migrate_with_existing_users(url: &str) {
    use jwtd::store::groups::GroupRepository;
    use migration::{Alias, Migrator, MigratorTrait, Query};
    use sea_orm::{ConnectionTrait, Database};

    let db = Database::connect(url).await.unwrap();
    let before_groups = Migrator::migrations().len() - 1;
    Migrator::up(&db, Some(before_groups as u32)).await.unwrap();
    let id = uuid::Uuid::now_v7();
    // Bound values: each backend stores a UUID and a timestamp its own way.
    let insert = Query::insert()
        .into_table(Alias::new("users"))
        .columns(
            [
                "id",
                "username",
                "username_normalized",
                "email",
                "password_hash",
                "is_active",
                "is_staff",
                "date_joined",
            ]
            .map(Alias::new),
        )
        .values_panic([
            id.into(),
            "old".into(),
            "old".into(),
            "".into(),
            "x".into(),
            true.into(),
            false.into(),
            chrono::Utc::now().into(),
        ])
        .to_owned();
    db.execute(&insert).await.unwrap();
    jwtd::store::db::migrate(&db).await.unwrap();
    let users = jwtd::store::users::UserRepository::new(db.clone());
    let old = users.find_by_id(id).await.unwrap().unwrap();
    assert_eq!(old.username, "old");
    assert!(old.app_metadata.is_empty());
    let groups = GroupRepository::new(db.clone());
    let group = groups
        .create("veterans".into(), BTreeSet::from(["club.enter".into()]))
        .await
        .unwrap();
    groups.add_user_group(id, group.id).await.unwrap();
    let grants = groups.grants_of(&[id]).await.unwrap().remove(&id).unwrap();
    assert_eq!(grants.permissions, ["club.enter"]);
}

#[tokio::test]
async fn the_groups_migration_keeps_existing_users_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    migrate_with_existing_users(&url).await;
}

#[tokio::test]
async fn the_groups_migration_keeps_existing_users_on_postgres() {
    if jwtd_test_support::postgres_available() {
        let database = jwtd_test_support::PostgresDatabase::create().await;
        migrate_with_existing_users(&database.url).await;
    }
}

#[tokio::test]
async fn deleting_a_group_revokes_its_members_and_empties_their_groups() {
    let app = spawn(Backend::Sqlite).await;
    let staff = staff_access(&app).await;
    let (member, bystander) = (app.create_user().await, app.create_user().await);
    let group = create_group(&app, &staff, "temporary", &["tmp.use"]).await;
    set_groups(&app, &staff, &member, &[&group]).await;
    let (member_access, _) = app.login(&member).await;
    let (bystander_access, _) = app.login(&bystander).await;
    let path = format!("/api/groups/{group}/");
    let deleted = app
        .send_authed(Method::DELETE, &path, &staff, &json!({}))
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_token_error(app.verify(&member_access).await, "Token is blacklisted").await;
    expect_status(app.verify(&bystander_access).await, StatusCode::OK).await;
    let gone = app.get_authed(&path, &staff).await;
    expect_error(gone, StatusCode::NOT_FOUND, "not_found", "Not found.").await;
    let (access, _) = app.login(&member).await;
    let me = expect_status(
        app.get_authed("/api/users/me/", &access).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (me["groups"].clone(), me["permissions"].clone()),
        (json!([]), json!([]))
    );
    let again = app
        .send_authed(Method::DELETE, &path, &staff, &json!({}))
        .await;
    expect_status(again, StatusCode::NOT_FOUND).await;
}

/// With `users.revoke_on_permission_loss` off, a loss revokes nothing: the old access token
/// stays valid until it expires, and the next refresh (served from a moved cache version)
/// carries the smaller set.
#[tokio::test]
async fn without_revocation_on_loss_the_next_refresh_has_the_smaller_set() {
    let app = TestApp::spawn_with(Backend::Redis, |settings| {
        with_grant_claims(settings);
        settings.users.revoke_on_permission_loss = false;
    })
    .await;
    let staff = staff_access(&app).await;
    let user = app.create_user().await;
    let path = format!("/api/users/{}/permissions/", user.id);
    let both = json!({"permissions": ["x.a", "x.b"]});
    send(&app, Method::PUT, &path, &staff, both).await;
    let (access, refresh) = app.login(&user).await;
    // A refresh caches the user with both permissions.
    let refreshed = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    send(
        &app,
        Method::PUT,
        &path,
        &staff,
        json!({"permissions": ["x.b"]}),
    )
    .await;
    expect_status(app.verify(&access).await, StatusCode::OK).await;
    let next = app.refresh(&string_field(&refreshed, "refresh")).await;
    let next = expect_status(next, StatusCode::OK).await;
    assert_eq!(perms_of(&string_field(&next, "access")), ["x.b"]);
}

/// A group edit reaches every member, however many (they are fanned out a few at a time).
#[tokio::test]
async fn a_loss_in_a_big_group_revokes_every_member() {
    let app = spawn(Backend::Sqlite).await;
    let staff = staff_access(&app).await;
    let group = create_group(&app, &staff, "everyone", &["app.use"]).await;
    let mut accesses = Vec::new();
    for _ in 0..40 {
        let member = app.create_user().await;
        set_groups(&app, &staff, &member, &[&group]).await;
        accesses.push(app.login(&member).await.0);
    }
    set_group_perms(&app, &staff, &group, &[]).await;
    for access in accesses {
        expect_token_error(app.verify(&access).await, "Token is blacklisted").await;
    }
}

/// A refresh refused for size spends nothing: once the data is fixed, the same refresh token
/// refreshes (and is not taken for reuse).
#[tokio::test]
async fn a_refresh_refused_for_size_spends_nothing() {
    let app = spawn_size_limited().await;
    let staff = staff_access(&app).await;
    let user = app.create_user().await;
    let (_, refresh) = app.login(&user).await;
    let path = format!("/api/users/{}/", user.id);
    let large = json!({"app_metadata": {"notes": "n".repeat(1500)}});
    send(&app, Method::PATCH, &path, &staff, large).await;
    let body = expect_status(app.refresh(&refresh).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "token_too_large");
    let small = json!({"app_metadata": {"notes": "short"}});
    send(&app, Method::PATCH, &path, &staff, small).await;
    let refreshed = expect_status(app.refresh(&refresh).await, StatusCode::OK).await;
    let claims = claims_of(&string_field(&refreshed, "access"));
    assert_eq!(claims["notes"], "short");
}
