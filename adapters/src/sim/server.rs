//! Serving a simulator: loopback binding, request recording, and dropping connections on
//! purpose.
//!
//! [`serve`] binds `127.0.0.1` (port 0 unless one is given), records every request in a
//! [`RequestLog`], and lets a handler cut its own connection through the [`ConnHandle`] it
//! extracts with `ConnectInfo<ConnHandle>`: after [`ConnHandle::kill`] the connection's next
//! write fails, so the client gets no answer at all and sees a reset connection.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State, connect_info::Connected};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use bytes::Bytes;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use url::Url;

/// Largest request body a simulator accepts (64 KiB); larger bodies get 413.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How many recent requests a [`RequestLog`] keeps.
pub const REQUEST_LOG_CAPACITY: usize = 512;

/// A running simulator server; stops when dropped.
#[derive(Debug)]
pub(crate) struct RunningServer {
    base_url: Url,
    task: JoinHandle<()>,
}

impl RunningServer {
    pub(crate) fn base_url(&self) -> &Url {
        &self.base_url
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts serving `router` on loopback; `port` 0 or `None` picks a free port.
pub(crate) async fn serve(
    port: Option<u16>,
    router: Router,
    log: RequestLog,
) -> io::Result<RunningServer> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port.unwrap_or(0))).await?;
    let addr = listener.local_addr()?;
    let base_url = Url::parse(&format!("http://{addr}/")).map_err(io::Error::other)?;
    let router = router.layer(axum::middleware::from_fn_with_state(log, record));
    let service = router.into_make_service_with_connect_info::<ConnHandle>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(SimListener { inner: listener }, service).await {
            tracing::warn!(%addr, error = %e, "simulator server stopped");
        }
    });
    Ok(RunningServer { base_url, task })
}

/// A request as the simulator received it, for wire-format assertions.
///
/// `Debug` lists header names only: values may be credentials.
#[derive(Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Path without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers as received (names lower-case).
    pub headers: http::HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// When it arrived.
    pub at: SystemTime,
}

impl std::fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("header_names", &names)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl RecordedRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The top-level field names of a JSON object body, sorted.
    pub fn json_field_names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self.json() {
            Some(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        names.sort();
        names
    }
}

/// The last [`REQUEST_LOG_CAPACITY`](crate::sim::REQUEST_LOG_CAPACITY) requests a simulator received. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<VecDeque<RecordedRequest>>>,
}

impl RequestLog {
    fn push(&self, request: RecordedRequest) {
        let mut log = lock(&self.inner);
        if log.len() == REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(request);
    }

    /// All kept requests, oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        lock(&self.inner).iter().cloned().collect()
    }

    /// The most recent request to `path`.
    pub fn last_to(&self, path: &str) -> Option<RecordedRequest> {
        lock(&self.inner)
            .iter()
            .rev()
            .find(|r| r.path == path)
            .cloned()
    }

    /// How many kept requests went to `path`.
    pub fn count_to(&self, path: &str) -> usize {
        lock(&self.inner).iter().filter(|r| r.path == path).count()
    }

    /// Forgets every request.
    pub fn clear(&self) {
        lock(&self.inner).clear();
    }
}

async fn record(State(log): State<RequestLog>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    log.push(RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body: bytes.clone(),
        at: SystemTime::now(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Lets a handler drop its own connection without answering. Extract it with
/// `axum::extract::ConnectInfo<ConnHandle>`.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    killed: Arc<AtomicBool>,
}

impl ConnHandle {
    /// Makes the connection fail on its next write: the answer being returned is never sent
    /// and the client sees the connection reset.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, SimListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        Self {
            killed: stream.io().killed.clone(),
        }
    }
}

/// The simulators' listener: a TCP listener whose connections can be killed by handlers.
#[derive(Debug)]
pub struct SimListener {
    inner: TcpListener,
}

impl Listener for SimListener {
    type Io = SimStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        SimStream {
                            inner: stream,
                            killed: Arc::new(AtomicBool::new(false)),
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection of a [`SimListener`].
#[derive(Debug)]
pub struct SimStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl SimStream {
    fn check_killed(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            // Reset rather than close, like a crashed peer or a middlebox timing out.
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection dropped by the simulator's fault plan",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check_killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check_killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check_killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Locks a simulator mutex. Simulator state stays consistent across a panicking holder
/// (updates are single steps), so poisoning is ignored rather than cascading.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
