//! `server.idle_timeout`: a connection with no traffic in either direction for that long is
//! closed.
//!
//! poem's own `Server::idle_timeout` runs a watchdog task per connection and wakes it on every
//! read and write, which then re-arms a timer: a task wakeup and a timer-wheel update (under
//! its lock) for each I/O call, a few per request. Here each connection only notes when it was
//! last active; its one deadline is re-armed when it fires, once per idle period, and an expired
//! connection reads as closed, so hyper ends it the way it ends one the client closed.

use std::io::{IoSlice, Result as IoResult};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps every connection `inner` accepts in an [`IdleClosing`].
pub struct IdleClosingAcceptor<A> {
    inner: A,
    timeout: Duration,
}

impl<A> IdleClosingAcceptor<A> {
    pub fn new(inner: A, timeout: Duration) -> Self {
        IdleClosingAcceptor { inner, timeout }
    }
}

impl<A: Acceptor> Acceptor for IdleClosingAcceptor<A> {
    type Io = IdleClosing<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> IoResult<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((IdleClosing::new(io, self.timeout), local, remote, scheme))
    }
}

/// A connection that reads as closed (end of stream) once it has been idle for its timeout.
pub struct IdleClosing<Io> {
    inner: Io,
    timeout: Duration,
    last_active: Instant,
    /// Fires no earlier than `last_active + timeout`; only moved when it fires.
    deadline: Pin<Box<Sleep>>,
}

impl<Io> IdleClosing<Io> {
    fn new(inner: Io, timeout: Duration) -> Self {
        let now = Instant::now();
        IdleClosing {
            inner,
            timeout,
            last_active: now,
            deadline: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    fn active(&mut self) {
        self.last_active = Instant::now();
    }

    /// Whether the connection has been idle for its timeout; otherwise the deadline is armed
    /// (with `cx`'s waker) for when it would have been.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return false;
            }
            let idle_until = self.last_active + self.timeout;
            if idle_until <= Instant::now() {
                return true;
            }
            // Traffic since the deadline was set: it moves to the new end of the idle period.
            self.deadline.as_mut().reset(idle_until);
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
                this.active();
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
        this.active();
        Poll::Ready(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<IoResult<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs));
        this.active();
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

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_reads_as_closed_after_the_timeout() {
        let (server, _client) = duplex(64);
        let mut server = IdleClosing::new(server, TIMEOUT);
        let started = Instant::now();
        let mut buf = [0; 8];
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_in_either_direction_moves_the_end_of_the_idle_period() {
        let (server, mut client) = duplex(64);
        let mut server = IdleClosing::new(server, TIMEOUT);
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
}
