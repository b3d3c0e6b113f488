//! Drives every sandbox through real HTTP, the way the adapters will, and shows each rule of the
//! platforms' contracts; then the simulated buyers, their webhooks' delivery, and the oversells
//! the shared world counts.

mod amazon;
mod buyers;
mod delivery;
mod shopify;
mod support;
mod tiktok;
mod webhook;
