//! SeaORM entities; the schema itself is owned by the `migration` crate.

pub mod email_outbox;
pub mod group;
pub mod group_permission;
pub mod oauth_client;
pub mod revocation;
pub mod revocation_feed;
pub mod session;
pub mod throttle_counter;
pub mod user;
pub mod user_group;
pub mod user_permission;
