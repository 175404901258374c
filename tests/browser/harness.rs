//! One chromedriver for the whole binary, a fresh browser profile per test, jwtd and the example
//! page on their host names, and waiting on the page's state instead of sleeping.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use poem::endpoint::make_sync;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Html;
use poem::{Response, Route, Server};
use serde_json::{Value, json};

use jwtd_test_support::{Backend, TestApp, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to reach a state before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// chromedriver's URL, started once; `None` when the browser is not installed (outside CI).
fn driver() -> Option<&'static str> {
    static DRIVER: OnceLock<Option<String>> = OnceLock::new();
    DRIVER.get_or_init(start_driver).as_deref()
}

fn start_driver() -> Option<String> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing: the browser tests must run \
             in CI (apt-get install chromium chromium-driver; .ci/run does it)"
        );
        eprintln!(
            "\n*** SKIPPED: the browser tests need {CHROMIUM} and {CHROMEDRIVER} \
             (apt-get install chromium chromium-driver) ***\n"
        );
        return None;
    }
    let port = free_port();
    let (started, outcome) = std::sync::mpsc::channel();
    // chromedriver dies with the thread that started it (PR_SET_PDEATHSIG): a thread that lives
    // as long as the test binary, so no driver outlives the tests, even after a panic.
    std::thread::spawn(move || {
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        started.send(command.spawn().map(drop)).unwrap();
        loop {
            std::thread::park();
        }
    });
    outcome.recv().unwrap().expect("chromedriver starts");
    jwtd_test_support::ports::wait_until_listening(port);
    Some(format!("http://127.0.0.1:{port}"))
}

/// Runs `test` with a fresh headless chromium, which is closed afterwards even if it panics.
pub async fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(driver) = driver() else { return };
    // Both providers are compiled in; any one will do for plain HTTP to the driver.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let profile = tempfile::tempdir().unwrap();
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP *.jwtd.test 127.0.0.1",
    ]
    .map(str::to_owned);
    let mut args = args.to_vec();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let options = json!({ "binary": CHROMIUM, "args": args });
    let capabilities = serde_json::Map::from_iter([("goog:chromeOptions".to_owned(), options)]);
    let client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(driver)
        .await
        .expect("chromedriver opens a chromium session");
    let outcome = AssertUnwindSafe(test(client.clone())).catch_unwind().await;
    client.close().await.ok();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// jwtd with the browser transport for plain HTTP, the example page's server, and their URLs.
pub struct Site {
    pub app: TestApp,
    /// http://auth.jwtd.test:PORT
    pub jwtd: String,
    page_port: u16,
}

pub const USERNAME: &str = "alice";

