//! Paths in the record as the bytes they are: a path that is valid UTF-8 is a JSON
//! string as before, any other an array of its bytes. serde's own `PathBuf` refuses
//! to serialise a path that is not UTF-8, and a record that cannot be written loses
//! the daemon (issue 16: a run directory whose name is not UTF-8).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a path is written: text, or the bytes of one that is not UTF-8.
#[derive(Serialize)]
#[serde(untagged)]
enum Form<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

fn form(path: &Path) -> Form<'_> {
    match path.to_str() {
        Some(text) => Form::Text(text),
        None => Form::Bytes(path.as_os_str().as_bytes()),
    }
}

/// Reads either form straight into a path. (A derived untagged enum would buffer
/// each value and copy it once more: `list` reads several paths a record.)
struct PathVisitor;

impl<'de> Visitor<'de> for PathVisitor {
    type Value = PathBuf;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a path: a string, or an array of its bytes")
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<PathBuf, E> {
        Ok(PathBuf::from(text))
    }

    fn visit_string<E: Error>(self, text: String) -> Result<PathBuf, E> {
        Ok(PathBuf::from(text))
    }

    fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<PathBuf, E> {
        Ok(PathBuf::from(OsString::from_vec(bytes.to_vec())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PathBuf, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(PathBuf::from(OsString::from_vec(bytes)))
    }
}

/// A path read by [`PathVisitor`], for `Option`.
struct Read(PathBuf);

impl<'de> Deserialize<'de> for Read {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Read, D::Error> {
        deserializer.deserialize_any(PathVisitor).map(Read)
    }
}

/// Serialises a path.
pub(crate) fn serialize<S: Serializer>(value: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    form(value).serialize(serializer)
}

/// Deserialises a path.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    deserializer.deserialize_any(PathVisitor)
}

/// The same for an optional path.
pub(crate) mod option {
    use super::*;

    /// Serialises an optional path.
    pub(crate) fn serialize<S: Serializer>(
        value: &Option<PathBuf>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.as_deref().map(form).serialize(serializer)
    }

    /// Deserialises an optional path.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<PathBuf>, D::Error> {
        Option::<Read>::deserialize(deserializer).map(|read| read.map(|Read(path)| path))
    }
}
