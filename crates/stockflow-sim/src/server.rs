//! What every sandbox shares around its platform logic: the common configuration, the core
//! (clock, recorder, fault injector), the HTTP server on 127.0.0.1:0 with its shutdown, and a
//! body reader that keeps the body limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::SimClock;
use crate::faults::{FaultConfig, FaultInjector};
use crate::recorder::Recorder;

/// The largest body any sandbox accepts by default (1 MiB).
pub const BODY_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// How long a shutdown waits for in-flight calls before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Settings every sandbox takes.
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// Seeds every random choice of the sandbox (faults, lost submissions, ids).
    pub seed: u64,
    pub faults: FaultConfig,
    /// Run on a manual clock that only [`SimClock::advance`] moves: rate limits, delays and
    /// processing times then depend on the test's steps, not on the machine's speed.
    pub manual_clock: bool,
    /// Larger bodies are refused with the platform's 413 and recorded as a violation.
    pub body_bytes_max: usize,
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            faults: FaultConfig::default(),
            manual_clock: false,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
        }
    }
}

/// Clock, recorder and fault injector of one sandbox.
#[derive(Debug)]
pub struct Core {
    pub clock: SimClock,
    pub recorder: Recorder,
    pub faults: FaultInjector,
    pub body_bytes_max: usize,
}

impl Core {
    pub fn new(config: &CommonConfig) -> Self {
        let clock = if config.manual_clock {
            SimClock::manual()
        } else {
            SimClock::real()
        };
        Self {
            recorder: Recorder::new(clock.clone()),
            faults: FaultInjector::new(config.seed, config.faults.clone()),
            clock,
            body_bytes_max: config.body_bytes_max,
        }
    }
}

/// A running HTTP server. Dropping it stops the server without waiting.
#[derive(Debug)]
pub struct ServerHandle {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops accepting calls, lets in-flight calls finish for a short grace, then stops.
    pub async fn shutdown(mut self) {
        if let Some(signal) = self.shutdown.take() {
            let _ = signal.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(signal) = self.shutdown.take() {
            let _ = signal.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds 127.0.0.1:0; the router is built once the address is known, since some answers carry
/// URLs of the sandbox itself.
pub async fn bind() -> std::io::Result<TcpListener> {
    TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await
}

pub fn spawn(listener: TcpListener, router: Router) -> std::io::Result<ServerHandle> {
    let address = listener.local_addr()?;
    let (signal, signalled) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = signalled.await;
        };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(%error, "sandbox server stopped with an error");
        }
    });
    Ok(ServerHandle {
        address,
        shutdown: Some(signal),
        task: Some(task),
    })
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

/// Reads a whole body, refusing one above `limit` bytes before reading it when the client said
/// its length.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge);
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        // Without a declared length, an error while reading within the limit is the limit.
        Err(_) if declared.is_none() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}

/// The value of a header as text, if present and printable.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A fresh request id, as the platforms put in every answer.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Shared pointer to a sandbox's state, as axum handlers receive it.
pub type Shared<T> = Arc<T>;

/// A platform's answer type, as far as held calls are concerned.
pub trait HeldReply {
    /// The answer to a held call that was not processed (sent after the hold).
    fn held_unprocessed() -> Self;
    /// Marks an answer as given after a hold: the client has most likely given up on it.
    fn timed_out(self) -> Self;
}

/// Runs `work` after the drawn latency, under the drawn timeout: a held call is either not
/// processed (and answered with a 503 after the hold) or processed and answered after the hold.
/// `work` is synchronous, so no lock is held across the waits.
pub async fn with_held_faults<R: HeldReply>(
    draw: crate::faults::Draw,
    work: impl FnOnce() -> R,
) -> R {
    use crate::faults::Fault;
    tokio::time::sleep(draw.latency).await;
    match draw.fault {
        Fault::Timeout {
            hold,
            processes: false,
        } => {
            tokio::time::sleep(hold).await;
            R::held_unprocessed()
        }
        Fault::Timeout {
            hold,
            processes: true,
        } => {
            let reply = work();
            tokio::time::sleep(hold).await;
            reply.timed_out()
        }
        Fault::None | Fault::ServerError { .. } | Fault::Throttle => work(),
    }
}
