//! Test support: what a subscriber wrote, captured in memory.

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// A `MakeWriter` for a subscriber that writes here.
    pub fn writer(&self) -> impl Fn() -> Captured + Send + Sync + 'static {
        let out = self.clone();
        move || out.clone()
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// Text lines without their timestamps, which differ from run to run.
    pub fn lines_after_timestamps(&self) -> Vec<String> {
        let text = self.text();
        text.lines()
            .map(|line| line.split_once(' ').unwrap().1.to_owned())
            .collect()
    }

    /// JSON lines without their leading `"timestamp"`.
    pub fn json_lines_after_timestamps(&self) -> Vec<String> {
        let text = self.text();
        text.lines()
            .map(|line| {
                let rest = line.strip_prefix("{\"timestamp\":\"").unwrap();
                rest.split_once("\",").unwrap().1.to_owned()
            })
            .collect()
    }
}
