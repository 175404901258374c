//! `jwtd healthcheck`: asks the server running beside it whether it is ready, for container
//! health checks in an image that holds no curl. Exit status 0 only on a 200.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use anyhow::{Context, anyhow, bail};

use super::CliResult;
use crate::config::Settings;

/// The most of an answer read: its status line and a short body are all that is shown.
const MAX_ANSWER_BYTES: u64 = 4096;

#[derive(Debug, Args)]
pub struct Healthcheck {
    /// Ask /health/live (the process answers) instead of /health/ready (its stores too).
    #[arg(long)]
    live: bool,
    /// Give up after this long.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub async fn run(settings: &Settings, args: Healthcheck) -> CliResult {
    let address = local_address(&settings.server.bind)?;
    let path = if args.live {
        "/health/live"
    } else {
        "/health/ready"
    };
    let answer = tokio::time::timeout(args.timeout, get(address, path))
        .await
        .map_err(|_| anyhow!("no answer from {address}{path} within {:?}", args.timeout))?
        .with_context(|| format!("cannot reach {address}{path}"))?;
    let status_line = answer.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) == Some("200") {
        return Ok(());
    }
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    bail!("not ready: {status_line} {body}")
}

/// Where to reach a server bound to `bind`: a wildcard address is reached on loopback.
fn local_address(bind: &str) -> anyhow::Result<SocketAddr> {
    let mut address: SocketAddr = bind
        .parse()
        .map_err(|_| anyhow!("server.bind {bind:?} is not an IP address and port"))?;
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => address.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => address.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    Ok(address)
}

async fn get(address: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut answer)
        .await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_is_reached_on_loopback() {
        assert_eq!(
            local_address("0.0.0.0:8000").unwrap().to_string(),
            "127.0.0.1:8000"
        );
        assert_eq!(local_address("[::]:9").unwrap().to_string(), "[::1]:9");
        assert_eq!(
            local_address("10.1.2.3:80").unwrap().to_string(),
            "10.1.2.3:80"
        );
        assert!(local_address("localhost:8000").is_err());
    }
}
