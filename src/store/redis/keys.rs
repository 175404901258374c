//! A user's key, written straight into the command being built: `<prefix>{<user id>}<kind><id>`,
//! as `Redis::key(session_key(…))` and its siblings spell it, without a `String` of its own.
//! A rotation names five keys: built as strings, then copied into a script invocation and
//! again into its command, they were a third of a refresh's allocations (callgrind).

use std::io::Write;

use redis::{RedisWrite, ToRedisArgs};

pub(super) struct UserKey<'a> {
    pub prefix: &'a str,
    pub user_id: &'a str,
    /// One of `store::revocation::kind`.
    pub kind: &'static str,
    /// The token's jti or the session's id; empty for the user's own keys.
    pub id: &'a str,
}

impl ToRedisArgs for UserKey<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        for part in [self.prefix, "{", self.user_id, "}", self.kind, self.id] {
            arg.write_all(part.as_bytes())
                .expect("a command's arguments are written to memory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::revocation::{kind, rotation_key, session_key, user_key};

    #[test]
    fn a_key_is_written_as_its_string_is_spelt() {
        let key = |kind, id| UserKey {
            prefix: "jwtd:",
            user_id: "u-1",
            kind,
            id,
        };
        let cases = [
            (key(kind::SESSION, "s-1"), session_key("u-1", "s-1")),
            (key(kind::USER, ""), user_key("u-1")),
            (key(kind::ROTATION, "s-1"), rotation_key("u-1", "s-1")),
        ];
        for (key, spelt) in cases {
            let mut cmd = redis::cmd("GET");
            cmd.arg(key);
            let mut expected = redis::cmd("GET");
            expected.arg(format!("jwtd:{spelt}"));
            assert_eq!(cmd.get_packed_command(), expected.get_packed_command());
        }
    }
}
