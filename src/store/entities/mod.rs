//! SeaORM entities; the schema itself is owned by the `migration` crate.

pub mod revocation;
pub mod session;
pub mod user;
