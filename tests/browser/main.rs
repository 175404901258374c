//! The browser transport in a real browser: Debian's chromium driven through chromedriver
//! (WebDriver). jwtd runs as http://auth.jwtd.test:PORT and the example page (examples/spa) as
//! http://app.jwtd.test:PORT2, two origins of one site, so CORS and SameSite work as they do in
//! production; http://evil.jwtd.test:PORT2 is an origin not in `cors.allowed_origins`.
//!
//! Without chromium and chromedriver these tests are skipped with a loud message, except under
//! `CI`, where they fail (`.ci/run` installs both).

mod harness;
mod spa;
mod swagger;
