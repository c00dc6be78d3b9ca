//! Real-world text editing traces, for replay tests and the text-trace benchmark.
//!
//! The B4 trace of the crdt-benchmarks suite (`automerge-paper.json.gz`, kept by the team in
//! `../shared/data` next to the repository): 259,778 single-character edits by one author that
//! produce a 104,852-character LaTeX document. Positions count characters; the document is
//! ASCII, so they are also UTF-16 and byte offsets.

use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

/// One edit: at `pos`, delete `delete` characters, then insert `insert`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Patch(pub u32, pub u32, pub String);

#[derive(Debug, Deserialize)]
struct Txn {
    patches: Vec<Patch>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTrace {
    start_content: String,
    end_content: String,
    txns: Vec<Txn>,
}

/// A trace: replaying `patches` in order on `start` yields `end`.
#[derive(Debug)]
pub struct EditTrace {
    pub start: String,
    pub end: String,
    pub patches: Vec<Patch>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read trace {path}: {source} (the team keeps it in ../shared/data)")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("trace {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Where the B4 trace lives: `SYNCLINE_B4_TRACE`, or `../shared/data/automerge-paper.json.gz`
/// beside the repository.
pub fn b4_path() -> PathBuf {
    std::env::var_os("SYNCLINE_B4_TRACE").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/data/automerge-paper.json.gz")
        },
        PathBuf::from,
    )
}

/// Loads the B4 trace.
pub fn load_b4() -> Result<EditTrace, TraceError> {
    load(b4_path())
}

/// Loads a gzipped trace in the crdt-benchmarks JSON format.
pub fn load(path: PathBuf) -> Result<EditTrace, TraceError> {
    let file = std::fs::File::open(&path).map_err(|source| TraceError::Io {
        path: path.clone(),
        source,
    })?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut json)
        .map_err(|source| TraceError::Io {
            path: path.clone(),
            source,
        })?;
    let raw: RawTrace =
        serde_json::from_slice(&json).map_err(|source| TraceError::Json { path, source })?;
    Ok(EditTrace {
        start: raw.start_content,
        end: raw.end_content,
        patches: raw.txns.into_iter().flat_map(|t| t.patches).collect(),
    })
}

/// Replays patches on a plain string (the reference the CRDT replays are checked against).
/// Positions are taken as byte offsets, which they are for ASCII traces such as B4.
pub fn replay_plain(start: &str, patches: &[Patch]) -> String {
    let mut text = start.to_owned();
    for Patch(pos, delete, insert) in patches {
        let pos = *pos as usize;
        text.replace_range(pos..pos + *delete as usize, insert);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_b4_trace_replays_to_its_end_content() {
        let trace = load_b4().expect("the B4 trace is in ../shared/data");
        assert_eq!(trace.patches.len(), 259_778);
        assert_eq!(replay_plain(&trace.start, &trace.patches), trace.end);
    }
}
