//! The running service: binds its own listeners (the API's and, with `server.metrics_bind`,
//! the metrics'; port 0 works), reports their ports, serves until told to stop, then drains
//! in-flight requests.

use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener as _, TcpAcceptor, TcpListener};
use poem::{Endpoint, EndpointExt, Server};
use tokio::sync::watch;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::http;
use crate::http::idle::{IdleClosingAcceptor, IdleLimits};
use crate::state::{AppState, StartupError};

const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct App {
    api: Listener,
    /// `server.metrics_bind`: `GET /metrics` alone, away from the API port.
    metrics: Option<Listener>,
    state: Arc<AppState>,
}

/// A bound socket and the port it got (a configured port 0 gets a free one).
struct Listener {
    acceptor: TcpAcceptor,
    port: u16,
}

impl Listener {
    async fn bind(address: &str) -> Result<Listener, StartupError> {
        let bind_error = |source| StartupError::Bind {
            address: address.to_owned(),
            source,
        };
        let acceptor = TcpListener::bind(address.to_owned())
            .into_acceptor()
            .await
            .map_err(bind_error)?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().map(|a| a.port()))
            .ok_or_else(|| bind_error(std::io::Error::other("no local address")))?;
        Ok(Listener { acceptor, port })
    }

    /// Serves `endpoint` until `stopped`, then lets in-flight requests finish.
    async fn serve(
        self,
        endpoint: impl Endpoint + 'static,
        idle: IdleLimits,
        stopped: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        Server::new_with_acceptor(IdleClosingAcceptor::new(self.acceptor, idle))
            .run_with_graceful_shutdown(endpoint, stopped, Some(SHUTDOWN_GRACE))
            .await
    }
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
        let api_address = settings.server.bind.clone();
        let metrics_address = settings.server.metrics_bind.clone();
        let state = Arc::new(AppState::build(settings, clock).await?);
        let api = Listener::bind(&api_address).await?;
        let metrics = match metrics_address {
            Some(address) => Some(Listener::bind(&address).await?),
            None => None,
        };
        Ok(App {
            api,
            metrics,
            state,
        })
    }

    /// The API's port.
    pub fn port(&self) -> u16 {
        self.api.port
    }

    /// The port `GET /metrics` is served on when `server.metrics_bind` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|listener| listener.port)
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish on every listener.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        tracing::info!(port = self.api.port, "jwtd listening");
        let idle = IdleLimits::from_settings(&self.state.settings.server);
        // Both listeners stop together: dropping `stop` wakes every `stopped()`.
        let (stop, stopped) = watch::channel(());
        let stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                stopped.changed().await.ok();
            }
        };
        let signal = async move {
            shutdown.await;
            drop(stop);
            Ok(())
        };
        let api_routes = http::routes(self.state.clone());
        let api = self.api.serve(api_routes, idle, stopped());
        let metrics = async {
            let Some(listener) = self.metrics else {
                return Ok(());
            };
            tracing::info!(port = listener.port, "jwtd serving /metrics");
            let routes = http::metrics_routes(self.state.clone()).map_to_response();
            listener.serve(routes, idle, stopped()).await
        };
        // The outbox sender and the email requests run while the listeners do.
        let email = async {
            self.state.email.run().await;
            Ok(())
        };
        // A listener that fails ends the other too (its `serve` is dropped).
        let result = tokio::select! {
            result = async { tokio::try_join!(signal, api, metrics).map(|_| ()) } => result,
            result = email => result,
        };
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
