//! Per-block extra keys: the third element of vLLM's block tuple (`vllm.md` §1.5).

use crate::compat::VllmVersion;

/// One Python value inside `extra_keys`, limited to the types vLLM puts there.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExtraKey {
    /// A `str` (LoRA name, cache salt, multimodal identifier, tag).
    Str(String),
    /// A `bytes` object (prompt-embeds digest).
    Bytes(Vec<u8>),
    /// An `int` (multimodal offset, [0.11] `lora_int_id`).
    Int(i64),
    /// A `tuple` (the [0.33] tagged entries).
    Tuple(Vec<ExtraKey>),
}

impl ExtraKey {
    /// The cache-salt entry in `version`'s form: [0.33] the tagged tuple
    /// `("cache_salt", salt)`, [0.11] the bare string `salt`.
    pub fn cache_salt(version: VllmVersion, salt: &str) -> ExtraKey {
        match version {
            VllmVersion::V0_33 => ExtraKey::Tuple(vec![
                ExtraKey::Str("cache_salt".to_string()),
                ExtraKey::Str(salt.to_string()),
            ]),
            VllmVersion::V0_11 => ExtraKey::Str(salt.to_string()),
        }
    }
}

/// The non-empty `extra_keys` tuple of one block; `Option<&ExtraKeys>` = `None` is vLLM's `None`.
///
/// vLLM builds it as `tuple(lora + mm + cache_salt + prompt_embeds)` and passes `None`
/// when that list is empty, so an empty `ExtraKeys` cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExtraKeys(Vec<ExtraKey>);

impl ExtraKeys {
    /// Wraps the entries in vLLM's order; `None` when there are none (vLLM hashes `None`).
    pub fn new(keys: Vec<ExtraKey>) -> Option<ExtraKeys> {
        (!keys.is_empty()).then_some(ExtraKeys(keys))
    }

    /// Extra keys of block 0 of a request with `cache_salt` and nothing else.
    ///
    /// An empty salt counts as no salt, as in vLLM (`if request.cache_salt`).
    pub fn first_block(version: VllmVersion, cache_salt: Option<&str>) -> Option<ExtraKeys> {
        match cache_salt {
            Some(salt) if !salt.is_empty() => {
                Some(ExtraKeys(vec![ExtraKey::cache_salt(version, salt)]))
            }
            _ => None,
        }
    }

    /// The entries, in tuple order.
    pub fn keys(&self) -> &[ExtraKey] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_forms_per_version() {
        let new = ExtraKeys::first_block(VllmVersion::V0_33, Some("s")).unwrap();
        assert_eq!(
            new.keys(),
            &[ExtraKey::Tuple(vec![
                ExtraKey::Str("cache_salt".into()),
                ExtraKey::Str("s".into())
            ])]
        );
        let old = ExtraKeys::first_block(VllmVersion::V0_11, Some("s")).unwrap();
        assert_eq!(old.keys(), &[ExtraKey::Str("s".into())]);
    }

    #[test]
    fn empty_means_none() {
        assert_eq!(ExtraKeys::new(vec![]), None);
        assert_eq!(ExtraKeys::first_block(VllmVersion::V0_33, None), None);
        assert_eq!(ExtraKeys::first_block(VllmVersion::V0_33, Some("")), None);
        assert!(ExtraKeys::new(vec![ExtraKey::Int(1)]).is_some());
    }
}
