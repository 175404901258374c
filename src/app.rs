//! The running service: binds its own listener (port 0 works), reports the port, serves until
//! told to stop, then drains in-flight requests.

use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{EndpointExt, Server};

use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::http;
use crate::state::{AppState, StartupError};

const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct App {
    acceptor: TcpAcceptor,
    port: u16,
    state: Arc<AppState>,
}

impl App {
    pub async fn build(settings: Settings) -> Result<App, StartupError> {
        App::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`App::build`], reading time from `clock` (tests move it forward instead of sleeping).
    pub async fn build_with_clock(
        settings: Settings,
        clock: SharedClock,
    ) -> Result<App, StartupError> {
        let address = settings.server.bind.clone();
        let state = Arc::new(AppState::build(settings, clock).await?);
        let bind_error = |source| StartupError::Bind {
            address: address.clone(),
            source,
        };
        let acceptor = TcpListener::bind(address.clone())
            .into_acceptor()
            .await
            .map_err(bind_error)?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().map(|a| a.port()))
            .ok_or_else(|| bind_error(std::io::Error::other("no local address")))?;
        Ok(App {
            acceptor,
            port,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        tracing::info!(port = self.port, "jwtd listening");
        let endpoint = http::routes(self.state.clone()).map_to_response();
        let result = Server::new_with_acceptor(self.acceptor)
            .idle_timeout(self.state.settings.server.idle_timeout)
            .run_with_graceful_shutdown(endpoint, shutdown, Some(SHUTDOWN_GRACE))
            .await;
        if let Err(err) = self.state.sessions.flush_touches().await {
            tracing::warn!(error = %err, "writing session refresh times at shutdown failed");
        }
        self.state.db.clone().close().await.ok();
        result
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    interrupt.await.ok();
    tracing::info!("shutting down: finishing in-flight requests");
}
