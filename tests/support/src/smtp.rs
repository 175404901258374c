//! A real SMTP server of the test's own: Python's `aiosmtpd` (PyPI) running `tests/support/
//! smtpd.py` on a free loopback port, storing each message it accepts as a JSON file the test
//! reads. It can be stopped and restarted on the same port (a mail server that is down).
//!
//! The Python is `JWTD_TEST_SMTPD_PYTHON` (`.ci/run` makes a venv with aiosmtpd and sets it), or
//! `python3`. Without aiosmtpd the tests that need it are skipped, loudly; under `CI` they fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ports::{free_port, wait_until_listening};

/// The Python that can run aiosmtpd, if there is one (see the module's documentation).
pub fn smtpd_python() -> Option<PathBuf> {
    let python = std::env::var_os("JWTD_TEST_SMTPD_PYTHON")
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let works = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if works {
        return Some(python);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI is set but {} cannot import aiosmtpd: the email tests must run in CI \
         (.ci/run installs it and sets JWTD_TEST_SMTPD_PYTHON)",
        python.display()
    );
    eprintln!(
        "SKIPPED: {} cannot import aiosmtpd; `pip install aiosmtpd==1.4.6` (or set \
         JWTD_TEST_SMTPD_PYTHON to a Python that has it) to run the email tests",
        python.display()
    );
    None
}

/// An aiosmtpd server, killed on drop.
pub struct SmtpServer {
    python: PathBuf,
    port: u16,
    inbox: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts one, or `None` (skipped, see [`smtpd_python`]) when aiosmtpd cannot run.
    pub fn start() -> Option<SmtpServer> {
        let mut server = SmtpServer {
            python: smtpd_python()?,
            port: free_port(),
            inbox: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// `smtp://127.0.0.1:<port>`, for `email.smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts it (again) on the same port, keeping what it received, and waits until it listens.
    pub fn restart(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtpd.py");
        let mut child = Command::new(&self.python)
            .arg(script)
            .arg(self.port.to_string())
            .arg(self.inbox.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP server starts");
        let mut ready = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready", "smtpd.py did not start");
        self.child = Some(child);
        wait_until_listening(self.port);
    }

    /// Every message received so far, oldest first: `{from, to, subject, content_type, text,
    /// html, mail_from, rcpt_tos}`.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.inbox.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
            .collect()
    }

    /// Waits (up to 30 s) until at least `count` messages have arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} messages after 30 s",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `{uid}` and `{token}` of the link `prefix…/{uid}/{token}` in a message's text.
pub fn link_in(message: &Value, prefix: &str) -> (String, String) {
    let text = message["text"].as_str().expect("a plain-text part");
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {text}"));
    let link = text[start + prefix.len()..]
        .split_whitespace()
        .next()
        .unwrap();
    let (uid, token) = link.split_once('/').unwrap();
    (uid.to_owned(), token.to_owned())
}
