//! One proxied TCP connection: two pumps, one per stream, each a single task.
//!
//! A pump has two modes:
//! - **direct**: no toxic is in effect on its stream, so bytes go socket → pipe → socket by
//!   `splice(2)`, without being copied through user space (see `pipe.rs`);
//! - **toxic**: bytes are read into a queue, each chunk stamped with the instant it arrived,
//!   and written out when the toxics allow. Reading goes on while chunks wait, so a 40 ms
//!   latency adds 40 ms to every chunk instead of serialising them.
//!
//! The pump looks at its stream's toxics whenever they change, so adding or removing a toxic
//! takes effect on open connections; chunks already queued are re-planned under the new set,
//! never dropped (except by `timeout`/`reset_peer`, whose job that is).

use super::meter::{StreamMeter, TokenMeter};
use super::pipe::Pipe;
use super::precise_timer::PreciseTimer;
use super::toxic::{Bandwidth, Slicer, Stream, Toxic, ToxicKind};
use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// Bytes read per chunk in toxic mode.
const READ_SIZE: usize = 64 * 1024;
/// Bytes a pump holds back at most before it stops reading (TCP backpressure takes over).
const MAX_QUEUED: usize = 4 * 1024 * 1024;

/// The toxics of one proxy, in the order they were added; shared with every open connection.
pub(crate) type ToxicSet = Arc<Vec<Toxic>>;

/// How a connection ends when the proxy (not a peer) ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Orderly close (FIN), e.g. proxy disabled, `timeout` expired, `limit_data` reached.
    Close,
    /// Abortive close (RST), from `reset_peer`.
    Reset,
}

/// A chunk of bytes, when the proxy read it, and when it may go (drawn once it is next).
struct Chunk {
    data: Bytes,
    arrived: Instant,
    due: Option<Instant>,
}

/// Tells both pumps of a connection that it is over, and how.
#[derive(Clone)]
struct Stop {
    ending: Arc<watch::Sender<Option<Ending>>>,
    cancel: CancellationToken,
}

impl Stop {
    /// Ends the connection; the first ending wins.
    fn end(&self, how: Ending) {
        self.ending.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(how);
                true
            } else {
                false
            }
        });
    }

    /// Resolves when the connection must end.
    async fn wait(&self) -> Ending {
        let mut rx = self.ending.subscribe();
        tokio::select! {
            _ = self.cancel.cancelled() => Ending::Close,
            r = rx.wait_for(Option::is_some) => match r {
                Ok(e) => e.unwrap_or(Ending::Close),
                Err(_) => Ending::Close,
            },
        }
    }
}

/// Proxies `client` to `upstream` until both sides are done, the proxy cancels, or a toxic
/// ends the connection. `open` counts live connections for the proxy.
pub(crate) async fn run(
    client: TcpStream,
    upstream: TcpStream,
    toxics: watch::Receiver<ToxicSet>,
    cancel: CancellationToken,
    open: Arc<AtomicUsize>,
    (meter, proxy): (Arc<TokenMeter>, Arc<str>),
) {
    open.fetch_add(1, Ordering::Relaxed);
    let _guard = OpenGuard(open);
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let stop = Stop {
        ending: Arc::new(watch::channel(None).0),
        cancel,
    };
    let (client_r, client_w) = client.into_split();
    let (upstream_r, upstream_w) = upstream.into_split();
    let up = Pump::new(
        Stream::Upstream,
        client_r,
        upstream_w,
        toxics.clone(),
        stop.clone(),
        StreamMeter::new(&meter, &proxy, Stream::Upstream),
    );
    let down = Pump::new(
        Stream::Downstream,
        upstream_r,
        client_w,
        toxics,
        stop,
        StreamMeter::new(&meter, &proxy, Stream::Downstream),
    );
    let up = tokio::spawn(up.run());
    let _ = tokio::join!(up, down.run());
}

/// Decrements the live-connection count however the connection ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A toxic as one connection sees it.
struct ActiveToxic {
    toxic: Toxic,
    /// Whether the per-connection toxicity roll selected this toxic (re-rolled on update).
    applies: bool,
    /// `timeout`: when the stream last saw data (or the toxic arrived); `reset_peer`: when the
    /// triggering data arrived. The deadline runs from here.
    since: Option<Instant>,
    /// Bytes written through it (for `limit_data`; kept across updates).
    passed: u64,
}

