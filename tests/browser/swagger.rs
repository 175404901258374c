//! Swagger UI at /docs, as a person uses it: obtain a token, Authorize with it, read /users/me.

use fantoccini::{Client, Locator};
use serde_json::Value;

use crate::harness::{Site, USERNAME, wait_for_script, with_browser};
use jwtd_test_support::PASSWORD;

/// Sets the value of a field Swagger UI (React) controls and tells React, as typing would,
/// without sending hundreds of keys one by one (seconds each time).
async fn fill(browser: &Client, selector: &str, text: &str) {
    let script = "const field = document.querySelector(arguments[0]);
        const prototype = Object.getPrototypeOf(field);
        Object.getOwnPropertyDescriptor(prototype, 'value').set.call(field, arguments[1]);
        field.dispatchEvent(new Event('input', { bubbles: true }));";
    let args = vec![Value::from(selector), Value::from(text)];
    browser.execute(script, args).await.unwrap();
}

/// Opens an operation, "Try it out" (with `body` filled in as the request body, when given),
/// "Execute"; waits for the answer and returns its status and body as Swagger UI shows them.
async fn try_it_out(browser: &Client, operation: &str, body: Option<&str>) -> (String, String) {
    let block = format!("#operations-{operation}");
    let click = |selector: String| async move {
        let element = browser
            .wait()
            .for_element(Locator::Css(&selector))
            .await
            .unwrap();
        element.click().await.unwrap();
    };
    click(format!("{block} .opblock-summary-control")).await;
    click(format!("{block} .try-out__btn")).await;
    if let Some(body) = body {
        fill(browser, &format!("{block} textarea.body-param__text"), body).await;
    }
    click(format!("{block} .execute")).await;
    let status = format!("{block} .live-responses-table tbody .response-col_status");
    let answered = format!("return document.querySelector('{status}') !== null");
    wait_for_script(browser, &answered, "document.title").await;
    let read = format!(
        "return [document.querySelector('{status}').textContent.trim(),
                 document.querySelector('{block} .live-responses-table .microlight').textContent]"
    );
    let answer = browser.execute(&read, vec![]).await.unwrap();
    serde_json::from_value(answer).unwrap()
}

/// The tag groups in the order shown, and the operations of the first.
const LAYOUT: &str = "const sections = [...document.querySelectorAll('.opblock-tag-section')];
    return [sections.map((s) => s.querySelector('.opblock-tag').dataset.tag),
            [...sections[0].querySelectorAll('.opblock')].map((op) => op.id)];";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_obtains_a_token_authorizes_with_it_and_reads_the_current_user() {
    let site = Site::start().await;
    with_browser(|browser| async move {
        browser.goto(&format!("{}/docs", site.jwtd)).await.unwrap();
        // Token first, its body endpoints in SimpleJWT's order, then the cookie ones; then Users.
        browser
            .wait()
            .for_element(Locator::Css(".opblock"))
            .await
            .unwrap();
        let layout = browser.execute(LAYOUT, vec![]).await.unwrap();
        let (tags, token): (Vec<String>, Vec<String>) = serde_json::from_value(layout).unwrap();
        assert_eq!(tags[..2], ["Token", "Users"]);
        let expected = [
            "token_obtain",
            "token_refresh",
            "token_verify",
            "token_blacklist",
            "token_logout_all",
            "token_cookie_obtain",
            "token_cookie_refresh",
            "token_cookie_logout",
        ];
        assert_eq!(token, expected.map(|id| format!("operations-Token-{id}")));
        let credentials = format!(r#"{{"username": "{USERNAME}", "password": "{PASSWORD}"}}"#);
        let (status, body) = try_it_out(&browser, "Token-token_obtain", Some(&credentials)).await;
        assert_eq!(status, "200", "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let access = body["access"].as_str().unwrap();

        browser
            .find(Locator::Css(".btn.authorize"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let schemes = browser
            .wait()
            .for_element(Locator::Css(".auth-container"))
            .await;
        drop(schemes.unwrap());
        // The dialog lists every security scheme (a user's bearer token, an OAuth client's):
        // fill in and authorize the user's, `BearerAuth`.
        let authorize = "const scheme = [...document.querySelectorAll('.auth-container')]
                .find((element) => element.textContent.includes('BearerAuth'));
            const field = scheme.querySelector(\"input[aria-label='auth-bearer-value']\");
            const prototype = Object.getPrototypeOf(field);
            Object.getOwnPropertyDescriptor(prototype, 'value').set.call(field, arguments[0]);
            field.dispatchEvent(new Event('input', { bubbles: true }));
            scheme.querySelector('button.authorize').click();";
        browser
            .execute(authorize, vec![Value::from(access)])
            .await
            .unwrap();
        // The dialog lists every security scheme and can be taller than the window: close it
        // by script rather than by a click at a point that may be scrolled away.
        browser
            .execute("document.querySelector('.btn-done').click()", vec![])
            .await
            .unwrap();

        let (status, body) = try_it_out(&browser, "Users-users_me_read", None).await;
        assert_eq!(status, "200", "{body}");
        let user: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(user["username"], USERNAME);
    })
    .await;
}
