//! Drives every sandbox through real HTTP, the way the adapters will, and shows each rule of the
//! platforms' contracts.

mod amazon;
mod shopify;
mod support;
mod tiktok;
mod webhook;
