//! TEMP stand-in until the hashing module lands.
#[derive(Clone, Copy, Debug)]
pub struct BlockDigest(pub u64);
impl BlockDigest { pub fn event_hash(&self) -> u64 { self.0 } }
#[derive(Clone, Debug)]
pub struct VllmBlockHasher;
impl VllmBlockHasher {
    pub fn hash_block_salted(&self, parent: Option<&BlockDigest>, tokens: &[u32], _s: Option<&str>) -> BlockDigest {
        BlockDigest(super::block_key::fast_chain(parent.map(|p| p.0).unwrap_or(1), tokens))
    }
}
#[derive(Clone, Copy, Debug)]
pub struct HashAlgo;
impl std::str::FromStr for HashAlgo { type Err = String; fn from_str(_: &str) -> Result<Self, String> { Ok(HashAlgo) } }
impl VllmBlockHasher { pub fn new(_: HashAlgo, _: crate::compat::VllmVersion, _: Option<&str>) -> Result<Self, String> { Ok(VllmBlockHasher) } }
