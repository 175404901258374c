//! What production cannot leave to chance: `/metrics` on a listener of its own, and an OAuth
//! issuer that no request chooses.

use reqwest::StatusCode;

use jwtd_test_support::{Backend, TestApp, expect_status};

const PUBLIC_URL: &str = "https://auth.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_and_not_on_the_api_port() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.server.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await;
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    assert_ne!(metrics, app.address);
    expect_status(app.get("/health/live").await, StatusCode::OK).await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);

    let scraped = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    assert_eq!(
        scraped.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    // The API's requests are counted there, the probe of /metrics on the API port among them.
    let text = scraped.text().await.unwrap();
    for sample in [
        r#"jwtd_http_requests_total{operation="health_live",method="GET",status="200"} 1"#,
        r#"jwtd_http_requests_total{operation="metrics",method="GET",status="404"} 1"#,
    ] {
        assert!(text.contains(sample), "{sample} missing from {text}");
    }

    // The metrics listener serves nothing else, and /metrics stays out of the spec.
    for path in ["/health/live", "/api/token/", "/openapi.json", "/docs"] {
        let answer = app
            .client
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let spec = expect_status(app.get("/openapi.json").await, StatusCode::OK).await;
    assert!(spec["paths"].get("/metrics").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_names_the_public_url_whatever_the_host_header_says() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.server.public_url = Some(format!("{PUBLIC_URL}/").parse().unwrap());
    })
    .await;
    let url = format!("{}/.well-known/oauth-authorization-server", app.address);
    for host in [None, Some("evil.example"), Some("127.0.0.1:1")] {
        let mut request = app.client.get(&url);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let metadata = expect_status(request.send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(metadata["issuer"], PUBLIC_URL, "Host: {host:?}");
        for (field, path) in [
            ("token_endpoint", "/oauth/token"),
            ("revocation_endpoint", "/oauth/revoke"),
            ("introspection_endpoint", "/oauth/introspect"),
            ("jwks_uri", "/.well-known/jwks.json"),
            ("service_documentation", "/docs"),
        ] {
            assert_eq!(
                metadata[field],
                format!("{PUBLIC_URL}{path}"),
                "Host: {host:?}"
            );
        }
    }
}
