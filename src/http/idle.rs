//! `server.idle_timeout`: a connection with no traffic in either direction for that long is
//! closed.
//!
//! poem's own `Server::idle_timeout` runs a watchdog task per connection and wakes it on every
//! read and write, which then re-arms a timer: a task wakeup and a timer-wheel update (under
//! its lock) for each I/O call, a few per request. Here each connection only notes when it was
//! last active; its one deadline is re-armed when it fires, once per idle period, and an expired
//! connection reads as closed, so hyper ends it the way it ends one the client closed.
//!
//! Never while a request on it may still be answered: hyper drops a request whose connection
//! ends, answer and all, where poem's watchdog shut the connection down gracefully. Every
//! request is answered (or refused, 408) within `server.request_timeout` of its last byte, so
//! a connection stays open that long after its last read, whatever `server.idle_timeout` says.

use std::io::{IoSlice, Result as IoResult};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::ServerSettings;

/// When a connection counts as idle.
#[derive(Debug, Clone, Copy)]
pub struct IdleLimits {
    /// `server.idle_timeout`: no traffic in either direction for this long.
    pub idle: Duration,
    /// How long after its last read a request on the connection may still be answered:
    /// `server.request_timeout`, and a second to write the answer.
    pub answering: Duration,
}

impl IdleLimits {
    pub fn from_settings(server: &ServerSettings) -> IdleLimits {
        IdleLimits {
            idle: server.idle_timeout,
            answering: server.request_timeout + Duration::from_secs(1),
        }
    }
}

/// Wraps every connection `inner` accepts in an [`IdleClosing`].
pub struct IdleClosingAcceptor<A> {
    inner: A,
    limits: IdleLimits,
}

impl<A> IdleClosingAcceptor<A> {
    pub fn new(inner: A, limits: IdleLimits) -> Self {
        IdleClosingAcceptor { inner, limits }
    }
}

impl<A: Acceptor> Acceptor for IdleClosingAcceptor<A> {
    type Io = IdleClosing<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> IoResult<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((IdleClosing::new(io, self.limits), local, remote, scheme))
    }
}

/// A connection that reads as closed (end of stream) once it has been idle for its timeout.
pub struct IdleClosing<Io> {
    inner: Io,
    limits: IdleLimits,
    last_active: Instant,
    /// None before the first byte: no request can be waiting for its answer yet.
    last_read: Option<Instant>,
    /// Fires no earlier than [`IdleClosing::closes_at`]; only moved when it fires.
    deadline: Pin<Box<Sleep>>,
}

impl<Io> IdleClosing<Io> {
    fn new(inner: Io, limits: IdleLimits) -> Self {
        let now = Instant::now();
        IdleClosing {
            inner,
            limits,
            last_active: now,
            last_read: None,
            deadline: Box::pin(tokio::time::sleep_until(now + limits.idle)),
        }
    }

    fn note_read(&mut self) {
        let now = Instant::now();
        self.last_active = now;
        self.last_read = Some(now);
    }

    fn note_written(&mut self) {
        self.last_active = Instant::now();
    }

    /// Idle for `server.idle_timeout`, and past the time any request read may be answered.
    fn closes_at(&self) -> Instant {
        let idle_until = self.last_active + self.limits.idle;
        match self.last_read {
            Some(read) => idle_until.max(read + self.limits.answering),
            None => idle_until,
        }
    }

    /// Whether the connection has been idle for its timeout; otherwise the deadline is armed
    /// (with `cx`'s waker) for when it would have been.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return false;
            }
            let closes_at = self.closes_at();
            if closes_at <= Instant::now() {
                return true;
            }
            // Traffic since the deadline was set: it moves to the new end of the idle period.
            self.deadline.as_mut().reset(closes_at);
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for IdleClosing<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<IoResult<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(read) => {
                this.note_read();
                Poll::Ready(read)
            }
            // Nothing read and nothing filled: the end of the stream, as hyper sees it.
            Poll::Pending if this.expired(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for IdleClosing<Io> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<IoResult<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf));
        this.note_written();
        Poll::Ready(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<IoResult<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs));
        this.note_written();
        Poll::Ready(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(75);
    const LIMITS: IdleLimits = IdleLimits {
        idle: TIMEOUT,
        answering: Duration::from_secs(31),
    };

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_reads_as_closed_after_the_timeout() {
        let (server, _client) = duplex(64);
        let mut server = IdleClosing::new(server, LIMITS);
        let started = Instant::now();
        let mut buf = [0; 8];
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_in_either_direction_moves_the_end_of_the_idle_period() {
        let (server, mut client) = duplex(64);
        let mut server = IdleClosing::new(server, LIMITS);
        let started = Instant::now();
        let mut buf = [0; 8];
        tokio::time::advance(Duration::from_secs(50)).await;
        client.write_all(b"ping").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 4);
        tokio::time::advance(Duration::from_secs(50)).await;
        server.write_all(b"pong").await.unwrap();
        // Idle since the write at 100 s: closed at 175 s, not at 75 s or 125 s.
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        assert_eq!(started.elapsed(), Duration::from_secs(175));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_may_still_be_answered_keeps_its_connection_past_a_short_idle_timeout() {
        let limits = IdleLimits {
            idle: Duration::from_secs(10),
            answering: Duration::from_secs(31),
        };
        let (server, mut client) = duplex(64);
        let mut server = IdleClosing::new(server, limits);
        let started = Instant::now();
        let mut buf = [0; 8];
        client.write_all(b"GET").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 3);
        tokio::time::advance(Duration::from_secs(5)).await;
        server.write_all(b"HTTP").await.unwrap();
        // Idle from 5 s, but a request read at 0 s may be answered until 31 s.
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        assert_eq!(started.elapsed(), Duration::from_secs(31));
    }
}
