//! Accepting gRPC connections so that idle or slow ones cannot shut a real client out.
//!
//! tonic's own accept loop retries a failing `accept` at once (a core spinning on
//! EMFILE) and its TLS handshake has no deadline, so a few hundred idle TCP
//! connections (any host user can open them through the 127.0.0.1 port forward)
//! used up the agent's file descriptors for good. Here each new connection has
//! [`HANDSHAKE_TIMEOUT`] to finish its TLS handshake (plaintext: to send its first
//! byte). At most [`MAX_HANDSHAKES`] wait at once and a new one evicts the oldest,
//! so a flood cycles through those slots while a real client, whose handshake takes
//! milliseconds, gets through. When `accept` fails for want of file descriptors the
//! oldest pending handshake is closed to make room; other failures back off
//! instead of spinning. Established connections are capped at [`MAX_CONNECTIONS`].

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// How long a new connection may take to finish its TLS handshake (or, plaintext,
/// to send its first byte) before it is closed. A real client handshakes in one
/// round trip plus a signature: milliseconds, well under a second even in a TCG
/// guest behind QEMU's user-mode port forward; 5 s leaves a wide margin and still
/// frees a flood's slots quickly.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections in handshake at once; a new one evicts the oldest. Real clients are
/// the host's few concurrent commands; 32 is plenty for them and keeps a flood well
/// below the default file limit (1024) and the 128 the flood test runs with.
pub const MAX_HANDSHAKES: usize = 32;
/// Established (authenticated) connections at once; a new one over the cap is
/// closed. Each costs a descriptor and HTTP/2 buffers; the host opens a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// First and longest pause after `accept` failed for a reason other than a
/// vanished client: short enough not to be noticed, long enough not to spin.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// After closing a pending handshake to free a descriptor: lets the runtime drop
/// the aborted task (closing its socket) before `accept` is tried again.
const EVICT_PAUSE: Duration = Duration::from_millis(5);
/// Established connections waiting for tonic to take them.
const ACCEPTED_QUEUE: usize = 16;

enum Io {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One admitted connection; holds its place under [`MAX_CONNECTIONS`] until dropped.
pub struct Connection {
    io: Io,
    remote: Option<SocketAddr>,
    _slot: OwnedSemaphorePermit,
}

/// What tonic records about a connection (request extensions).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The client's address.
    pub remote: Option<SocketAddr>,
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            remote: self.remote,
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Tcp(stream) => stream.is_write_vectored(),
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections `listener` admits, TLS (mutual, as `tls` says) or plaintext,
/// for tonic's `serve_with_incoming`. Accepting stops when the stream is dropped.
pub fn admitted(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
) -> ReceiverStream<io::Result<Connection>> {
    let (sender, receiver) = mpsc::channel(ACCEPTED_QUEUE);
    tokio::spawn(accept_loop(listener, tls.map(TlsAcceptor::from), sender));
    ReceiverStream::new(receiver)
}

/// Doubling pauses between failed accepts.
#[derive(Debug, Default)]
struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The pause to take now; whether it starts a run of failures.
    fn pause(&mut self) -> (Duration, bool) {
        let first = self.next.is_none();
        let pause = self.next.unwrap_or(ACCEPT_BACKOFF_MIN);
        self.next = Some((pause * 2).min(ACCEPT_BACKOFF_MAX));
        (pause, first)
    }

    fn reset(&mut self) {
        self.next = None;
    }
}

fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// The client went away between connecting and our accept: try the next one.
fn client_vanished(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Connections still in their handshake, oldest first.
#[derive(Default)]
struct Pending {
    tasks: JoinSet<()>,
    order: VecDeque<AbortHandle>,
}

impl Pending {
    /// Closes the oldest pending connection; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        match self.order.pop_front() {
            Some(oldest) => {
                oldest.abort();
                true
            }
            None => false,
        }
    }

    fn forget(&mut self, id: tokio::task::Id) {
        self.order.retain(|handle| handle.id() != id);
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    sender: mpsc::Sender<io::Result<Connection>>,
) {
    let established = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut pending = Pending::default();
    let mut backoff = Backoff::default();
    loop {
        tokio::select! {
            () = sender.closed() => break,
            Some(joined) = pending.tasks.join_next_with_id() => {
                let id = match joined {
                    Ok((id, ())) => id,
                    Err(error) => error.id(),
                };
                pending.forget(id);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    backoff.reset();
                    if pending.order.len() >= MAX_HANDSHAKES && pending.evict_oldest() {
                        tracing::debug!(%remote, "{MAX_HANDSHAKES} handshakes pending: closed the oldest");
                    }
                    let handle = pending.tasks.spawn(admit(
                        stream,
                        remote,
                        tls.clone(),
                        established.clone(),
                        sender.clone(),
                    ));
                    pending.order.push_back(handle);
                }
                Err(error) if client_vanished(&error) => {}
                Err(error) if out_of_descriptors(&error) && pending.evict_oldest() => {
                    tracing::debug!(%error, "out of file descriptors: closed the oldest pending handshake");
                    tokio::time::sleep(EVICT_PAUSE).await;
                }
                Err(error) => {
                    let (pause, first) = backoff.pause();
                    if first {
                        tracing::warn!(%error, "accepting a connection failed; retrying with back-off");
                    } else {
                        tracing::debug!(%error, ?pause, "accept failed again");
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// Handshake (bounded by [`HANDSHAKE_TIMEOUT`]), then a place under the cap, then
/// over to tonic.
async fn admit(
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<TlsAcceptor>,
    established: Arc<Semaphore>,
    sender: mpsc::Sender<io::Result<Connection>>,
) {
    let handshake = async {
        match tls {
            Some(acceptor) => acceptor
                .accept(stream)
                .await
                .map(|tls| Io::Tls(Box::new(tls))),
            None => {
                // The first byte of the HTTP/2 preface: a client that sends nothing
                // is treated like one that never finishes a TLS handshake.
                let mut first = [0u8; 1];
                match stream.peek(&mut first).await {
                    Ok(0) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                    Ok(_) => Ok(Io::Tcp(stream)),
                    Err(error) => Err(error),
                }
            }
        }
    };
    let io = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(io)) => io,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "no handshake within {HANDSHAKE_TIMEOUT:?}: closed");
            return;
        }
    };
    let Ok(slot) = established.try_acquire_owned() else {
        tracing::warn!(%remote, "{MAX_CONNECTIONS} connections open: closed a new one");
        return;
    };
    let connection = Connection {
        io,
        remote: Some(remote),
        _slot: slot,
    };
    // Err: the server stopped accepting; the connection closes with this task.
    let _ = sender.send(Ok(connection)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_and_resets() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.pause(), (ACCEPT_BACKOFF_MIN, true));
        assert_eq!(backoff.pause(), (ACCEPT_BACKOFF_MIN * 2, false));
        for _ in 0..10 {
            backoff.pause();
        }
        assert_eq!(backoff.pause(), (ACCEPT_BACKOFF_MAX, false));
        backoff.reset();
        assert_eq!(backoff.pause(), (ACCEPT_BACKOFF_MIN, true));
    }

    #[tokio::test]
    async fn silent_plaintext_connections_are_closed_after_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut admitted = admitted(listener, None);
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut talking = TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut talking, b"PRI")
            .await
            .unwrap();
        let mut first = tokio_stream::StreamExt::next(&mut admitted)
            .await
            .unwrap()
            .unwrap();
        let mut preface = [0u8; 3];
        tokio::io::AsyncReadExt::read_exact(&mut first, &mut preface)
            .await
            .unwrap();
        assert_eq!(
            &preface, b"PRI",
            "the talking connection is the one admitted"
        );
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(
            HANDSHAKE_TIMEOUT + Duration::from_secs(2),
            tokio::io::AsyncReadExt::read(&mut silent, &mut byte),
        )
        .await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the silent connection should be closed: {read:?}"
        );
    }
}
