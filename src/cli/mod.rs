//! The `jwtd` command line: `serve` (the default), `migrate`, `users …`, `clients …`,
//! `keys generate`, `openapi`. Every command reads the same configuration as the server.

mod clients;
mod healthcheck;
mod keys;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use std::sync::Arc;

use crate::accounts::{AccountError, validate_email, validate_password, validate_username};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::password::Passwords;
use crate::state::AppState;
use crate::store::db;
use crate::store::users::{AdminChange, NewUser, User, UserFilter, UserRepository};
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
    Users(UsersCommand),
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

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user. The password comes from --password, else standard input when it is not a
    /// terminal, else a prompt.
    Create(CreateUser),
    /// List users, one JSON object per line.
    List(ListUsers),
    /// Set a user's password (read like `create`'s) and revoke every token of the user.
    SetPassword(SetPassword),
    /// Deactivate a user and revoke every token of the user.
    Deactivate(UserRef),
    /// Delete a user and revoke every token of the user.
    Delete(UserRef),
}

#[derive(Debug, Args)]
struct ListUsers {
    /// Only usernames containing this.
    #[arg(long)]
    username: Option<String>,
    /// Only active (true) or inactive (false) users.
    #[arg(long)]
    active: Option<bool>,
}

#[derive(Debug, Args)]
struct UserRef {
    #[arg(long)]
    username: String,
}

#[derive(Debug, Args)]
struct SetPassword {
    #[arg(long)]
    username: String,
    /// The password (visible in the process list: prefer stdin or the prompt).
    #[arg(long)]
    password: Option<String>,
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
    // These need no configuration.
    match cli.command {
        Some(Command::Openapi) => {
            println!("{}", crate::http::openapi().spec());
            return ExitCode::SUCCESS;
        }
        Some(Command::Keys(command)) => {
            return match keys::run(command) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&*err),
            };
        }
        _ => {}
    }
    let settings = match Settings::load(&cli.config_dir) {
        Ok(settings) => settings,
        Err(err) => return fail(&err),
    };
    if let Some(Command::Healthcheck(args)) = cli.command {
        return match healthcheck::run(&settings, args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&*err),
        };
    }
    telemetry::init(&settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Users(UsersCommand::Create(args)) => create_user(settings, args).await,
        Command::Users(UsersCommand::List(args)) => list_users(settings, args).await,
        Command::Users(UsersCommand::SetPassword(args)) => set_password(settings, args).await,
        Command::Users(UsersCommand::Deactivate(args)) => deactivate(settings, args).await,
        Command::Users(UsersCommand::Delete(args)) => delete_user(settings, args).await,
        Command::Clients(command) => clients::run(settings, command).await,
        Command::Openapi | Command::Keys(_) | Command::Healthcheck(_) => {
            unreachable!("handled before")
        }
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
    println!("{}", user_json(&user));
    Ok(())
}

/// A user as the API shows it: never the password hash.
fn user_json(user: &User) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "date_joined": user.date_joined,
        "last_login": user.last_login,
    })
}

async fn list_users(settings: Settings, args: ListUsers) -> CliResult {
    let db = db::connect(&settings.database).await?;
    db::migrate(&db).await?;
    let users = UserRepository::new(db);
    const PAGE_SIZE: u64 = 500;
    for page in 1.. {
        let filter = UserFilter {
            username: args.username.clone(),
            email: None,
            is_active: args.active,
        };
        let (users, total) = users.list(filter, page, PAGE_SIZE).await?;
        for user in &users {
            println!("{}", user_json(user));
        }
        if page * PAGE_SIZE >= total {
            break;
        }
    }
    Ok(())
}

/// The full application state: these commands revoke tokens like the API does.
async fn state_and_user(
    settings: Settings,
    username: &str,
) -> Result<(AppState, User), Box<dyn std::error::Error>> {
    let state = AppState::build(settings, Arc::new(SystemClock)).await?;
    let user = state
        .users
        .find_by_username(username)
        .await?
        .ok_or_else(|| format!("no user named {username:?}"))?;
    Ok((state, user))
}

async fn set_password(settings: Settings, args: SetPassword) -> CliResult {
    let password = match args.password {
        Some(password) => password,
        None => read_password()?,
    };
    let (state, user) = state_and_user(settings, &args.username).await?;
    let problems = validate_password(&password, &user.username, &user.email);
    if !problems.is_empty() {
        return Err(problems.join(" ").into());
    }
    let hash = state.passwords.hash(password).await?;
    state.users.set_password_hash(user.id, hash).await?;
    state.tokens.revoke_all_of_user(user.id).await?;
    eprintln!(
        "jwtd: password of {} changed; every token of theirs is revoked",
        user.username
    );
    Ok(())
}

async fn deactivate(settings: Settings, args: UserRef) -> CliResult {
    let (state, user) = state_and_user(settings, &args.username).await?;
    let change = AdminChange {
        is_active: Some(false),
        ..Default::default()
    };
    let user = state
        .accounts
        .admin_update(user.id, change)
        .await
        .map_err(account_error)?;
    println!("{}", user_json(&user));
    Ok(())
}

async fn delete_user(settings: Settings, args: UserRef) -> CliResult {
    let (state, user) = state_and_user(settings, &args.username).await?;
    state
        .accounts
        .delete_user(user.id)
        .await
        .map_err(account_error)?;
    eprintln!(
        "jwtd: deleted {}; every token of theirs is revoked",
        user.username
    );
    Ok(())
}

fn account_error(err: AccountError) -> Box<dyn std::error::Error> {
    match err {
        AccountError::Invalid(fields) => format!("{fields:?}").into(),
        other => other.to_string().into(),
    }
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
