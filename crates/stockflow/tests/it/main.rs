//! Tests of the `stockflow` binary as a process: killed with SIGKILL mid-stream and restarted,
//! stopped with SIGTERM while requests are in flight, and `stockflow verify` on what it left.

mod bench_sync;
mod cli;
mod crash;
mod dashboard;
mod demo;
mod oversell;
mod shutdown;
mod support;
mod workload;
