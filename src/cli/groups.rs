//! `jwtd groups …` and `jwtd users grant`: the same grant service as the staff API, so a
//! command validates, invalidates caches and revokes exactly as the API does.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use poem_openapi::types::ToJSON;

use super::{CliResult, app_state};
use crate::accounts::{AccountError, GrantService, Group};
use crate::config::Settings;
use crate::http::groups::GroupBody;
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Create a group with permissions (`app_label.codename`); prints it as JSON.
    Create(CreateGroup),
    /// List groups, one JSON object per line.
    List,
}

#[derive(Debug, Args)]
pub struct CreateGroup {
    #[arg(long)]
    name: String,
    /// A permission of the group, e.g. orders.change; repeat for more.
    #[arg(long = "perm")]
    perms: Vec<String>,
}

/// `jwtd users grant`: adds groups and permissions to a user (never takes any away).
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("grant").required(true).multiple(true).args(["groups", "perms"]))]
pub struct Grant {
    #[arg(long)]
    username: String,
    /// A group (by name) to add the user to; repeat for more.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// A permission to give the user, e.g. orders.change; repeat for more.
    #[arg(long = "perm")]
    perms: Vec<String>,
}

pub async fn run(settings: Settings, command: GroupsCommand) -> CliResult {
    let state = app_state(settings).await?;
    let grants = &state.grants;
    match command {
        GroupsCommand::Create(args) => {
            let group = grants.create_group(args.name, args.perms).await?;
            println!("{}", group_json(group));
        }
        GroupsCommand::List => {
            for group in grants.groups().await? {
                println!("{}", group_json(group));
            }
        }
    }
    Ok(())
}

/// Adds every group and permission named, then prints the user with their grants.
pub async fn grant(state: &AppState, args: Grant) -> anyhow::Result<crate::accounts::GrantedUser> {
    let grants = &state.grants;
    let user = state
        .accounts
        .user_named(&args.username)
        .await
        .map_err(|err| not_found_as(err, || anyhow!("no user named {:?}", args.username)))?;
    for name in &args.groups {
        let group = group_named(grants, name).await?;
        grants.add_user_group(user.id, group.id).await?;
    }
    for perm in args.perms {
        grants.add_user_permission(user.id, perm).await?;
    }
    Ok(grants.granted(user.id).await?)
}

async fn group_named(grants: &GrantService, name: &str) -> anyhow::Result<Group> {
    grants
        .group_named(name)
        .await
        .map_err(|err| not_found_as(err, || anyhow!("no group named {name:?}")))
}

fn not_found_as(err: AccountError, message: impl FnOnce() -> anyhow::Error) -> anyhow::Error {
    match err {
        AccountError::NotFound => message(),
        other => other.into(),
    }
}

fn group_json(group: Group) -> serde_json::Value {
    GroupBody::from(group).to_json().unwrap_or_default()
}
