//! `spawn_app`: a whole server on a free port with its own data directory.

use serde_json::Value;
use std::path::PathBuf;
use stockflow_server::{Config, Server, ServerHandle};

#[allow(dead_code)] // not every test module reads every field
pub struct App {
    pub server: Option<ServerHandle>,
    pub url: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn temp_dir(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("stockflow-it-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub async fn spawn_app(name: &str) -> App {
    spawn_with(name, |_| {}).await
}

pub async fn spawn_with(name: &str, adjust: impl FnOnce(&mut Config)) -> App {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: temp_dir(name),
        ..Config::default()
    };
    adjust(&mut config);
    let data_dir = config.data_dir.clone();
    let server = Server::start(config).await.expect("the server starts");
    let url = server.url();
    App {
        server: Some(server),
        url,
        client: reqwest::Client::new(),
        data_dir,
    }
}

impl App {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        decode(response).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        decode(response).await
    }

    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
    }
}

async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn received(id: &str, seq: u64, sku: &str, location: &str, quantity: i64) -> Value {
    serde_json::json!({"event_id": id, "source": "wms", "seq": seq, "type": "received",
                       "sku": sku, "location": location, "quantity": quantity})
}