/// What became of a chunk handed to [`Pump::write_chunk`].
enum Written {
    /// Fully written.
    Done,
    /// Toxics changed mid-chunk: what is left goes back to the head of the queue.
    Interrupted(Chunk),
    /// The connection is over.
    Ended(Ending),
}

/// One stream of a connection: reads from `src`, applies the stream's toxics, writes to `dst`.
struct Pump {
    stream: Stream,
    src: OwnedReadHalf,
    dst: OwnedWriteHalf,
    /// Read, not yet written (toxic mode).
    queue: VecDeque<Chunk>,
    /// Bytes in `queue`.
    queued: usize,
    /// `src` reached EOF.
    src_done: bool,
    read_buf: BytesMut,
    toxics_rx: watch::Receiver<ToxicSet>,
    active: Vec<ActiveToxic>,
    rng: StdRng,
    stop: Stop,
    /// Earliest instant the bandwidth toxic lets the next byte go.
    paced_until: Instant,
    /// For latency waits; made on first use.
    timer: Option<PreciseTimer>,
    /// For direct mode; made on first use. `None` after it failed (then direct mode copies).
    pipe: Option<Pipe>,
    pipe_failed: bool,
    /// Counts personal-data tokens in what is written out, when the server counts.
    meter: Option<StreamMeter>,
}

impl Pump {
    fn new(
        stream: Stream,
        src: OwnedReadHalf,
        dst: OwnedWriteHalf,
        toxics_rx: watch::Receiver<ToxicSet>,
        stop: Stop,
        meter: Option<StreamMeter>,
    ) -> Self {
        let mut p = Pump {
            stream,
            src,
            dst,
            queue: VecDeque::new(),
            queued: 0,
            src_done: false,
            read_buf: BytesMut::new(),
            toxics_rx,
            active: Vec::new(),
            rng: StdRng::from_rng(&mut rand::rng()),
            stop,
            paced_until: Instant::now(),
            timer: None,
            pipe: None,
            pipe_failed: false,
            meter,
        };
        let _ = p.refresh();
        p
    }

    async fn run(mut self) {
        let stop = self.stop.clone();
        let ending = tokio::select! {
            ended = self.pump() => ended,
            how = stop.wait() => Some(how),
        };
        match ending {
            Some(Ending::Reset) => {
                let _ = self.src.as_ref().set_zero_linger();
                let _ = self.dst.as_ref().set_zero_linger();
                // No FIN before the RST: the peer must see "connection reset".
                self.dst.forget();
            }
            Some(Ending::Close) => {
                let _ = self.dst.shutdown().await;
            }
            None => {}
        }
    }

    /// Runs until EOF has been passed on (`None`) or the connection must end.
    async fn pump(&mut self) -> Option<Ending> {
        loop {
            if self.direct() {
                match self.splice_until_change().await {
                    Ok(true) => return self.finish().await,
                    Ok(false) => continue,
                    Err(how) => return Some(how),
                }
            }
            if self.src_done && self.queue.is_empty() {
                return self.finish().await;
            }
            let deadline = self.deadline();
            let due = self.front_due();
            let can_read = !self.src_done && self.queued < MAX_QUEUED;
            if due.is_some() && self.timer.is_none() {
                self.timer = PreciseTimer::new().ok();
            }
            let timer = self.timer.as_mut();
            tokio::select! {
                biased;
                changed = self.toxics_rx.changed() => {
                    if let Err(how) = self.on_change(changed.is_ok()) {
                        return Some(how);
                    }
                }
                how = sleep_until_deadline(deadline) => return Some(self.end(how)),
                _ = sleep_precisely(timer, due) => {
                    let chunk = self.pop();
                    match self.write_chunk(chunk).await {
                        Written::Done => {}
                        Written::Interrupted(rest) => self.push_front(rest),
                        Written::Ended(how) => return Some(self.end(how)),
                    }
                }
                read = read_chunk(&mut self.src, &mut self.read_buf), if can_read => match read {
                    Ok(Some(chunk)) => {
                        if !self.swallow() {
                            self.queued += chunk.data.len();
                            self.queue.push_back(chunk);
                        }
                    }
                    Ok(None) => self.src_done = true,
                    Err(_) => return Some(self.end(Ending::Close)),
                },
            }
        }
    }

