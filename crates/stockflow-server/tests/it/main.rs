//! End-to-end tests of the HTTP API: each test starts a real server on 127.0.0.1:0 with its own
//! data directory and talks to it with reqwest.

mod alerts;
mod api;
mod audit;
mod buffers;
mod concurrency;
mod dashboard;
mod kpis;
mod reconcile;
mod support;
mod syncstate;
mod webhooks;
