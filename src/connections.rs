//! How many connections this instance holds, and how many sockets each
//! client address holds: bounded, so that one address cannot take every
//! socket, and clients never take the process's last file descriptors. The
//! store, Redis and the health checks need some: a load test once opened
//! 19,968 sockets, took them all, and every `sendMessage` after that timed
//! out.
//!
//! [`CountingListener`] counts every accepted TCP connection for as long as
//! it is open; `http` answers 503 on one over [`Connections::max`], and 429
//! to a WebSocket upgrade of an address that holds its share of sockets.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use axum::{extract::connect_info::Connected, serve::IncomingStream};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

use crate::config::Limits;

/// The process's open-file limit, raised to its hard limit (a service
/// manager often leaves the soft one at 1024), and said in the log when it
/// cannot be: a capacity that quietly stays at 1024 is found only under load.
fn open_files() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => files,
        Err(error) => {
            let files = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
            tracing::warn!(%error, files, "the open-file limit could not be raised");
            files
        }
    }
}

/// Descriptors left to the process when the cap is derived from its limit.
const RESERVED_FILES: u64 = 256;

pub struct Connections {
    open: AtomicUsize,
    max: usize,
    sockets: Mutex<HashMap<IpAddr, usize>>,
    max_sockets_per_address: usize,
}

impl Connections {
    /// The bounds `limits` set; without `max_connections`, the process's
    /// open-file limit (raised to its hard limit first) less a reserve.
    pub fn new(limits: &Limits) -> Self {
        let files = open_files();
        let usable = files.saturating_sub(RESERVED_FILES.max(files / 10));
        let usable = usize::try_from(usable).unwrap_or(usize::MAX).max(1);
        let max = match limits.max_connections {
            Some(max) if max > usable => {
                tracing::warn!(
                    max,
                    files,
                    "CHATROOM_MAX_CONNECTIONS is more than the open-file limit leaves: \
                     connections past it will fail to open"
                );
                max
            }
            Some(max) => max,
            None => usable,
        };
        Self {
            open: AtomicUsize::new(0),
            max,
            sockets: Mutex::new(HashMap::new()),
            max_sockets_per_address: limits.max_sockets_per_address,
        }
    }

    /// Connections this instance serves at most.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether more connections are open than the instance serves.
    pub fn over_capacity(&self) -> bool {
        self.open.load(Ordering::Relaxed) > self.max
    }

    fn sockets(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        crate::lock(&self.sockets)
    }

    /// A seat for one more socket of `address`, held for as long as the
    /// socket lives; `None` when the address holds its share already.
    pub fn seat(self: &Arc<Self>, address: IpAddr) -> Option<Seat> {
        let mut sockets = self.sockets();
        let held = sockets.entry(address).or_default();
        if *held >= self.max_sockets_per_address {
            return None;
        }
        *held += 1;
        Some(Seat {
            connections: self.clone(),
            address,
        })
    }
}

/// One socket of an address, counted until dropped.
pub struct Seat {
    connections: Arc<Connections>,
    address: IpAddr,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut sockets = self.connections.sockets();
        if let Some(held) = sockets.get_mut(&self.address) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                sockets.remove(&self.address);
            }
        }
    }
}

/// A TCP listener that counts its open connections.
pub struct CountingListener {
    inner: TcpListener,
    connections: Arc<Connections>,
}

impl CountingListener {
    pub fn new(inner: TcpListener, connections: Arc<Connections>) -> Self {
        Self { inner, connections }
    }
}

impl axum::serve::Listener for CountingListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.inner).await;
        self.connections.open.fetch_add(1, Ordering::Relaxed);
        let counted = Counted {
            stream,
            connections: self.connections.clone(),
        };
        (counted, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection, counted until it closes.
pub struct Counted {
    stream: TcpStream,
    connections: Arc<Connections>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.connections.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The peer of a counted connection, for `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, CountingListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, CountingListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use rlimit::Resource;

    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_even_with_a_cap_configured() {
        let (_, hard) = rlimit::getrlimit(Resource::NOFILE).expect("the limit");
        let low = hard.min(1024);
        rlimit::setrlimit(Resource::NOFILE, low, hard).expect("lowered");
        let limits = Limits {
            max_connections: Some(10),
            ..Limits::default()
        };
        assert_eq!(Connections::new(&limits).max(), 10);
        let (soft, _) = rlimit::getrlimit(Resource::NOFILE).expect("the limit");
        assert_eq!(soft, hard, "raised to the hard limit");
    }
}
