//! Masking brokered values that come back: each byte of a value found verbatim becomes `*`.
//!
//! Same-length masking keeps a response's `content-length` true, so a tool reading exactly
//! that many bytes is not cut short or left waiting.

use std::sync::Arc;

use super::Secrets;

const MASK_BYTE: u8 = b'*';

/// Masks every value of `secrets` found in `bytes`; the names of those found, each once.
pub(super) fn mask_in_place<'s>(secrets: &'s Secrets, bytes: &mut [u8]) -> Vec<&'s str> {
    let mut found = Vec::new();
    for entry in &secrets.entries {
        let starts: Vec<usize> = memchr::memmem::find_iter(bytes, &entry.value.0).collect();
        if starts.is_empty() {
            continue;
        }
        for start in starts {
            bytes[start..start + entry.value.0.len()].fill(MASK_BYTE);
        }
        found.push(entry.name.as_str());
    }
    found
}

/// Masks a byte stream that arrives in chunks, finding values split between chunks: it holds
/// back the last `longest value - 1` bytes of what it has seen until more arrives or the
/// stream ends.
#[derive(Debug)]
pub struct StreamMasker {
    secrets: Arc<Secrets>,
    held: Vec<u8>,
    keep: usize,
    found: Vec<String>,
}

impl StreamMasker {
    pub fn new(secrets: Arc<Secrets>) -> StreamMasker {
        let keep = secrets.longest().saturating_sub(1);
        StreamMasker {
            secrets,
            held: Vec::new(),
            keep,
            found: Vec::new(),
        }
    }

    /// Takes the next chunk; returns the bytes that may be passed on now, masked.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(chunk);
        for name in mask_in_place(&self.secrets, &mut self.held) {
            if !self.found.iter().any(|f| f == name) {
                self.found.push(name.to_owned());
            }
        }
        let ready = self.held.len().saturating_sub(self.keep);
        let rest = self.held.split_off(ready);
        std::mem::replace(&mut self.held, rest)
    }

    /// The end of the stream: what is still held back (already masked).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    /// How many bytes are held back, waiting for the next chunk or the end.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// The secrets this masker looks for.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The names of the secrets masked so far.
    pub fn found(&self) -> &[String] {
        &self.found
    }
}
