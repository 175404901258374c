//! `jwtd clients …`: register and manage OAuth 2.0 clients.

use clap::{Args, Subcommand};

use super::{CliResult, app_state};
use crate::config::Settings;
use crate::oauth::Client;
use crate::oauth::clients::ClientWithSecret;

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client. Its secret is printed once and stored only as a digest.
    Create(CreateClient),
    /// List clients, one JSON object per line (never a secret).
    List,
    /// Delete a client and revoke the tokens it holds as itself (client credentials).
    Delete(ClientRef),
    /// Give a client a new secret; the old one stops working at once.
    RotateSecret(RotateSecret),
}

#[derive(Debug, Args)]
pub struct CreateClient {
    #[arg(long)]
    name: String,
    /// password, refresh_token or client_credentials; repeat (or separate with commas) for more.
    #[arg(long = "grant", required = true)]
    grants: Vec<String>,
    /// A scope the client may be granted; repeat for more.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Print `{"client_id","client_secret"}` instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ClientRef {
    // Ids made before they were hex may start with '-': still a value, not a flag.
    #[arg(long, allow_hyphen_values = true)]
    client_id: String,
}

#[derive(Debug, Args)]
pub struct RotateSecret {
    #[arg(long, allow_hyphen_values = true)]
    client_id: String,
    /// Print `{"client_id","client_secret"}` instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, command: ClientsCommand) -> CliResult {
    let state = app_state(settings).await?;
    let clients = &state.clients;
    match command {
        ClientsCommand::Create(args) => {
            let created = clients
                .create(&args.name, &args.grants, &args.scopes)
                .await?;
            print_secret(&created, args.json);
        }
        ClientsCommand::List => {
            for client in clients.list().await? {
                println!("{}", client_json(&client));
            }
        }
        ClientsCommand::Delete(args) => {
            clients.delete(&args.client_id).await?;
            eprintln!("jwtd: deleted client {}", args.client_id);
        }
        ClientsCommand::RotateSecret(args) => {
            let rotated = clients.rotate_secret(&args.client_id).await?;
            print_secret(&rotated, args.json);
        }
    }
    Ok(())
}

fn print_secret(created: &ClientWithSecret, json: bool) {
    let id = &created.client.id;
    if json {
        println!(
            "{}",
            serde_json::json!({"client_id": id, "client_secret": created.secret})
        );
    } else {
        println!("client_id:     {id}");
        println!("client_secret: {}", created.secret);
        eprintln!("jwtd: store the secret now; it is not shown again");
    }
}

fn client_json(client: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": client.id,
        "name": client.name,
        "grant_types": client.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scope": client.scope.to_string(),
        "created_at": client.created_at,
        "secret_rotated_at": client.secret_rotated_at,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::Cli;

    #[test]
    fn a_client_id_starting_with_a_hyphen_is_a_value() {
        for command in ["rotate-secret", "delete"] {
            let args = [
                "jwtd",
                "clients",
                command,
                "--client-id",
                "-X8Yhid3IEgYlKhmc",
            ];
            let parsed = Cli::try_parse_from(args);
            assert!(parsed.is_ok(), "{command}: {}", parsed.unwrap_err());
        }
    }
}
