//! The example page (examples/spa) against jwtd: every scenario of the browser transport.

use std::time::Duration;

use fantoccini::Client;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{
    Site, USERNAME, click, run_async, wait_for_script, wait_for_text, with_browser,
};

const ME: &str = "/api/users/me/";
const REFRESH: &str = "/api/token/cookie/refresh/";

/// Clicks "Who am I?" and waits for the answer's status line.
async fn who_am_i(browser: &Client, status: u16) -> String {
    click(browser, "me").await;
    let condition =
        format!("return document.getElementById('out').textContent.startsWith('{status} ')");
    let describe = "document.getElementById('out').textContent";
    wait_for_script(browser, &condition, describe).await;
    let out = browser.execute("return document.getElementById('out').textContent", vec![]);
    let out = out.await.unwrap().as_str().unwrap().to_owned();
    browser
        .execute("document.getElementById('out').textContent = ''", vec![])
        .await
        .unwrap();
    out
}

/// The page's in-memory access token.
async fn page_access(browser: &Client) -> String {
    let access = browser.execute("return access", vec![]).await.unwrap();
    access
        .as_str()
        .expect("the page holds an access token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_call_the_api_reload_on_the_cookie_alone_and_log_out() {
    let site = Site::start().await;
    with_browser(|browser| async move {
        site.log_in(&browser).await;
        let me = who_am_i(&browser, 200).await;
        assert!(me.contains(&format!("\"username\":\"{USERNAME}\"")), "{me}");
        let before_reload = page_access(&browser).await;
        // A reload forgets the access token; the page gets a new one from the cookie alone.
        browser.refresh().await.unwrap();
        wait_for_text(&browser, "status", "logged in").await;
        let after_reload = page_access(&browser).await;
        assert_ne!(after_reload, before_reload);
        who_am_i(&browser, 200).await;
        let cookies = site.jwtd_cookies(&browser).await;
        click(&browser, "logout").await;
        wait_for_text(&browser, "status", "logged out").await;
        // The session is over: the access token, and a copy of the cookie, no longer work.
        let me = site.app.get_authed(ME, &after_reload).await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        let replay = site
            .post_with_cookies("/api/token/cookie/refresh/", &cookies)
            .await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
        assert!(
            site.jwtd_cookies(&browser).await.refresh.is_none(),
            "cleared"
        );
        // And the page, reloaded, is logged out.
        browser.refresh().await.unwrap();
        wait_for_text(&browser, "status", "logged out").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_never_see_the_refresh_token() {
    let site = Site::start().await;
    with_browser(|browser| async move {
        site.log_in(&browser).await;
        // Record every answer the page reads from here on.
        browser
            .execute(
                "window.seen = []; const fetched = window.fetch;
                 window.fetch = async (...args) => {
                   const response = await fetched(...args);
                   window.seen.push(await response.clone().text());
                   return response;
                 };",
                vec![],
            )
            .await
            .unwrap();
        let refreshed = run_async(&browser, "return await jwtd.refresh();").await;
        assert_eq!(refreshed, Value::Bool(true));
        who_am_i(&browser, 200).await;
        let seen = browser.execute("return window.seen", vec![]).await.unwrap();
        let seen: Vec<String> = serde_json::from_value(seen).unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let cookies = site.jwtd_cookies(&browser).await;
        let refresh = cookies
            .refresh
            .expect("the browser holds the refresh cookie");
        for body in &seen {
            assert!(
                !body.contains(&refresh) && !body.contains("\"refresh\""),
                "{body}"
            );
        }
        // Neither the page's origin nor jwtd's own shows the cookies to scripts.
        let page_cookies = browser
            .execute("return document.cookie", vec![])
            .await
            .unwrap();
        assert_eq!(page_cookies, "");
        assert_eq!(cookies.document_cookie, "");
    })
    .await;
}

/// Both tabs refresh at one instant, however far apart WebDriver reaches them.
const REFRESH_AT_ONCE: &str = "window.result = null;
    setTimeout(() => jwtd.refresh().then((ok) => { window.result = ok; }), arguments[0] - Date.now());";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_refresh_at_once_and_a_stolen_cookie_replayed_after_the_grace_ends_both() {
    let site = Site::start().await;
    with_browser(|browser| async move {
        site.log_in(&browser).await;
        let first = browser.window().await.unwrap();
        let second = browser.new_window(true).await.unwrap().handle;
        browser.switch_to_window(second.clone()).await.unwrap();
        site.open(&browser, "logged in").await;
        let stolen = site.jwtd_cookies(&browser).await;
        let now: f64 =
            serde_json::from_value(browser.execute("return Date.now()", vec![]).await.unwrap())
                .unwrap();
        // Far enough ahead for WebDriver to reach both tabs on a loaded machine.
        let at = Value::from(now + 1000.0);
        for tab in [&first, &second] {
            browser.switch_to_window(tab.clone()).await.unwrap();
            browser
                .execute(REFRESH_AT_ONCE, vec![at.clone()])
                .await
                .unwrap();
        }
        for tab in [&first, &second] {
            browser.switch_to_window(tab.clone()).await.unwrap();
            wait_for_script(&browser, "return window.result !== null", "window.result").await;
            let ok = browser
                .execute("return window.result", vec![])
                .await
                .unwrap();
            assert_eq!(ok, Value::Bool(true), "both tabs refreshed");
            who_am_i(&browser, 200).await;
        }
        // Whether the tabs' requests met in one rotation (the grace gave the later one the same
        // successor) or followed each other on a loaded machine, both succeeded and the session
        // lives; the burst's single rotation is proven over HTTP (`api/cookies.rs`).
        // The stolen copy comes back after the grace: reuse detection ends the session.
        site.app.clock.advance(Duration::from_secs(11));
        let replay = site.post_with_cookies(REFRESH, &stolen).await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
        for tab in [&first, &second] {
            browser.switch_to_window(tab.clone()).await.unwrap();
            who_am_i(&browser, 401).await;
            wait_for_text(&browser, "status", "logged out").await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_reads_nothing_and_its_forms_log_nobody_out() {
    let site = Site::start().await;
    with_browser(|browser| async move {
        site.log_in(&browser).await;
        let app_tab = browser.window().await.unwrap();
        let other = browser.new_window(true).await.unwrap().handle;
        browser.switch_to_window(other).await.unwrap();
        browser.goto(&site.page("evil")).await.unwrap();
        // Its own first refresh is blocked by CORS before any answer can be read.
        for call in [
            "fetch(JWTD + '/health/live')",
            "fetch(JWTD + '/api/users/me/', { credentials: 'include' })",
            "jwtd.login('alice', 'correct horse battery staple')",
            "fetch(JWTD + '/api/token/cookie/refresh/', { method: 'POST', credentials: 'include' })",
        ] {
            let outcome = run_async(&browser, &format!("await {call}; return 'read';")).await;
            assert_eq!(outcome, "threw: TypeError: Failed to fetch", "{call}");
        }
        // A plain form POST (a navigation: no CORS, no custom header) gets 403 and changes nothing.
        for path in ["/api/token/cookie/refresh/", "/api/token/cookie/logout/"] {
            browser.goto(&site.page("evil")).await.unwrap();
            let form = format!(
                "const form = document.createElement('form');
                 form.method = 'POST'; form.action = JWTD + '{path}';
                 document.body.appendChild(form); form.submit();"
            );
            browser.execute(&form, vec![]).await.unwrap();
            let answered = "return document.body.innerText.includes('csrf_failed')";
            wait_for_script(&browser, answered, "document.body.innerText").await;
        }
        browser.switch_to_window(app_tab).await.unwrap();
        let refreshed = run_async(&browser, "return await jwtd.refresh();").await;
        assert_eq!(refreshed, Value::Bool(true), "still logged in");
        who_am_i(&browser, 200).await;
    })
    .await;
}
