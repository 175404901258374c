//! docs/configuration.md's key reference is generated from config/default.toml, so each key is
//! documented once: in the comment above it. This test regenerates the table and fails when the
//! committed page differs; `JWTD_BLESS_DOCS=1 cargo test --test cli config_docs` rewrites it.
//!
//! The file is read by hand rather than with a TOML parser: it is jwtd's own, and its shape is
//! simple (sections, `key = value` on one line, `#` comments). A line of another shape fails the
//! test, so the format cannot drift away from what is read here.

use std::path::Path;

const BEGIN: &str = "<!-- BEGIN GENERATED: config keys -->";
const END: &str = "<!-- END GENERATED -->";

/// One key of the defaults file.
#[derive(Debug)]
struct Key {
    /// `section.key`, e.g. `jwt.leeway`.
    name: String,
    /// The value as written, or `None` for a key that is only shown commented out.
    default: Option<String>,
    /// The value of a commented-out key, as an example.
    example: Option<String>,
    /// The comment lines directly above the key, joined; empty when it has none of its own.
    meaning: String,
}

/// A `name = value` line, or `None` when the line is not one.
fn assignment(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    valid.then(|| (name, value.trim()))
}

fn keys(defaults: &str) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut section: Option<&str> = None;
    let mut comment: Vec<&str> = Vec::new();
    for (number, raw) in defaults.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            comment.clear();
        } else if let Some(header) = line.strip_prefix('[') {
            let name = header.strip_suffix(']');
            let name = name.unwrap_or_else(|| panic!("default.toml:{}: {raw}", number + 1));
            section = Some(name.trim());
            comment.clear();
        } else if let Some(text) = line.strip_prefix('#') {
            let text = text.trim();
            match (section, assignment(text)) {
                (Some(section), Some((name, value))) => {
                    keys.push(Key {
                        name: format!("{section}.{name}"),
                        default: None,
                        example: Some(value.to_string()),
                        meaning: comment.join(" "),
                    });
                    comment.clear();
                }
                _ => comment.push(text),
            }
        } else {
            let section = section
                .unwrap_or_else(|| panic!("default.toml:{}: a key outside a section", number + 1));
            let (name, value) = assignment(line)
                .unwrap_or_else(|| panic!("default.toml:{}: not `key = value`: {raw}", number + 1));
            keys.push(Key {
                name: format!("{section}.{name}"),
                default: Some(value.to_string()),
                example: None,
                meaning: comment.join(" "),
            });
            comment.clear();
        }
    }
    keys
}

/// A TOML value as a table cell: strings without their quotes, everything else as written.
fn code(value: &str) -> String {
    let plain = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|v| !v.contains('"'))
        .unwrap_or(value);
    format!("`{}`", plain.replace('|', "\\|"))
}

fn table(keys: &[Key]) -> String {
    let mut out = String::from("| key | default | meaning |\n| --- | --- | --- |\n");
    for key in keys {
        let default = key
            .default
            .as_deref()
            .map_or_else(|| "unset".to_string(), code);
        let mut meaning = key.meaning.replace('|', "\\|");
        if let Some(example) = &key.example {
            if !meaning.is_empty() {
                meaning.push(' ');
            }
            meaning.push_str(&format!("Example: {}.", code(example)));
        }
        out.push_str(&format!("| `{}` | {default} | {meaning} |\n", key.name));
    }
    out
}

/// `page` with the text between the markers replaced by `table`.
fn with_table(page: &str, table: &str) -> String {
    let (before, rest) = page
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("docs/configuration.md has no `{BEGIN}` line"));
    let (_, after) = rest
        .split_once(END)
        .unwrap_or_else(|| panic!("docs/configuration.md has no `{END}` line after `{BEGIN}`"));
    format!("{before}{BEGIN}\n{table}{END}{after}")
}

#[test]
fn the_configuration_page_documents_every_key_of_the_defaults() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let defaults = std::fs::read_to_string(root.join("config/default.toml")).unwrap();
    let path = root.join("docs/configuration.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let expected = with_table(&page, &table(&keys(&defaults)));
    if page == expected {
        return;
    }
    if std::env::var("JWTD_BLESS_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, expected).unwrap();
        return;
    }
    panic!(
        "docs/configuration.md's key table differs from config/default.toml: \
         run `JWTD_BLESS_DOCS=1 cargo test --test cli config_docs` and commit the page"
    );
}

#[test]
fn keys_take_the_comment_directly_above_them() {
    let sample = "\
# A header, not about any key.

[server]
# Listen address.
# Two lines.
bind = \"127.0.0.1:8000\"
max = 3
# An optional one.
# public_url = \"https://a.example\"

[password.argon2]
# Costs | cells.
memory_kib = 19456
";
    let keys = keys(sample);
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "server.bind",
            "server.max",
            "server.public_url",
            "password.argon2.memory_kib"
        ]
    );
    assert_eq!(keys[0].meaning, "Listen address. Two lines.");
    assert_eq!(keys[1].meaning, "", "a key without a comment of its own");
    assert_eq!(keys[2].default, None);
    assert_eq!(keys[2].example.as_deref(), Some("\"https://a.example\""));
    assert_eq!(
        table(&keys),
        "| key | default | meaning |\n| --- | --- | --- |\n\
         | `server.bind` | `127.0.0.1:8000` | Listen address. Two lines. |\n\
         | `server.max` | `3` |  |\n\
         | `server.public_url` | unset | An optional one. Example: `https://a.example`. |\n\
         | `password.argon2.memory_kib` | `19456` | Costs \\| cells. |\n"
    );
}

#[test]
fn the_table_replaces_only_the_text_between_the_markers() {
    let page = format!("intro\n{BEGIN}\nold\n{END}\noutro\n");
    assert_eq!(
        with_table(&page, "new\n"),
        format!("intro\n{BEGIN}\nnew\n{END}\noutro\n")
    );
}
