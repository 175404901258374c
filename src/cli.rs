//! The `jwtd` command line: `serve` (the default), `migrate`, `users create`, `openapi`.
//! Every command reads the same configuration as the server.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::accounts::{validate_email, validate_password, validate_username};
use crate::config::Settings;
use crate::password::Passwords;
use crate::store::db;
use crate::store::users::{NewUser, UserRepository};
use crate::{App, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "jwtd",
    version,
    about = "A standalone, SimpleJWT-compatible token service"
)]
pub struct Cli {
    /// Directory holding default.toml and {JWTD_ENV}.toml.
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
    Users(UsersCommand),
    /// Print the OpenAPI specification (JSON) to standard output.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user. The password comes from --password, else standard input when it is not a
    /// terminal, else a prompt.
    Create(CreateUser),
}

#[derive(Debug, Args)]
struct CreateUser {
    #[arg(long)]
    username: String,
    #[arg(long, default_value = "")]
    email: String,
    /// Make the user staff (administrator).
    #[arg(long)]
    staff: bool,
    /// The password (visible in the process list: prefer stdin or the prompt).
    #[arg(long)]
    password: Option<String>,
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        println!("{}", crate::http::openapi().spec());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::load(&cli.config_dir) {
        Ok(settings) => settings,
        Err(err) => return fail(&err),
    };
    telemetry::init(&settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Users(UsersCommand::Create(args)) => create_user(settings, args).await,
        Command::Openapi => unreachable!("handled before loading the configuration"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&*err),
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("jwtd: {err}");
    ExitCode::FAILURE
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

async fn create_user(settings: Settings, args: CreateUser) -> CliResult {
    let username = args.username.trim().to_owned();
    let password = match args.password {
        Some(password) => password,
        None => read_password()?,
    };
    let problems = [
        validate_username(&username),
        validate_email(&args.email),
        validate_password(&password, &username, &args.email),
    ]
    .concat();
    if !problems.is_empty() {
        return Err(problems.join(" ").into());
    }
    let db = db::connect(&settings.database).await?;
    db::migrate(&db).await?;
    let password_hash = Passwords::new(&settings.password)?.hash(password).await?;
    let new = NewUser {
        username,
        email: args.email,
        password_hash,
        is_staff: args.staff,
    };
    let user = UserRepository::new(db)
        .create(new, chrono::Utc::now())
        .await?;
    let shown = serde_json::json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "date_joined": user.date_joined,
        "last_login": user.last_login,
    });
    println!("{shown}");
    Ok(())
}

/// From standard input when it is piped (one line, newline removed), else a no-echo prompt.
fn read_password() -> Result<String, Box<dyn std::error::Error>> {
    if !std::io::stdin().is_terminal() {
        let mut input = String::new();
        std::io::stdin().take(4096).read_to_string(&mut input)?;
        let line = input.lines().next().unwrap_or_default();
        return Ok(line.to_owned());
    }
    let password = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Password (again): ")?;
    if password != again {
        return Err("the passwords did not match".into());
    }
    Ok(password)
}