    /// Whether the stream can go direct: nothing queued, no toxic in effect, and no token
    /// counting (spliced bytes never reach user space).
    fn direct(&self) -> bool {
        self.queue.is_empty()
            && !self.src_done
            && self.applying().next().is_none()
            && !self.pipe_failed
            && self.meter.is_none()
    }

    /// Direct mode: splices until EOF (`Ok(true)`), a toxic change (`Ok(false)`, with every
    /// spliced byte already passed on), or the end of the connection.
    async fn splice_until_change(&mut self) -> Result<bool, Ending> {
        let mut pipe = match self.pipe.take() {
            Some(p) => p,
            None => match Pipe::new() {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "no pipe for splice; copying instead");
                    self.pipe_failed = true;
                    return Ok(false);
                }
            },
        };
        let result = loop {
            tokio::select! {
                biased;
                changed = self.toxics_rx.changed() => {
                    if pipe.flush(&self.dst).await.is_err() {
                        break Err(self.end(Ending::Close));
                    }
                    break self.on_change(changed.is_ok()).map(|()| false);
                }
                moved = pipe.step(&self.src, &self.dst) => match moved {
                    Ok(0) => {
                        self.src_done = true;
                        if pipe.flush(&self.dst).await.is_err() {
                            break Err(self.end(Ending::Close));
                        }
                        break Ok(true);
                    }
                    Ok(_) => {}
                    Err(_) => break Err(self.end(Ending::Close)),
                },
            }
        };
        self.pipe = Some(pipe);
        result
    }

    fn pop(&mut self) -> Chunk {
        let chunk = self.queue.pop_front().expect("a chunk is due");
        self.queued -= chunk.data.len();
        chunk
    }

    fn push_front(&mut self, chunk: Chunk) {
        self.queued += chunk.data.len();
        self.queue.push_front(chunk);
    }

    /// When the head of the queue may go; draws its latency the first time it is asked.
    fn front_due(&mut self) -> Option<Instant> {
        let latency = match self.queue.front() {
            None => return None,
            Some(Chunk { due: Some(due), .. }) => return Some(*due),
            Some(_) => self.latency(),
        };
        let front = self.queue.front_mut()?;
        let due = front.arrived + latency;
        front.due = Some(due);
        Some(due)
    }

    /// Writes a due chunk, slicing and pacing it as the toxics say.
    async fn write_chunk(&mut self, chunk: Chunk) -> Written {
        if self.swallow() {
            return Written::Done; // a `timeout`/`reset_peer` toxic arrived while it waited
        }
        let Chunk {
            mut data,
            arrived,
            due,
        } = chunk;
        // When the data could first leave: pacing owes nothing for time before it.
        let ready = due.unwrap_or(arrived);
        let (allowed, limit_reached) = self.limit(data.len());
        data.truncate(allowed);
        while !data.is_empty() {
            let (bandwidth, slicer) = (self.bandwidth(), self.slicer());
            let mut n = data.len();
            if let Some(s) = slicer {
                n = s.next_slice(n, &mut self.rng);
            }
            if let Some(b) = bandwidth {
                n = n.min(b.piece_size());
                let Some(time) = b.transmit_time(n) else {
                    // Rate 0: hold the data until the toxic changes.
                    let changed = self.toxics_rx.changed().await;
                    return match self.on_change(changed.is_ok()) {
                        Ok(()) => Written::Interrupted(Chunk {
                            data,
                            arrived,
                            due: None,
                        }),
                        Err(how) => Written::Ended(how),
                    };
                };
                self.paced_until = pace_after(self.paced_until, ready, Instant::now()) + time;
            }
            let piece = data.split_to(n);
            if self.dst.write_all(&piece).await.is_err() {
                return Written::Ended(Ending::Close);
            }
            if let Some(m) = self.meter.as_mut() {
                m.feed(&piece);
            }
            for t in self.active.iter_mut().filter(|t| t.applies) {
                t.passed += n as u64;
            }
            let pause_until = match (bandwidth, slicer) {
                (Some(_), _) => Some(self.paced_until),
                (None, Some(s)) if !data.is_empty() => Some(Instant::now() + s.gap()),
                _ => None,
            };
            if let Some(until) = pause_until.filter(|u| *u > Instant::now()) {
                tokio::select! {
                    biased;
                    changed = self.toxics_rx.changed() => {
                        if let Err(how) = self.on_change(changed.is_ok()) {
                            return Written::Ended(how);
                        }
                        if !data.is_empty() {
                            return Written::Interrupted(Chunk { data, arrived, due: None });
                        }
                    }
                    _ = sleep_until(until) => {}
                }
            }
        }
        if limit_reached {
            return Written::Ended(Ending::Close);
        }
        Written::Done
    }

    /// Source reached EOF and everything read was passed on: after any `slow_close` delay,
    /// half-close the destination. Under `timeout`/`reset_peer` the EOF is swallowed too.
    async fn finish(&mut self) -> Option<Ending> {
        while self.swallow() {
            let deadline = self.deadline();
            tokio::select! {
                how = sleep_until_deadline(deadline) => return Some(self.end(how)),
                changed = self.toxics_rx.changed() => {
                    if let Err(how) = self.on_change(changed.is_ok()) { return Some(how); }
                }
            }
        }
        let delay: Duration = self
            .applying()
            .filter_map(|t| match &t.toxic.kind {
                ToxicKind::SlowClose(s) => Some(s.close_delay()),
                _ => None,
            })
            .sum();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let _ = self.dst.shutdown().await;
        None
    }

    /// Reacts to a change of the proxy's toxics; `Err` when the connection must end (the proxy
    /// is gone, or a `timeout` toxic was removed).
    fn on_change(&mut self, proxy_alive: bool) -> Result<(), Ending> {
        if !proxy_alive {
            return Err(self.end(Ending::Close));
        }
        for chunk in self.queue.iter_mut() {
            chunk.due = None;
        }
        self.refresh().map_err(|how| self.end(how))
    }

    /// Re-reads this stream's toxics, keeping per-connection state of those still present.
    /// A removed `timeout` toxic ends the connection (see `toxic/timeout.rs`).
    fn refresh(&mut self) -> Result<(), Ending> {
        let set = self.toxics_rx.borrow_and_update().clone();
        let now = Instant::now();
        let mut next = Vec::new();
        for toxic in set.iter().filter(|t| t.stream == self.stream) {
            let old = self.active.iter().position(|a| a.toxic.name == toxic.name);
            let entry = match old.map(|i| self.active.swap_remove(i)) {
                Some(a) if a.toxic == *toxic => a,
                old => ActiveToxic {
                    applies: self.rng.random::<f64>() < toxic.toxicity,
                    toxic: toxic.clone(),
                    since: matches!(toxic.kind, ToxicKind::Timeout(_)).then_some(now),
                    passed: old.map_or(0, |a| a.passed),
                },
            };
            next.push(entry);
        }
        let removed_timeout = self
            .active
            .iter()
            .any(|a| matches!(a.toxic.kind, ToxicKind::Timeout(_)));
        self.active = next;
        if removed_timeout {
            Err(Ending::Close)
        } else {
            Ok(())
        }
    }

    fn applying(&self) -> impl Iterator<Item = &ActiveToxic> {
        self.active.iter().filter(|t| t.applies)
    }

    /// Whether a `timeout` or `reset_peer` toxic swallows the data that just arrived; restarts
    /// the `timeout` countdown and arms `reset_peer`.
    fn swallow(&mut self) -> bool {
        let now = Instant::now();
        let mut swallowed = false;
        for t in self.active.iter_mut().filter(|t| t.applies) {
            match t.toxic.kind {
                ToxicKind::Timeout(_) => {
                    t.since = Some(now);
                    swallowed = true;
                }
                ToxicKind::ResetPeer(_) => {
                    t.since.get_or_insert(now);
                    swallowed = true;
                }
                _ => {}
            }
        }
        swallowed
    }

    /// Sum of the latency toxics' draws for one chunk.
    fn latency(&mut self) -> Duration {
        let mut total = Duration::ZERO;
        for t in self.active.iter().filter(|t| t.applies) {
            if let ToxicKind::Latency(l) = &t.toxic.kind {
                total += l.delay(&mut self.rng);
            }
        }
        total
    }

    /// The tightest bandwidth toxic.
    fn bandwidth(&self) -> Option<Bandwidth> {
        self.applying()
            .filter_map(|t| match t.toxic.kind {
                ToxicKind::Bandwidth(b) => Some(b),
                _ => None,
            })
            .min_by_key(|b| b.rate)
    }

    /// The first slicer toxic.
    fn slicer(&self) -> Option<Slicer> {
        self.applying().find_map(|t| match t.toxic.kind {
            ToxicKind::Slicer(s) => Some(s),
            _ => None,
        })
    }

    /// How many of `len` bytes the `limit_data` toxics allow, and whether the limit is reached.
    fn limit(&self, len: usize) -> (usize, bool) {
        self.applying()
            .fold((len, false), |(n, reached), t| match t.toxic.kind {
                ToxicKind::LimitData(l) => {
                    let (allowed, r) = l.allow(t.passed, n);
                    (allowed.min(n), reached || r)
                }
                _ => (n, reached),
            })
    }

    /// The earliest instant a `timeout` or `reset_peer` toxic ends the connection.
    fn deadline(&self) -> Option<(Instant, Ending)> {
        self.applying()
            .filter_map(|t| match (&t.toxic.kind, t.since) {
                (ToxicKind::Timeout(x), Some(since)) => {
                    x.close_after().map(|d| (since + d, Ending::Close))
                }
                (ToxicKind::ResetPeer(x), Some(since)) => {
                    Some((since + x.reset_after(), Ending::Reset))
                }
                _ => None,
            })
            .min_by_key(|(at, _)| *at)
    }

    /// Ends the whole connection and reports how.
    fn end(&self, how: Ending) -> Ending {
        self.stop.end(how);
        how
    }
}

