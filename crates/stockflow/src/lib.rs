//! The `stockflow` command's parts that tests reach too: the one-command demo.
//!
//! # Layout
//!
//! - [`demo`]: `stockflow demo`, the sandboxes, buyers and warehouse around an in-process
//!   server, the KPI table and the timeline chart.

pub mod demo;
