//! Property tests of the request bodies over real HTTP: any bytes, any JSON and any field types,
//! under any content type, on every endpoint that takes a body, get a 2xx or 4xx with the
//! contract's (or OAuth's) JSON error; never a 5xx.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

use jwtd_test_support::{Backend, TestApp};

/// (method, path, the body's field names): every operation that reads a body.
const OPERATIONS: &[(&str, &str, &[&str])] = &[
    ("POST", "/api/token/", &["username", "password"]),
    ("POST", "/api/token/refresh/", &["refresh"]),
    ("POST", "/api/token/verify/", &["token"]),
    ("POST", "/api/token/blacklist/", &["refresh"]),
    ("POST", "/api/users/", &["username", "email", "password"]),
    ("PATCH", "/api/users/me/", &["username", "email"]),
    (
        "POST",
        "/api/users/me/password/",
        &["current_password", "new_password"],
    ),
    (
        "POST",
        "/oauth/token",
        &[
            "grant_type",
            "username",
            "password",
            "refresh_token",
            "scope",
            "client_id",
        ],
    ),
    ("POST", "/oauth/revoke", &["token", "token_type_hint"]),
    ("POST", "/oauth/introspect", &["token", "token_type_hint"]),
];

const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    Some("multipart/form-data; boundary=x"),
    Some("application/json;;;"),
    None,
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,30}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A body: raw bytes, any JSON document, or the operation's own field names with values of any
/// type, as JSON or as form data.
fn body_for(fields: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let named = move || prop::collection::vec((prop::sample::select(fields), json_value()), 0..5);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|value| value.to_string().into_bytes()),
        named().prop_map(|pairs| {
            let object: serde_json::Map<String, Value> = pairs
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect();
            Value::Object(object).to_string().into_bytes()
        }),
        named().prop_map(|pairs| {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in pairs {
                form.append_pair(name, &value.to_string());
            }
            form.finish().into_bytes()
        }),
    ]
}

fn request() -> impl Strategy<Value = Case> {
    (0..OPERATIONS.len()).prop_flat_map(|operation| {
        (
            Just(operation),
            prop::sample::select(CONTENT_TYPES),
            body_for(OPERATIONS[operation].2),
            any::<bool>(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_body_on_any_operation_gets_a_json_answer_and_never_a_5xx() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (access, _) = app.login(&user).await;
    let runtime = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&request(), |case| {
            runtime.block_on(send_and_check(&app, &access, case))
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

type Case = (usize, Option<&'static str>, Vec<u8>, bool);

/// Sends one generated request; fails the case on a 5xx or an error without a JSON code.
async fn send_and_check(
    app: &TestApp,
    access: &str,
    (operation, content_type, body, authenticated): Case,
) -> Result<(), TestCaseError> {
    let (method, path, _) = OPERATIONS[operation];
    let mut request = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if authenticated {
        request = request.bearer_auth(access);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let context = format!("{method} {path} ({content_type:?}) → {status} {text}");
    if status.is_server_error() {
        return Err(TestCaseError::fail(context));
    }
    if !status.is_success() {
        let error: Value = serde_json::from_str(&text)
            .map_err(|_| TestCaseError::fail(format!("not JSON: {context}")))?;
        let coded = error["code"].is_string() || error["error"].is_string();
        prop_assert!(coded, "no error code: {}", context);
    }
    Ok(())
}