/// Reads one chunk; `None` at EOF.
async fn read_chunk(src: &mut OwnedReadHalf, buf: &mut BytesMut) -> std::io::Result<Option<Chunk>> {
    buf.reserve(READ_SIZE);
    match src.read_buf(buf).await? {
        0 => Ok(None),
        _ => Ok(Some(Chunk {
            data: buf.split().freeze(),
            arrived: Instant::now(),
            due: None,
        })),
    }
}

/// Sleeps until `due` on the precise timer (tokio's when there is none); forever without `due`.
async fn sleep_precisely(timer: Option<&mut PreciseTimer>, due: Option<Instant>) {
    match (timer, due) {
        (_, None) => std::future::pending().await,
        (Some(t), Some(at)) => {
            if t.sleep_until(at).await.is_err() {
                sleep_until(at).await;
            }
        }
        (None, Some(at)) => sleep_until(at).await,
    }
}

/// Sleeps until the deadline, forever when there is none.
async fn sleep_until_deadline(deadline: Option<(Instant, Ending)>) -> Ending {
    match deadline {
        Some((at, how)) => {
            sleep_until(at).await;
            how
        }
        None => std::future::pending().await,
    }
}

/// How far the bandwidth schedule may have fallen behind and still be caught up: a pump the
/// host kept from running (an oversleep, a busy CPU) sends what it owes back to back, as
/// Toxiproxy carries a late sleep into the next one, so the rate stays at the cap instead of
/// sinking below it. Lateness beyond this is treated as a restart of the schedule.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);

