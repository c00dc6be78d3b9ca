//! Text documents: the rich-text bodies of notes and documents (collections
//! `syncline_protocol::schema::TEXT_COLLECTIONS`), Yjs documents in the y-prosemirror layout of
//! `syncline_protocol::text` (`XmlFragment "prosemirror"` > `paragraph` > text).
//!
//! [`Client::text`] (or [`Client::note_body`], [`Client::document_body`]) returns a
//! [`TextDoc`] handle on one body. Reads see the working state (confirmed plus pending local
//! edits). Every write is one Yjs transaction recorded as one pending mutation, pushed in order
//! with record mutations; [`TextDoc::edit`] groups many edits into one. Writes return the Yjs
//! update they made (lib0 v1) so that an open editor can apply it; remote updates arrive as
//! [`crate::SyncEvent::Text`] events.
//!
//! - `ydoc`: `Doc` configuration, Yjs client ids, loading from SQLite.
//! - `cache`: open documents kept decoded.
//! - `write`: the read and write paths (SQLite transactions, outbox).
//! - `body`, `editor`, `view`: flat positions, [`TextEditor`], [`TextBlock`] views.
//! - Incoming server messages for text documents are in `crate::sync::text`.

mod body;
pub(crate) mod cache;
mod editor;
mod view;
mod write;
pub(crate) mod ydoc;

pub use editor::TextEditor;
pub use syncline_protocol::text::{Suggestion, SuggestionKind, SuggestionMark};
pub use view::{TextBlock, TextRun};
pub use yrs::Any;

use syncline_protocol::schema::{self, DOCUMENT_BODIES, NOTE_BODIES, TextCollection};
use syncline_protocol::text::{plain_text, suggestions};
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{GetString, ReadTxn, StateVector, Transact};

use crate::client::Client;
use crate::error::{ClientError, Result};

impl Client {
    /// A handle on the text document `doc_id` of text collection `collection` (e.g.
    /// `"note_bodies"`). The body shares its record's id; writing it requires the record
    /// (created first, in the parent collection) to exist locally.
    pub fn text(&mut self, doc_id: Uuid, collection: &str) -> Result<TextDoc<'_>> {
        let collection = schema::text_collection(collection)
            .ok_or_else(|| ClientError::UnknownCollection(collection.to_owned()))?;
        Ok(TextDoc {
            client: self,
            doc_id,
            collection,
        })
    }

    /// The body of note `id`.
    pub fn note_body(&mut self, id: Uuid) -> TextDoc<'_> {
        TextDoc {
            client: self,
            doc_id: id,
            collection: &NOTE_BODIES,
        }
    }

    /// The body of document `id`.
    pub fn document_body(&mut self, id: Uuid) -> TextDoc<'_> {
        TextDoc {
            client: self,
            doc_id: id,
            collection: &DOCUMENT_BODIES,
        }
    }

    /// How many text documents to keep decoded in memory (default 32).
    pub fn set_text_cache_capacity(&mut self, capacity: usize) {
        self.texts.set_capacity(capacity);
    }
}

/// One text document of a [`Client`]. Positions are flat: UTF-16 code units of the body's
/// plain text (as [`Self::plain_text`] returns it), one position between consecutive blocks.
/// A body nobody wrote yet reads as empty.
pub struct TextDoc<'c> {
    client: &'c mut Client,
    doc_id: Uuid,
    collection: &'static TextCollection,
}

impl std::fmt::Debug for TextDoc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextDoc")
            .field("doc_id", &self.doc_id)
            .field("collection", &self.collection.name)
            .finish_non_exhaustive()
    }
}

