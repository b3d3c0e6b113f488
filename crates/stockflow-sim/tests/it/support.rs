//! Shared test helpers: an HTTP client and small conveniences.

use std::sync::Once;
use std::time::Duration;

pub use serde_json::{Value as Json, json};

/// A client with a short timeout; installs rustls' ring provider once per process.
pub fn client() -> reqwest::Client {
    client_with_timeout(Duration::from_secs(10))
}

pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client builds")
}

/// Status and JSON body of a response.
pub async fn read(response: reqwest::Response) -> (u16, Json) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body reads");
    let body = serde_json::from_str(&text).unwrap_or(Json::String(text));
    (status, body)
}

/// A webhook receiver for the delivery tests: records every request, and answers 500 to the
/// first `failures` attempts of each distinct body.
pub mod receiver {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    #[derive(Clone, Debug)]
    pub struct Received {
        pub headers: HeaderMap,
        pub body: Bytes,
    }

    #[derive(Default)]
    struct Inner {
        received: Vec<Received>,
        attempts: HashMap<Bytes, u32>,
    }

    #[derive(Clone)]
    pub struct Receiver {
        inner: Arc<Mutex<Inner>>,
        failures: u32,
        hold: Duration,
        pub address: SocketAddr,
    }

    impl Receiver {
        /// Answers 500 to the first `failures` attempts of each body, and holds the first
        /// attempt of each body for `hold` before answering.
        pub async fn start(failures: u32, hold: Duration) -> Receiver {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let receiver = Receiver {
                inner: Arc::default(),
                failures,
                hold,
                address,
            };
            let router = Router::new()
                .route("/hook", post(receive))
                .with_state(receiver.clone());
            tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
            receiver
        }

        pub fn url(&self) -> String {
            format!("http://{}/hook", self.address)
        }

        pub fn received(&self) -> Vec<Received> {
            self.inner.lock().unwrap().received.clone()
        }
    }

    async fn receive(
        State(receiver): State<Receiver>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let attempt = {
            let mut inner = receiver.inner.lock().unwrap();
            inner.received.push(Received {
                headers,
                body: body.clone(),
            });
            let attempt = inner.attempts.entry(body).or_default();
            *attempt += 1;
            *attempt
        };
        if attempt == 1 && !receiver.hold.is_zero() {
            tokio::time::sleep(receiver.hold).await;
        }
        if attempt <= receiver.failures {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    }
}
