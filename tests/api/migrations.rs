//! The migrations create the schema on an empty SQLite file and an empty PostgreSQL database,
//! and running them again changes nothing.

use sea_orm::{Database, EntityTrait, PaginatorTrait};

use jwtd_test_support::{PostgresDatabase, postgres_available};

async fn migrate_twice_and_query(url: &str) {
    let db = Database::connect(url).await.unwrap();
    jwtd::store::db::migrate(&db).await.unwrap();
    jwtd::store::db::migrate(&db).await.unwrap();
    assert_eq!(
        jwtd::store::entities::user::Entity::find()
            .count(&db)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        jwtd::store::entities::revocation::Entity::find()
            .count(&db)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn migrations_run_on_an_empty_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    migrate_twice_and_query(&format!("sqlite://{}?mode=rwc", path.display())).await;
    assert!(path.exists());
}

#[tokio::test]
async fn migrations_run_on_an_empty_postgres_database() {
    if postgres_available() {
        let database = PostgresDatabase::create().await;
        migrate_twice_and_query(&database.url).await;
    }
}
