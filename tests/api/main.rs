//! jwtd over real HTTP, on real SQLite, PostgreSQL and Redis.

mod accounts;
mod admin;
mod cookies;
mod cors;
mod email;
mod errors;
mod forged;
mod fuzz;
mod interop;
mod keys;
mod lockout;
mod migrations;
mod oauth;
mod operations;
mod permissions;
mod production;
mod registration;
mod rotation;
mod rotation_state;
mod security;
mod sessions;
mod store_contract;
mod store_down;
mod throttling;
mod token_endpoints;
