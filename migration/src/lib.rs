//! Schema migrations for jwtd, run at startup and by `jwtd migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_users;
mod m20261121_000002_create_revocations;
mod m20261121_000003_unique_user_emails;
mod m20261121_000004_create_sessions;
mod m20261121_000005_create_oauth_clients;
mod m20261122_000006_create_throttle_counters;
mod m20261204_000007_throttle_counter_locks;
mod m20261205_000010_groups_permissions;
mod m20261205_000020_email_outbox;
mod m20261205_000030_revocation_feed;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_users::Migration),
            Box::new(m20261121_000002_create_revocations::Migration),
            Box::new(m20261121_000003_unique_user_emails::Migration),
            Box::new(m20261121_000004_create_sessions::Migration),
            Box::new(m20261121_000005_create_oauth_clients::Migration),
            Box::new(m20261122_000006_create_throttle_counters::Migration),
            Box::new(m20261204_000007_throttle_counter_locks::Migration),
            Box::new(m20261205_000010_groups_permissions::Migration),
            Box::new(m20261205_000020_email_outbox::Migration),
            Box::new(m20261205_000030_revocation_feed::Migration),
        ]
    }
}
