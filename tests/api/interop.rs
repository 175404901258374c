//! A real, independent client: PyJWT's `PyJWKClient` and Authlib's OAuth 2.0 client (pinned in
//! tests/interop/requirements.txt, installed from PyPI into a venv under target/) run
//! tests/interop/test_interop.py against jwtd. A missing Python or PyPI fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use jsonwebtoken::Algorithm;
use sha2::{Digest, Sha256};

use crate::keys::{key_files, spawn_signing_with};
use jwtd_test_support::PASSWORD;

const REQUIREMENTS: &str = include_str!("../interop/requirements.txt");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_and_authlib_work_against_jwtd() {
    let python = tokio::task::spawn_blocking(interop_python).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let (private, _) = key_files(dir.path(), algorithm, &format!("{algorithm:?}"));
        let app = spawn_signing_with(dir.path(), algorithm, &private, &[]).await;
        let user = app.create_user().await;
        let grants = ["password", "refresh_token", "client_credentials"].map(String::from);
        let client = app
            .state
            .clients
            .create("authlib", &grants, &["read".into(), "write".into()])
            .await
            .unwrap();
        let mut command = Command::new(&python);
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/test_interop.py"))
            .env("JWTD_URL", &app.address)
            .env("JWTD_CLIENT_ID", &client.client.id)
            .env("JWTD_CLIENT_SECRET", &client.secret)
            .env("JWTD_USERNAME", &user.username)
            .env("JWTD_PASSWORD", PASSWORD)
            .env("JWTD_USER_ID", user.id.to_string())
            .env("JWTD_ALGORITHM", format!("{algorithm:?}"));
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{algorithm:?}:\n{report}");
        assert_eq!(report.matches("ok test_").count(), 4, "{report}");
    }
}

/// The venv's interpreter, created (once per requirements version) under the target directory.
fn interop_python() -> PathBuf {
    let digest = Sha256::digest(REQUIREMENTS.as_bytes());
    let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("interop-venv-{tag}"));
    let python = venv.join("bin/python");
    let ready = venv.join(".installed");
    if ready.exists() {
        return python;
    }
    let base = std::env::var("JWTD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&base)
        .args(["-m", "venv", "--clear"])
        .arg(&venv));
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/requirements.txt");
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements));
    std::fs::write(ready, REQUIREMENTS).unwrap();
    python
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
