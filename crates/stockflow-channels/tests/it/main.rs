//! Integration tests of stockflow-channels: the engine against an in-memory channel (paused
//! clock), and each adapter end to end through real HTTP against the sandboxes of
//! stockflow-sim.

mod amazon;
mod engine;
mod setup;
mod shopify;
mod support;
mod tiktok;
mod webhook;
