//! The API's listener and connections, where [`ApiLimits`] are enforced below HTTP.
//!
//! - [`ApiListener`] accepts at most the connection cap at once: beyond it the listener is not
//!   polled, so new clients wait in the kernel's accept queue and hold none of this process's
//!   file descriptors, which the proxies need.
//! - [`ApiConn`] wraps each accepted socket with Toxiproxy's timeouts: a request must arrive in
//!   full within the read timeout, a response leave within the write timeout, and a kept-alive
//!   connection with no request is closed after the idle timeout. A read or write past its
//!   deadline fails with [`std::io::ErrorKind::TimedOut`]; hyper then closes the connection
//!   (and a handler still reading a body answers 408). When the server stops, pending reads
//!   and writes fail at once, so a stop never waits for a stalled client.
//! - hyper answers a request it cannot parse (a URI over 64 KiB, oversized headers, garbage)
//!   itself, with an empty body, before any handler runs. [`ApiConn`] sends Toxiproxy's JSON
//!   error shape in its place, so every error the API sends is JSON.

use super::error::ApiError;
use super::limits::{ApiLimits, MAX_NAME_BYTES, fd_limit};
use axum::http::StatusCode;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The API's listening socket with its connection cap (see the module docs).
pub(crate) struct ApiListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    limits: ApiLimits,
    stop: CancellationToken,
    open: Arc<AtomicUsize>,
}

impl ApiListener {
    /// Wraps a bound listener. `open` counts the connections held; `stop` ends them all.
    pub fn new(
        listener: TcpListener,
        limits: ApiLimits,
        stop: CancellationToken,
        open: Arc<AtomicUsize>,
    ) -> Self {
        let cap = limits.connection_cap(fd_limit());
        tracing::debug!(cap, "fault proxy API connection cap");
        ApiListener {
            listener,
            slots: Arc::new(Semaphore::new(cap)),
            limits,
            stop,
            open,
        }
    }
}

impl axum::serve::Listener for ApiListener {
    type Io = ApiConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (ApiConn, SocketAddr) {
        // Waiting here, not in accept(2), is what keeps excess clients out of our fd table.
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the API's semaphore is never closed");
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = ApiConn::new(stream, self.limits, &self.stop, slot, &self.open);
                    return (conn, addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "fault proxy API: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Where a connection is in its request/response cycle, which says which deadline applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request to arrive in full: the read deadline applies.
    Request,
    /// Answering: writes have the write deadline; reads (the next request) the idle one.
    Answer,
}

/// One API connection with deadlines (see the module docs).
pub(crate) struct ApiConn {
    stream: TcpStream,
    limits: ApiLimits,
    phase: Phase,
    /// When the request being read must have arrived (phase `Request`).
    read_deadline: Instant,
    /// When the response being written must have left (phase `Answer`).
    write_deadline: Instant,
    /// When a byte was last written: the idle countdown starts there.
    last_write: Instant,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    /// A JSON error sent in place of hyper's empty one, and how much of it has gone.
    replacement: Option<(Vec<u8>, usize)>,
    _slot: OwnedSemaphorePermit,
    _open: OpenGuard,
}

impl ApiConn {
    fn new(
        stream: TcpStream,
        limits: ApiLimits,
        stop: &CancellationToken,
        slot: OwnedSemaphorePermit,
        open: &Arc<AtomicUsize>,
    ) -> Self {
        let now = Instant::now();
        open.fetch_add(1, Ordering::Relaxed);
        ApiConn {
            stream,
            limits,
            phase: Phase::Request,
            read_deadline: now + limits.read_timeout,
            write_deadline: now + limits.write_timeout,
            last_write: now,
            read_timer: Box::pin(tokio::time::sleep_until(now + limits.read_timeout)),
            write_timer: Box::pin(tokio::time::sleep_until(now + limits.write_timeout)),
            stopped: Box::pin(stop.clone().cancelled_owned()),
            replacement: None,
            _slot: slot,
            _open: OpenGuard(open.clone()),
        }
    }

    /// A read found nothing to read: fails if the server stopped or the deadline passed,
    /// else waits (the timer wakes the task at the deadline).
    fn read_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(stopped()));
        }
        let (deadline, what, limit) = match self.phase {
            Phase::Request => (self.read_deadline, "request", self.limits.read_timeout),
            Phase::Answer => (
                self.last_write + self.limits.idle_timeout,
                "next request (idle)",
                self.limits.idle_timeout,
            ),
        };
        if expired(&mut self.read_timer, deadline, cx) {
            return Poll::Ready(Err(timed_out(what, limit)));
        }
        Poll::Pending
    }

    /// A write could not go out: fails if the server stopped or the deadline passed.
    fn write_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(stopped()));
        }
        if expired(&mut self.write_timer, self.write_deadline, cx) {
            return Poll::Ready(Err(timed_out("response", self.limits.write_timeout)));
        }
        Poll::Pending
    }

    /// Sends what is left of a replacement response, if any.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.replacement {
            if *sent == bytes.len() {
                self.replacement = None;
                break;
            }
            match Pin::new(&mut self.stream).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    *sent += n;
                    self.last_write = Instant::now();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.write_pending(cx),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ApiConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.phase == Phase::Answer {
                    // The first bytes of the next request: its read deadline starts now.
                    this.phase = Phase::Request;
                    this.read_deadline = Instant::now() + this.limits.read_timeout;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.read_pending(cx),
        }
    }
}