impl Site {
    pub async fn start() -> Site {
        let page_port = serve_example_page().await;
        let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
            settings.cookies.enabled = true;
            settings.cookies.secure = false;
            let origin = format!("http://app.jwtd.test:{page_port}");
            settings.cors.allowed_origins = vec![origin];
        })
        .await;
        let port = app.address.rsplit(':').next().unwrap().to_owned();
        let jwtd = format!("http://auth.jwtd.test:{port}");
        let password = jwtd_test_support::PASSWORD;
        app.create_named_user(USERNAME, password).await;
        Site {
            app,
            jwtd,
            page_port,
        }
    }

    /// The example page on `host` (`app` is allowed by CORS, anything else is not).
    pub fn page(&self, host: &str) -> String {
        let port = self.page_port;
        format!("http://{host}.jwtd.test:{port}/?jwtd={}", self.jwtd)
    }

    /// Opens the page and waits for its first refresh attempt to settle.
    pub async fn open(&self, browser: &Client, expected_status: &str) {
        browser.goto(&self.page("app")).await.unwrap();
        wait_for_text(browser, "status", expected_status).await;
    }

    /// Logs in through the page's form.
    pub async fn log_in(&self, browser: &Client) {
        self.open(browser, "logged out").await;
        type_into(browser, "username", USERNAME).await;
        type_into(browser, "password", jwtd_test_support::PASSWORD).await;
        browser
            .find(Locator::Id("login"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for_text(browser, "status", "logged in").await;
    }

    /// jwtd's cookies as the browser holds them (WebDriver sees HttpOnly ones), read in a tab of
    /// their own on jwtd's origin under the cookies' path; also `document.cookie` there.
    pub async fn jwtd_cookies(&self, browser: &Client) -> JwtdCookies {
        let page = browser.window().await.unwrap();
        let tab = browser.new_window(true).await.unwrap().handle;
        browser.switch_to_window(tab).await.unwrap();
        let under_cookie_path = format!("{}/api/token/cookie/refresh/", self.jwtd);
        browser.goto(&under_cookie_path).await.unwrap();
        let cookies = browser.get_all_cookies().await.unwrap();
        let script_sees = browser.execute("return document.cookie", vec![]).await;
        browser.close_window().await.unwrap();
        browser.switch_to_window(page).await.unwrap();
        let find = |name: &str| {
            let cookie = cookies.iter().find(|c| c.name() == name)?;
            assert_eq!(cookie.http_only(), Some(true), "{name} is HttpOnly");
            Some(cookie.value().to_owned())
        };
        JwtdCookies {
            refresh: find("jwtd_refresh"),
            csrf: find("jwtd_csrf"),
            document_cookie: script_sees.unwrap().as_str().unwrap().to_owned(),
        }
    }

    /// POSTs to a cookie endpoint outside the browser, as a thief holding a copy of the cookies.
    pub async fn post_with_cookies(&self, path: &str, cookies: &JwtdCookies) -> reqwest::Response {
        let (refresh, csrf) = (cookies.refresh.as_ref(), cookies.csrf.as_ref());
        let (refresh, csrf) = (refresh.unwrap(), csrf.unwrap());
        (self.app.client.post(self.app.url(path)))
            .header(
                "cookie",
                format!("jwtd_refresh={refresh}; jwtd_csrf={csrf}"),
            )
            .header("x-csrf-token", csrf)
            .send()
            .await
            .unwrap()
    }
}

pub struct JwtdCookies {
    pub refresh: Option<String>,
    pub csrf: Option<String>,
    /// What a script on jwtd's own origin reads: HttpOnly cookies never show.
    pub document_cookie: String,
}

/// Serves examples/spa on 127.0.0.1 (every *.jwtd.test name reaches it); returns the port.
async fn serve_example_page() -> u16 {
    const INDEX: &str = include_str!("../../examples/spa/index.html");
    const SCRIPT: &str = include_str!("../../examples/spa/app.js");
    let routes = Route::new().at("/", make_sync(|_| Html(INDEX))).at(
        "/app.js",
        make_sync(|_| {
            Response::builder()
                .content_type("text/javascript")
                .body(SCRIPT)
        }),
    );
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let address = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(routes));
    address.port()
}

pub async fn type_into(browser: &Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.send_keys(text).await.unwrap();
}

pub async fn click(browser: &Client, id: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits until the element's text is `expected`.
pub async fn wait_for_text(browser: &Client, id: &str, expected: &str) {
    let script = format!("return document.getElementById('{id}')?.textContent === {expected:?}");
    let last = format!("document.getElementById('{id}')?.textContent");
    wait_for_script(browser, &script, &last).await;
}

/// Waits until `condition` (a script returning a boolean) holds; on timeout, fails showing what
/// `describe` (an expression) evaluates to.
pub async fn wait_for_script(browser: &Client, condition: &str, describe: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if browser.execute(condition, vec![]).await.ok() == Some(Value::Bool(true)) {
            return;
        }
        if Instant::now() > deadline {
            let seen = browser.execute(&format!("return {describe}"), vec![]).await;
            panic!("waited {PATIENCE:?} for `{condition}`; {describe} = {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs an async script body (`await` allowed) in the page and returns what it returns.
pub async fn run_async(browser: &Client, body: &str) -> Value {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         (async () => {{ {body} }})().then(done, (error) => done('threw: ' + error));"
    );
    browser.execute_async(&script, vec![]).await.unwrap()
}
