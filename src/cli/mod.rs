//! The `jwtd` command line: `serve` (the default), `migrate`, `users …`, `clients …`,
//! `keys generate`, `openapi`. Every command reads the same configuration as the server.

mod clients;
mod groups;
mod healthcheck;
mod keys;
mod users;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::state::AppState;
use crate::store::db;
use crate::{App, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "jwtd",
    version,
    about = "A standalone, SimpleJWT-compatible token service"
)]
pub struct Cli {
    /// Directory holding default.toml and {JWTD_ENV}.toml (development.toml, production.toml).
    #[arg(long, env = "JWTD_CONFIG_DIR", default_value = "config", global = true)]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default command).
    Serve,
    /// Create or update the database schema, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Manage groups of permissions.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Manage OAuth 2.0 clients.
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Print the OpenAPI specification (JSON) to standard output.
    Openapi,
    /// Ask the server at `server.bind` whether it is ready; exit 0 only on 200 (for container
    /// health checks).
    Healthcheck(healthcheck::Healthcheck),
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    // These need no configuration.
    match cli.command {
        Some(Command::Openapi) => {
            println!("{}", crate::http::openapi_spec());
            return ExitCode::SUCCESS;
        }
        Some(Command::Keys(command)) => {
            return match keys::run(command) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(err),
            };
        }
        _ => {}
    }
    let settings = match Settings::load(&cli.config_dir) {
        Ok(settings) => settings,
        Err(err) => return fail(err.into()),
    };
    if let Some(Command::Healthcheck(args)) = cli.command {
        return match healthcheck::run(&settings, args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(err),
        };
    }
    let _log = telemetry::init(&settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Users(command) => users::run(settings, command).await,
        Command::Groups(command) => groups::run(settings, command).await,
        Command::Clients(command) => clients::run(settings, command).await,
        Command::Openapi | Command::Keys(_) | Command::Healthcheck(_) => {
            unreachable!("handled before")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(err),
    }
}

type CliResult = anyhow::Result<()>;

/// The error and every cause under it, on one line.
fn fail(err: anyhow::Error) -> ExitCode {
    eprintln!("jwtd: {}", crate::outage::chain(err.as_ref()));
    ExitCode::FAILURE
}

/// The full application state: commands that change users or clients revoke tokens as the API
/// does, through the same services.
async fn app_state(settings: Settings) -> anyhow::Result<AppState> {
    Ok(AppState::build(settings, Arc::new(SystemClock)).await?)
}

async fn serve(settings: Settings) -> CliResult {
    let app = App::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(settings: Settings) -> CliResult {
    let db = db::connect(&settings.database).await?;
    db::migrate(&db).await?;
    eprintln!("jwtd: database schema is up to date");
    Ok(())
}

/// From standard input when it is piped (one line, newline removed), else a no-echo prompt.
fn read_password() -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut input = String::new();
        std::io::stdin().take(4096).read_to_string(&mut input)?;
        let line = input.lines().next().unwrap_or_default();
        return Ok(line.to_owned());
    }
    let password = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Password (again): ")?;
    if password != again {
        bail!("the passwords did not match");
    }
    Ok(password)
}
