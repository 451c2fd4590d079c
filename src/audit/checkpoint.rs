//! Checkpoints: the C2SP `tlog-checkpoint` body (`<origin>\n<tree size>\n<base64 root>\n`) as a
//! signed note, and the external checkpoint file operators ship off the host.
//!
//! The external file is a sequence of records, each a complete note followed by one empty line.
//! A signed note is `body ‖ "\n" ‖ signature lines`; an unsigned one is just its body. Because a
//! body line never starts with `— `, the records can be split unambiguously.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::AuditError;
use super::merkle::Hash;
use super::note::{Note, NoteSignature, SIGNATURE_PREFIX, parse_signature_line};

/// A tree head: which log, how many entries, and the Merkle root over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// A checkpoint together with the note text it was read from and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The whole note as written (body, and if signed: empty line and signature lines).
    pub note: String,
    pub signatures: Vec<NoteSignature>,
}

/// An origin must be one non-empty line that cannot be mistaken for a signature line.
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin.is_empty() || origin.contains('\n') || origin.starts_with(SIGNATURE_PREFIX.trim_end())
    {
        return Err(format!(
            "origin {origin:?} must be one non-empty line not starting with \"—\""
        ));
    }
    Ok(())
}

impl Checkpoint {
    /// `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint body (exactly three lines; extension lines are not used by us).
    pub fn parse_body(text: &str) -> Result<Self, String> {
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .ok_or("checkpoint body does not end with a newline")?
            .split('\n')
            .collect();
        let [origin, size, root] = lines[..] else {
            return Err(format!(
                "checkpoint body has {} lines, expected 3 (origin, size, root)",
                lines.len()
            ));
        };
        check_origin(origin)?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(format!("tree size {size:?} is not a decimal number"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| format!("tree size {size:?} is too large"))?;
        let root_bytes = B64
            .decode(root)
            .map_err(|e| format!("root hash is not base64: {e}"))?;
        let root: Hash = root_bytes
            .try_into()
            .map_err(|v: Vec<u8>| format!("root hash has {} bytes, expected 32", v.len()))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

impl SignedCheckpoint {
    /// Parses a stored note (signed or not) into its checkpoint.
    pub fn parse(note: &str) -> Result<Self, String> {
        let parsed = Note::parse(note)?;
        Ok(Self {
            checkpoint: Checkpoint::parse_body(&parsed.text)?,
            note: note.to_owned(),
            signatures: parsed.signatures,
        })
    }

    pub fn body(&self) -> String {
        self.checkpoint.body()
    }

    pub fn is_signed(&self) -> bool {
        !self.signatures.is_empty()
    }
}

/// The record appended to the external checkpoint file for `note`.
pub fn file_record(note: &str) -> String {
    format!("{note}\n")
}

/// Splits the external checkpoint file into its notes.
pub fn parse_checkpoint_file(text: &str) -> Result<Vec<SignedCheckpoint>, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if !text.ends_with('\n') {
        return Err("file does not end with a newline (truncated write?)".into());
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let record_no = out.len() + 1;
        if i + 4 > lines.len() {
            return Err(format!("record {record_no} is incomplete"));
        }
        let body: String = lines[i..i + 3].concat();
        i += 3;
        if lines[i] != "\n" {
            return Err(format!(
                "record {record_no}: expected an empty line after the checkpoint body"
            ));
        }
        i += 1;
        let mut note = body.clone();
        let mut sig_lines = Vec::new();
        while i < lines.len() && lines[i].starts_with(SIGNATURE_PREFIX) {
            sig_lines.push(lines[i]);
            i += 1;
        }
        if !sig_lines.is_empty() {
            note.push('\n');
            note.push_str(&sig_lines.concat());
            if i >= lines.len() || lines[i] != "\n" {
                return Err(format!(
                    "record {record_no}: expected an empty line after the signatures"
                ));
            }
            i += 1;
        }
        let signatures = sig_lines
            .iter()
            .map(|l| parse_signature_line(l.trim_end_matches('\n')))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("record {record_no}: {e}"))?;
        let checkpoint =
            Checkpoint::parse_body(&body).map_err(|e| format!("record {record_no}: {e}"))?;
        out.push(SignedCheckpoint {
            checkpoint,
            note,
            signatures,
        });
    }
    Ok(out)
}

/// Reads and parses an external checkpoint file; a missing file is its own error.
pub fn read_checkpoint_file(path: &Path) -> Result<Vec<SignedCheckpoint>, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AuditError::CheckpointFileMissing {
            path: path.to_owned(),
        },
        _ => AuditError::io(path, "reading checkpoint file", e),
    })?;
    parse_checkpoint_file(&text).map_err(|detail| AuditError::CheckpointFile {
        path: path.to_owned(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::note::NoteSigner;

    #[test]
    fn body_round_trips() {
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 42,
            root: [7u8; 32],
        };
        assert_eq!(Checkpoint::parse_body(&cp.body()).unwrap(), cp);
        assert!(Checkpoint::parse_body("o\n042\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("o\n1\n").is_err());
    }

    #[test]
    fn file_of_signed_and_unsigned_records_splits() {
        let signer = NoteSigner::generate("k").unwrap();
        let a = Checkpoint {
            origin: "o".into(),
            size: 1,
            root: [1; 32],
        };
        let b = Checkpoint {
            origin: "o".into(),
            size: 2,
            root: [2; 32],
        };
        let c = Checkpoint {
            origin: "o".into(),
            size: 3,
            root: [3; 32],
        };
        let notes = [
            signer.sign_note(&a.body()),
            b.body(),
            signer.sign_note(&c.body()),
        ];
        let file: String = notes.iter().map(|n| file_record(n)).collect();
        let parsed = parse_checkpoint_file(&file).unwrap();
        assert_eq!(parsed.len(), 3);
        for (p, (n, cp)) in parsed.iter().zip(notes.iter().zip([a, b, c])) {
            assert_eq!(&p.note, n);
            assert_eq!(p.checkpoint, cp);
        }
        assert!(parsed[0].is_signed() && !parsed[1].is_signed());
        signer
            .verifier()
            .check(&parsed[2].body(), &parsed[2].signatures)
            .unwrap();
        assert!(parse_checkpoint_file(&file[..file.len() - 3]).is_err());
    }
}