impl TextDoc<'_> {
    pub fn id(&self) -> Uuid {
        self.doc_id
    }

    pub fn collection(&self) -> &'static str {
        self.collection.name
    }

    /// `read` on the working state, or `empty` for a body that is not stored.
    fn read_or<R>(&mut self, empty: R, read: impl FnOnce(&yrs::Doc) -> R) -> Result<R> {
        Ok(self
            .client
            .text_read(self.doc_id, self.collection, read)?
            .unwrap_or(empty))
    }

    fn read<R: Default>(&mut self, read: impl FnOnce(&yrs::Doc) -> R) -> Result<R> {
        self.read_or(R::default(), read)
    }

    /// Whether the replica stores this body (false until written locally or received).
    pub fn exists(&mut self) -> Result<bool> {
        self.read(|_| true)
    }

    /// The body's plain text: blocks separated by `"\n"`, suggestions included.
    pub fn plain_text(&mut self) -> Result<String> {
        self.read(plain_text)
    }

    /// The body's length in flat positions.
    pub fn len(&mut self) -> Result<u32> {
        self.read(|doc| {
            let txn = doc.transact();
            txn.get_xml_fragment(syncline_protocol::text::BODY)
                .map_or(0, |body| body::flat_len(&body::blocks(&txn, &body)))
        })
    }

    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The body as XML, marks as tags (e.g. `<paragraph>a <bold>b</bold></paragraph>`).
    pub fn xml(&mut self) -> Result<String> {
        self.read(|doc| {
            let txn = doc.transact();
            txn.get_xml_fragment(syncline_protocol::text::BODY)
                .map(|body| body.get_string(&txn))
                .unwrap_or_default()
        })
    }

    /// The body's text blocks with their formatted runs.
    pub fn blocks(&mut self) -> Result<Vec<TextBlock>> {
        self.read(|doc| view::text_blocks(&doc.transact()))
    }

    /// The open suggestions, in document order.
    pub fn suggestions(&mut self) -> Result<Vec<Suggestion>> {
        self.read(|doc| suggestions(&doc.transact()))
    }

    /// The working state's state vector (lib0 v1), for an editor's sync step 1.
    pub fn state_vector(&mut self) -> Result<Vec<u8>> {
        self.read_or(StateVector::default().encode_v1(), |doc| {
            doc.transact().state_vector().encode_v1()
        })
    }

    /// What the working state has beyond the state vector `sv` (lib0 v1, e.g. an editor's), as
    /// one update (v1) the editor applies.
    pub fn encode_diff(&mut self, sv: &[u8]) -> Result<Vec<u8>> {
        let sv = StateVector::decode_v1(sv).map_err(|e| ClientError::InvalidUpdate {
            doc_id: self.doc_id,
            code: syncline_protocol::ErrorCode::InvalidInput,
            message: format!("not a state vector: {e}"),
        })?;
        self.read_or(empty_update(), |doc| doc.transact().encode_diff_v1(&sv))
    }

    /// The whole working state as one update (v1), e.g. to load an editor.
    pub fn encode_state(&mut self) -> Result<Vec<u8>> {
        self.encode_diff(&StateVector::default().encode_v1())
    }

    /// Applies edits made with `edit` as one Yjs transaction, recorded as one pending mutation.
    /// Returns `edit`'s value and the update made (`None` if nothing changed). If `edit` fails,
    /// nothing is recorded and the document is left as it was.
    pub fn edit<R>(
        &mut self,
        edit: impl FnOnce(&mut TextEditor<'_, '_>) -> Result<R>,
    ) -> Result<(R, Option<Vec<u8>>)> {
        let user = self.client.session_user()?;
        let doc_id = self.doc_id;
        let last_mark = self.client.last_mark;
        let ((value, last_mark), update) =
            self.client
                .text_write(doc_id, self.collection, |txn, body| {
                    let mut editor = TextEditor {
                        txn,
                        body: body.clone(),
                        doc_id,
                        user,
                        last_mark,
                    };
                    let value = edit(&mut editor)?;
                    Ok((value, editor.last_mark))
                })?;
        self.client.last_mark = last_mark;
        Ok((value, update))
    }

    fn edit_one(
        &mut self,
        edit: impl FnOnce(&mut TextEditor<'_, '_>) -> Result<()>,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.edit(edit)?.1)
    }

    /// Inserts `text` at `pos` (see [`TextEditor::insert`]). Returns the update made.
    pub fn insert(&mut self, pos: u32, text: &str) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| e.insert(pos, text))
    }

    /// Deletes `len` positions from `pos` (see [`TextEditor::delete`]).
    pub fn delete(&mut self, pos: u32, len: u32) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| e.delete(pos, len))
    }

    /// Sets or removes a mark on a range (see [`TextEditor::format`]).
    pub fn format(
        &mut self,
        pos: u32,
        len: u32,
        mark: &str,
        value: Option<Any>,
    ) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| e.format(pos, len, mark, value))
    }

    /// Inserts a paragraph as child `index` of the body.
    pub fn insert_paragraph(&mut self, index: u32, text: &str) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| e.insert_paragraph(index, text))
    }

    /// Suggests inserting `text` at `pos`, authored by the welcomed user.
    pub fn suggest_insert(&mut self, pos: u32, text: &str) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| e.suggest_insert(pos, text).map(drop))
    }

    /// Suggests deleting a range, authored by the welcomed user.
    pub fn suggest_delete(&mut self, pos: u32, len: u32) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| e.suggest_delete(pos, len).map(drop))
    }

    /// Accepts every suggestion.
    pub fn accept_all(&mut self) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| {
            e.accept_all();
            Ok(())
        })
    }

    /// Rejects every suggestion.
    pub fn reject_all(&mut self) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| {
            e.reject_all();
            Ok(())
        })
    }

    /// Accepts the suggestions carrying `mark`.
    pub fn accept(&mut self, mark: &SuggestionMark) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| {
            e.accept(mark);
            Ok(())
        })
    }

    /// Rejects the suggestions carrying `mark`.
    pub fn reject(&mut self, mark: &SuggestionMark) -> Result<Option<Vec<u8>>> {
        self.edit_one(|e| {
            e.reject(mark);
            Ok(())
        })
    }

    /// Applies an editor's update (lib0 v1, e.g. from y-prosemirror in a browser) as a local
    /// edit: what it adds to the working state becomes one pending mutation, which is returned
    /// (`None` when the editor had nothing new). An update that is malformed, or needs changes
    /// this document does not have, is refused ([`ClientError::InvalidUpdate`]) and nothing is
    /// stored.
    pub fn apply_update(&mut self, update: &[u8]) -> Result<Option<Vec<u8>>> {
        let doc_id = self.doc_id;
        let update = ydoc::decode_checked(doc_id, update)?;
        self.edit_one(move |e| {
            e.txn
                .apply_update(update)
                .map_err(|err| ClientError::document(doc_id, err))?;
            if e.txn.has_missing_updates() {
                return Err(ClientError::InvalidUpdate {
                    doc_id,
                    code: syncline_protocol::ErrorCode::MissingDependency,
                    message: "the update needs changes this document does not have".to_owned(),
                });
            }
            Ok(())
        })
    }
}

/// An update that changes nothing (no structs, empty delete set), as Yjs encodes it.
fn empty_update() -> Vec<u8> {
    vec![0, 0]
}