/// Where the next piece's transmit time starts: the later of the schedule's end and the
/// instant the data was `ready` (a source that sent nothing earns no credit), while `now` is at
/// most [`MAX_CATCH_UP`] past it; else `now`. Never earlier than either, so no piece leaves
/// before its time and the cap holds over any span that starts when data is waiting.
fn pace_after(paced_until: Instant, ready: Instant, now: Instant) -> Instant {
    let owed_from = paced_until.max(ready);
    if now.saturating_duration_since(owed_from) > MAX_CATCH_UP {
        now
    } else {
        owed_from
    }
}

#[cfg(test)]
mod pacing_tests {
    use super::*;

    #[test]
    fn a_late_pump_catches_up_but_an_idle_source_earns_no_credit() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(
            pace_after(t0, t0, t0 + ms(30)),
            t0,
            "30 ms late: on schedule"
        );
        assert_eq!(
            pace_after(t0, t0, t0 + ms(500)),
            t0 + ms(500),
            "too late: restarts"
        );
        assert_eq!(
            pace_after(t0, t0 + ms(50), t0 + ms(60)),
            t0 + ms(50),
            "idle source"
        );
        assert_eq!(
            pace_after(t0 + ms(10), t0, t0),
            t0 + ms(10),
            "never before the schedule"
        );
    }
}
