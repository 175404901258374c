use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    jwtd::cli::run().await
}
