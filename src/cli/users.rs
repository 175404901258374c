//! `jwtd users …`: the same account service as the HTTP API (one validation, one hashing path,
//! one user JSON), so a command revokes tokens exactly as the API does.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use poem_openapi::types::ToJSON;

use super::{CliResult, app_state, read_password};
use crate::accounts::{AccountError, AccountService, GrantService, NewAccount, User};
use crate::config::Settings;
use crate::http::schemas::GrantedUserBody;
use crate::store::users::{AdminChange, UserFilter};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
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
    /// Queue a password-reset mail to the user's address (outside the per-address limits); a
    /// running jwtd sends it.
    SendReset(UserRef),
    /// Add groups (--group NAME) and permissions (--perm app_label.codename) to a user; prints
    /// the user with their groups and effective permissions.
    Grant(super::groups::Grant),
}

#[derive(Debug, Args)]
pub struct ListUsers {
    /// Only usernames containing this.
    #[arg(long)]
    username: Option<String>,
    /// Only active (true) or inactive (false) users.
    #[arg(long)]
    active: Option<bool>,
}

#[derive(Debug, Args)]
pub struct UserRef {
    #[arg(long)]
    username: String,
}

#[derive(Debug, Args)]
pub struct SetPassword {
    #[arg(long)]
    username: String,
    /// The password (visible in the process list: prefer stdin or the prompt).
    #[arg(long)]
    password: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateUser {
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

pub async fn run(settings: Settings, command: UsersCommand) -> CliResult {
    // Read before connecting: a prompt should not wait behind the database.
    let password = match &command {
        UsersCommand::Create(CreateUser { password, .. })
        | UsersCommand::SetPassword(SetPassword { password, .. }) => match password {
            Some(password) => Some(password.clone()),
            None => Some(read_password()?),
        },
        _ => None,
    };
    let state = app_state(settings).await?;
    let accounts = &state.accounts;
    let grants = &state.grants;
    match command {
        UsersCommand::Create(args) => {
            let account = NewAccount {
                username: args.username.trim().to_owned(),
                email: args.email,
                password: password.unwrap_or_default(),
                is_staff: args.staff,
            };
            let user = accounts.create(account).await?;
            println!("{}", user_json(grants, user).await?);
        }
        UsersCommand::List(args) => list(accounts, grants, args).await?,
        UsersCommand::SetPassword(args) => {
            let user = named(accounts, &args.username).await?;
            accounts
                .set_password(&user, password.unwrap_or_default(), "password")
                .await?;
            eprintln!(
                "jwtd: password of {} changed; every token of theirs is revoked",
                user.username
            );
        }
        UsersCommand::Deactivate(args) => {
            let user = named(accounts, &args.username).await?;
            let change = AdminChange {
                is_active: Some(false),
                ..Default::default()
            };
            let user = accounts.admin_update(user.id, change).await?;
            println!("{}", user_json(grants, user).await?);
        }
        UsersCommand::Delete(args) => {
            let user = named(accounts, &args.username).await?;
            accounts.delete_user(user.id).await?;
            eprintln!(
                "jwtd: deleted {}; every token of theirs is revoked",
                user.username
            );
        }
        UsersCommand::SendReset(args) => {
            let user = named(accounts, &args.username).await?;
            let address = state.email.send_reset_to(&user.username).await?;
            eprintln!("jwtd: a password-reset mail to {address} is queued");
        }
        UsersCommand::Grant(args) => {
            let user = super::groups::grant(&state, args).await?;
            println!(
                "{}",
                GrantedUserBody::from(user).to_json().unwrap_or_default()
            );
        }
    }
    Ok(())
}

async fn list(accounts: &AccountService, grants: &GrantService, args: ListUsers) -> CliResult {
    const PAGE_SIZE: u64 = 500;
    for page in 1.. {
        let filter = UserFilter {
            username: args.username.clone(),
            email: None,
            is_active: args.active,
        };
        let (users, total) = accounts.list(filter, page, PAGE_SIZE).await?;
        for user in grants.with_grants(users).await? {
            println!(
                "{}",
                GrantedUserBody::from(user).to_json().unwrap_or_default()
            );
        }
        if page * PAGE_SIZE >= total {
            break;
        }
    }
    Ok(())
}

async fn named(accounts: &AccountService, username: &str) -> anyhow::Result<User> {
    accounts
        .user_named(username)
        .await
        .map_err(|err| match err {
            AccountError::NotFound => anyhow!("no user named {username:?}"),
            other => other.into(),
        })
}

/// A user as the API shows it (never the password hash), with their grants.
async fn user_json(grants: &GrantService, user: User) -> anyhow::Result<serde_json::Value> {
    let user = grants.with_grants(vec![user]).await?.remove(0);
    Ok(GrantedUserBody::from(user).to_json().unwrap_or_default())
}
