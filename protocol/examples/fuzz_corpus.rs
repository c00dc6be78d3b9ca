//! Turns the `authorize_edits` fuzz inputs (its corpus and committed inputs) into well-formed
//! automerge changes in the `authorize_change` corpus, so that the raw-bytes target starts from
//! changes that apply to its base documents instead of from bytes that rarely parse:
//!
//! ```sh
//! cargo run -p syncline-protocol --example fuzz_corpus
//! ```
//!
//! Writes `protocol/fuzz/corpus/authorize_change/edits-<hash>` (ignored by git); see
//! docs/fuzzing.md.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::Path;

use syncline_protocol::fuzzing::change_of_edits;

fn main() -> std::io::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let out = fuzz.join("corpus").join("authorize_change");
    fs::create_dir_all(&out)?;
    let (mut read, mut written) = (0, 0);
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(fuzz.join(dir).join("authorize_edits")) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if !path.is_file() {
                continue;
            }
            read += 1;
            if let Some(change) = change_of_edits(&fs::read(&path)?) {
                let mut hasher = DefaultHasher::new();
                change.hash(&mut hasher);
                fs::write(out.join(format!("edits-{:016x}", hasher.finish())), change)?;
                written += 1;
            }
        }
    }
    eprintln!(
        "{written} changes from {read} authorize_edits inputs written to {}",
        out.display()
    );
    Ok(())
}
