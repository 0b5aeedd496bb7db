//! Instance ids: the one rule the whole library (client, stores, HTTP) applies.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The id of an orchestration instance: any UTF-8 string of 1 to 256 bytes without control
/// characters.
///
/// Stores never use it raw as a file name or key prefix; `/`, `..` and any other valid id are
/// safe everywhere. Cloning it is cheap (a shared string).
///
/// ```
/// use durable_runtime::InstanceId;
///
/// assert!(InstanceId::new("retry-1735124567").is_ok());
/// assert!(InstanceId::new("").is_err());
/// assert!(InstanceId::new("tab\there").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(Arc<str>);

/// Why a string is not a valid [`InstanceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInstanceId {
    /// The string is empty.
    #[error("an instance id cannot be empty")]
    Empty,
    /// The string is longer than 256 bytes.
    #[error("an instance id is at most {max} bytes; this one has {len}", max = InstanceId::MAX_LEN)]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The string holds a control character.
    #[error("an instance id cannot contain control characters; found {found:?} at byte {at}")]
    ControlCharacter {
        /// The character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
}

impl InstanceId {
    /// The longest id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Checks `id` against the rule.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidInstanceId> {
        let id = id.into();
        check(&id)?;
        Ok(InstanceId(id.into()))
    }

    /// [`InstanceId::new`] from a borrowed string: one allocation, the id's own.
    pub(crate) fn from_str_checked(id: &str) -> Result<Self, InvalidInstanceId> {
        check(id)?;
        Ok(InstanceId(id.into()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The one rule.
fn check(id: &str) -> Result<(), InvalidInstanceId> {
    if id.is_empty() {
        return Err(InvalidInstanceId::Empty);
    }
    if id.len() > InstanceId::MAX_LEN {
        return Err(InvalidInstanceId::TooLong { len: id.len() });
    }
    // Control characters are C0 (< 0x20), DEL (0x7f) and C1 (U+0080..=U+009F, encoded
    // 0xC2 0x80..=0x9F): a byte scan finds any of them without decoding characters.
    let bytes = id.as_bytes();
    // Printable ASCII only (the usual id): one branch-free pass.
    if bytes.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    let suspect = bytes.iter().enumerate().position(|(i, &b)| {
        b < 0x20 || b == 0x7f || (b == 0xc2 && matches!(bytes.get(i + 1), Some(0x80..=0x9f)))
    });
    if let Some(at) = suspect {
        let found = id[at..].chars().next().expect("a character starts here");
        return Err(InvalidInstanceId::ControlCharacter { found, at });
    }
    Ok(())
}

impl Deref for InstanceId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for InstanceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for InstanceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl TryFrom<String> for InstanceId {
    type Error = InvalidInstanceId;
    fn try_from(id: String) -> Result<Self, Self::Error> {
        InstanceId::new(id)
    }
}

impl TryFrom<&str> for InstanceId {
    type Error = InvalidInstanceId;
    fn try_from(id: &str) -> Result<Self, Self::Error> {
        InstanceId::new(id)
    }
}

impl Serialize for InstanceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = InstanceId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an instance id")
            }
            fn visit_str<E: serde::de::Error>(self, id: &str) -> Result<InstanceId, E> {
                InstanceId::from_str_checked(id).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_rule() {
        assert!(InstanceId::new("a").is_ok());
        assert!(InstanceId::new("../../etc/passwd").is_ok());
        assert!(InstanceId::new("commande-é-✓").is_ok());
        assert!(InstanceId::new("x".repeat(256)).is_ok());
        assert_eq!(
            InstanceId::new("x".repeat(257)),
            Err(InvalidInstanceId::TooLong { len: 257 })
        );
        assert_eq!(InstanceId::new(""), Err(InvalidInstanceId::Empty));
        assert_eq!(
            InstanceId::new("a\nb"),
            Err(InvalidInstanceId::ControlCharacter { found: '\n', at: 1 })
        );
        assert!(serde_json::from_str::<InstanceId>("\"a\\u0000\"").is_err());
        for c in ['\u{7f}', '\u{80}', '\u{9f}', '\u{1b}'] {
            let id = format!("ok{c}");
            assert_eq!(
                InstanceId::new(id),
                Err(InvalidInstanceId::ControlCharacter { found: c, at: 2 }),
                "{c:?}"
            );
        }
        assert!(
            InstanceId::new("\u{a0}\u{c2}\u{2028}é").is_ok(),
            "not control characters"
        );
    }
}
