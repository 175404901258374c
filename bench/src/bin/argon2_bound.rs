//! The login ceiling: how long one argon2id hash takes at jwtd's default parameters (OWASP's
//! floor: m=19456 KiB, t=2, p=1), and so how many logins per second the cores can do at most.

use std::time::Instant;

use argon2::{Algorithm, Argon2, Params, Version};

fn main() {
    let params = Params::new(19456, 2, 1, None).expect("valid argon2 parameters");
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut output = [0u8; 32];
    let rounds = 20;
    argon2
        .hash_password_into(b"warm-up", b"a sixteen b salt", &mut output)
        .expect("hashing works");
    let start = Instant::now();
    for round in 0..rounds {
        let password = format!("a benchmark password {round}");
        argon2
            .hash_password_into(password.as_bytes(), b"a sixteen b salt", &mut output)
            .expect("hashing works");
    }
    let per_hash = start.elapsed().as_secs_f64() / f64::from(rounds);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{}",
        serde_json::json!({
            "hash_ms": per_hash * 1000.0,
            "cores": cores,
            "bound_rps": cores as f64 / per_hash,
        })
    );
}