impl AsyncWrite for ApiConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.phase == Phase::Request {
            // The first byte of an answer: its write deadline starts now.
            this.phase = Phase::Answer;
            this.write_deadline = Instant::now() + this.limits.write_timeout;
            if let Some(json) = replacement_for(buf) {
                this.replacement = Some((json, 0));
                this.last_write = Instant::now();
                // hyper's head counts as written; the replacement goes out in its place.
                return Poll::Ready(Ok(buf.len()));
            }
        }
        match this.poll_replacement(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.last_write = Instant::now();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_replacement(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_replacement(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_shutdown(cx),
            other => other,
        }
    }

    /// Not vectored, so hyper writes each response head in one buffer (see
    /// [`replacement_for`]).
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// Decrements the API's open-connection count however the connection ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether `deadline` has passed; otherwise arms `timer` for it (waking the task then).
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

fn timed_out(what: &str, limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("fault proxy API: no complete {what} within {limit:?}"),
    )
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "fault proxy API stopped")
}

/// The JSON response to send instead of `head` when `head` is one of hyper's own answers to
/// a request it could not parse: a 400, 414 or 431 status line and headers with
/// `content-length: 0`, alone in the buffer. The API's own error responses always carry a JSON
/// body, so they never match.
fn replacement_for(head: &[u8]) -> Option<Vec<u8>> {
    // hyper's own heads are a status line, a date and a length: well under 1 KiB.
    if head.len() > 1024 || !head.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let (status, message) = if text.starts_with("HTTP/1.1 400 ") {
        (
            StatusCode::BAD_REQUEST,
            "bad request: malformed HTTP request".to_string(),
        )
    } else if text.starts_with("HTTP/1.1 414 ") {
        (
            StatusCode::URI_TOO_LONG,
            format!(
                "URI too long: at most 65534 bytes (proxy and toxic names are at most \
                 {MAX_NAME_BYTES} bytes)"
            ),
        )
    } else if text.starts_with("HTTP/1.1 431 ") {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header fields too large".to_string(),
        )
    } else {
        return None;
    };
    let end = text.find("\r\n\r\n")?;
    if end + 4 != text.len() {
        return None;
    }
    let empty = text
        .split("\r\n")
        .any(|line| line.eq_ignore_ascii_case("content-length: 0"));
    if !empty {
        return None;
    }
    let body = ApiError::new(status, message).body().to_string();
    Some(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            status.as_str(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(read: u64, write: u64, idle: u64) -> ApiLimits {
        ApiLimits {
            read_timeout: Duration::from_millis(read),
            write_timeout: Duration::from_millis(write),
            idle_timeout: Duration::from_millis(idle),
            ..ApiLimits::default()
        }
    }

    /// A connected pair on loopback: our `ApiConn` and the raw client socket.
    async fn pair(limits: ApiLimits) -> (ApiConn, TcpStream, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let open = Arc::new(AtomicUsize::new(0));
        let mut api = ApiListener::new(listener, limits, stop.clone(), open);
        let (conn, _) = axum::serve::Listener::accept(&mut api).await;
        (conn, client, stop)
    }

    #[tokio::test]
    async fn a_half_sent_request_fails_after_the_read_timeout() {
        let (mut conn, mut client, _stop) = pair(limits(150, 5000, 5000)).await;
        client
            .write_all(b"POST /proxies HTTP/1.1\r\n")
            .await
            .unwrap();
        let t = Instant::now();
        let mut buf = vec![0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0);
        let err = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("the read timeout never fired")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(140) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn an_idle_kept_alive_connection_fails_after_the_idle_timeout_not_before() {
        let (mut conn, mut client, _stop) = pair(limits(100, 5000, 400)).await;
        let request = b"GET / HTTP/1.1\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut buf = vec![0u8; request.len()];
        conn.read_exact(&mut buf).await.unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let t = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("the idle timeout never fired")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // The idle timeout (400 ms) applies between requests, not the read timeout (100 ms).
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(380) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_client_that_never_reads_fails_the_write_after_the_write_timeout() {
        let (mut conn, client, _stop) = pair(limits(5000, 200, 5000)).await;
        let big = vec![b'x'; 64 << 20];
        let t = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(10), conn.write_all(&big))
            .await
            .expect("the write timeout never fired")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t.elapsed()
        );
        drop(client);
    }

    #[tokio::test]
    async fn stopping_the_server_ends_a_stalled_read_at_once() {
        let (mut conn, _client, stop) = pair(limits(60_000, 60_000, 60_000)).await;
        let t = Instant::now();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            conn.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.cancel();
        let err = tokio::time::timeout(Duration::from_secs(2), reader)
            .await
            .expect("stop did not end the read")
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_unaccepted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let caps = ApiLimits {
            max_connections: 2,
            ..ApiLimits::default()
        };
        let mut api = ApiListener::new(listener, caps, CancellationToken::new(), open.clone());
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let first = axum::serve::Listener::accept(&mut api).await;
        let _second = axum::serve::Listener::accept(&mut api).await;
        assert_eq!(open.load(Ordering::Relaxed), 2);
        let third = tokio::time::timeout(
            Duration::from_millis(200),
            axum::serve::Listener::accept(&mut api),
        )
        .await;
        assert!(
            third.is_err(),
            "a third connection was accepted over a cap of 2"
        );
        drop(first);
        assert_eq!(open.load(Ordering::Relaxed), 1);
        tokio::time::timeout(
            Duration::from_secs(2),
            axum::serve::Listener::accept(&mut api),
        )
        .await
        .expect("a freed slot did not let the waiting client in");
    }

    #[test]
    fn only_hypers_empty_parse_error_answers_are_replaced() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let json = String::from_utf8(replacement_for(hyper_414).unwrap()).unwrap();
        assert!(json.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{json}");
        assert!(json.contains("content-type: application/json"), "{json}");
        let body: serde_json::Value =
            serde_json::from_str(json.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["status"], 414);
        assert!(body["error"].as_str().unwrap().contains("URI too long"));
        // Our own JSON errors, successes and interim answers are left alone.
        assert!(
            replacement_for(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"error\":1}")
                .is_none()
        );
        assert!(
            replacement_for(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n").is_none()
        );
        assert!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement_for(b"HTTP/1.1 100 Continue\r\n\r\n").is_none());
    }
}
