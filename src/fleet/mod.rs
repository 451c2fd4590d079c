//! A fleet of gateways, one audit trail: each gateway's committed entries and checkpoints are
//! copied to a shared PostgreSQL store, where auditors query the whole fleet and verify every
//! gateway's chain.
//!
//! The local SQLite log stays the source of truth: the [`ship`] task reads it (read-only) and
//! copies it in seq order, idempotently, and never makes a call wait unless the operator asks
//! for it (`require_shipped`, see [`ShipGate`]). [`store`] connects (rustls, a password from a
//! secret source, never a logged URL) and applies `audit/postgres.sql`; [`check`] runs the
//! log's own verification ([`crate::audit::Verifier`]) over each gateway's chain there;
//! [`query`] answers the auditor's questions across the fleet.

pub mod check;
mod error;
pub mod query;
mod settings;
pub mod ship;
pub mod store;

pub use error::FleetError;
pub use settings::FleetSettings;
pub use ship::{ShipGate, Shipper};
pub use store::Store;
