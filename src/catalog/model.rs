//! Model catalog: transformer shapes from each model's Hugging Face `config.json`, and the
//! quantities derived from them (parameter counts, weight bytes, KV bytes per token, FLOPs).
//!
//! | Model | L / H / heads / KV heads / head_dim | FFN / vocab / tied | params (non-embedding) | Source |
//! |---|---|---|---|---|
//! | Llama-3.2-1B | 16 / 2048 / 32 / 8 / 64 | 8192 / 128256 / yes | 1.2358 B (0.973 B) | \[pub: HF `meta-llama/Llama-3.2-1B` config.json]; counts \[derived] |
//! | Llama-3.1-8B | 32 / 4096 / 32 / 8 / 128 | 14336 / 128256 / no | 8.030 B (6.98 B) | \[pub: HF `meta-llama/Llama-3.1-8B` config.json]; counts \[derived] |
//! | Llama-3.1-70B | 80 / 8192 / 64 / 8 / 128 | 28672 / 128256 / no | 70.55 B (68.45 B) | \[pub: HF `meta-llama/Llama-3.1-70B` config.json]; counts \[derived] |
//! | Qwen3-32B | 64 / 5120 / 64 / 8 / 128 | 25600 / 151936 / no | 32.76 B (31.21 B) | \[pub: HF `Qwen/Qwen3-32B` config.json]; counts \[derived] |
//!
//! **Parameter count** (dense decoder, SwiGLU MLP, RMSNorm, no MLP bias):
//! ```text
//! q_dim   = heads·head_dim,  kv_dim = kv_heads·head_dim
//! layer   = H·q_dim + 2·H·kv_dim + q_dim·H          # q, k, v, o projections
//!         + [qkv_bias] (q_dim + 2·kv_dim)           # Qwen2-style biases
//!         + [qk_norm]  2·head_dim                   # Qwen3 per-head q/k RMSNorm
//!         + 3·H·I                                   # gate, up, down
//!         + 2·H                                     # input and post-attention RMSNorm
//! N_nonemb = L·layer + H                            # + final norm
//! N        = N_nonemb + V·H (embeddings) + [untied] V·H (lm_head)
//! ```
//! `N_nonemb` excludes the embedding table and lm_head; lm_head FLOPs are counted separately
//! (`2·V·H` per sampled row) as in `latency-models.md` §3.

use std::borrow::Cow;

use super::{nearest_name, CatalogError};

/// Shape and size of one dense decoder-only transformer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// Canonical name (catalog) or the source the config was read from.
    pub name: Cow<'static, str>,
    /// Decoder layers `L`.
    pub n_layers: u32,
    /// Hidden size `H`.
    pub hidden: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads (GQA groups).
    pub n_kv_heads: u32,
    /// Per-head dimension (not always `H / heads`: Qwen3-32B has 64·128 = 8192 ≠ 5120).
    pub head_dim: u32,
    /// MLP intermediate size `I`.
    pub intermediate: u32,
    /// Vocabulary size `V`.
    pub vocab: u32,
    /// lm_head shares the embedding matrix.
    pub tied_embeddings: bool,
    /// q/k/v projections carry a bias (Qwen2).
    pub qkv_bias: bool,
    /// Per-head RMSNorm on q and k (Qwen3).
    pub qk_norm: bool,
    /// All parameters, embeddings and lm_head included.
    pub n_params: u64,
    /// Parameters excluding embeddings and lm_head.
    pub n_params_nonemb: u64,
    /// Bytes per weight and per KV element as served (2 for bf16/fp16).
    pub dtype_bytes: u32,
}

impl ModelSpec {
    /// Fills `n_params` and `n_params_nonemb` from the shape (module doc formula).
    pub const fn with_param_counts(mut self) -> ModelSpec {
        let h = self.hidden as u64;
        let q_dim = self.n_heads as u64 * self.head_dim as u64;
        let kv_dim = self.n_kv_heads as u64 * self.head_dim as u64;
        let mut layer = h * q_dim + 2 * h * kv_dim + q_dim * h;
        if self.qkv_bias {
            layer += q_dim + 2 * kv_dim;
        }
        if self.qk_norm {
            layer += 2 * self.head_dim as u64;
        }
        layer += 3 * h * self.intermediate as u64 + 2 * h;
        let nonemb = self.n_layers as u64 * layer + h;
        let emb = self.vocab as u64 * h;
        let lm_head = if self.tied_embeddings { 0 } else { emb };
        self.n_params_nonemb = nonemb;
        self.n_params = nonemb + emb + lm_head;
        self
    }

    /// KV cache bytes per token over all layers: `2·L·kv_heads·head_dim·dtype_bytes`.
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * self.n_layers as u64
            * self.n_kv_heads as u64
            * self.head_dim as u64
            * self.dtype_bytes as u64
    }

    /// KV heads each tensor-parallel rank stores: `max(1, kv_heads/tp)` (replicated when tp > kv_heads).
    pub fn kv_heads_per_rank(&self, tp: u32) -> u32 {
        (self.n_kv_heads / tp.max(1)).max(1)
    }

    /// KV cache bytes per token on one tensor-parallel rank.
    pub fn kv_bytes_per_token_per_rank(&self, tp: u32) -> u64 {
        2 * self.n_layers as u64
            * self.kv_heads_per_rank(tp) as u64
            * self.head_dim as u64
            * self.dtype_bytes as u64
    }

    /// Weight bytes `W = N·dtype_bytes`, all ranks together.
    pub fn weight_bytes(&self) -> u64 {
        self.n_params * self.dtype_bytes as u64
    }

    /// GEMM FLOPs per token outside attention and lm_head: `2·N_nonemb`.
    pub fn linear_flops_per_token(&self) -> f64 {
        2.0 * self.n_params_nonemb as f64
    }

    /// lm_head FLOPs per sampled row: `2·V·H`.
    pub fn lm_head_flops_per_token(&self) -> f64 {
        2.0 * self.vocab as f64 * self.hidden as f64
    }

    /// Attention FLOPs (QKᵀ and PV) per (query, context token) pair: `4·L·heads·head_dim`.
    pub fn attn_flops_per_pair(&self) -> f64 {
        4.0 * self.n_layers as f64 * self.n_heads as f64 * self.head_dim as f64
    }

    /// Reads a Hugging Face `config.json`. `source_name` names the model and appears in errors.
    ///
    /// Defaults: `num_key_value_heads` = heads, `head_dim` = hidden/heads, `tie_word_embeddings` =
    /// false (the Llama/Qwen config default), dtype bf16. `float32` checkpoints count as 2 bytes
    /// because vLLM's `dtype=auto` serves them in 16 bits. A `text_config` object is used when the
    /// top level has no `hidden_size` (multimodal wrappers).
    pub fn from_hf_config_json(text: &str, source_name: &str) -> Result<ModelSpec, CatalogError> {
        let root: serde_json::Value =
            serde_json::from_str(text).map_err(|e| CatalogError::Json {
                source_name: source_name.to_string(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?;
        let cfg = match root.get("text_config") {
            Some(tc) if root.get("hidden_size").is_none() && tc.is_object() => tc,
            _ => &root,
        };
        let r = ConfigReader {
            cfg,
            source_name: source_name.to_string(),
        };
        if !cfg.is_object() {
            return Err(r.invalid("(root)", cfg, "a JSON object"));
        }
        for key in ["num_experts", "num_local_experts", "n_routed_experts"] {
            if cfg.get(key).and_then(|v| v.as_u64()).is_some_and(|n| n > 1) {
                return Err(CatalogError::Unsupported {
                    source_name: r.source_name,
                    what: format!("mixture-of-experts (\"{key}\" > 1)"),
                });
            }
        }
        let n_layers = r.required_u32("num_hidden_layers")?;
        let hidden = r.required_u32("hidden_size")?;
        let n_heads = r.required_u32("num_attention_heads")?;
        let n_kv_heads = r.optional_u32("num_key_value_heads")?.unwrap_or(n_heads);
        let head_dim = match r.optional_u32("head_dim")? {
            Some(d) => d,
            None if hidden % n_heads == 0 => hidden / n_heads,
            None => {
                return Err(r.invalid(
                    "head_dim",
                    &serde_json::Value::Null,
                    "a value (hidden_size is not a multiple of num_attention_heads)",
                ))
            }
        };
        let intermediate = r.required_u32("intermediate_size")?;
        let vocab = r.required_u32("vocab_size")?;
        let tied_embeddings = r.optional_bool("tie_word_embeddings")?.unwrap_or(false);
        let model_type = cfg.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        let qkv_bias = r
            .optional_bool("attention_bias")?
            .unwrap_or(model_type == "qwen2");
        let qk_norm = model_type == "qwen3";
        let dtype_bytes = r.dtype_bytes()?;
        Ok(ModelSpec {
            name: Cow::Owned(source_name.to_string()),
            n_layers,
            hidden,
            n_heads,
            n_kv_heads,
            head_dim,
            intermediate,
            vocab,
            tied_embeddings,
            qkv_bias,
            qk_norm,
            n_params: 0,
            n_params_nonemb: 0,
            dtype_bytes,
        }
        .with_param_counts())
    }
}

/// Every catalogued model, in the order of the module table.
pub static MODELS: &[ModelSpec] = &[
    llama(
        Cow::Borrowed("Llama-3.2-1B"),
        16,
        2048,
        32,
        8,
        64,
        8192,
        true,
    ),
    llama(
        Cow::Borrowed("Llama-3.1-8B"),
        32,
        4096,
        32,
        8,
        128,
        14336,
        false,
    ),
    llama(
        Cow::Borrowed("Llama-3.1-70B"),
        80,
        8192,
        64,
        8,
        128,
        28672,
        false,
    ),
    ModelSpec {
        name: Cow::Borrowed("Qwen3-32B"),
        n_layers: 64,
        hidden: 5120,
        n_heads: 64,
        n_kv_heads: 8,
        head_dim: 128,
        intermediate: 25600,
        vocab: 151936,
        tied_embeddings: false,
        qkv_bias: false,
        qk_norm: true,
        n_params: 0,
        n_params_nonemb: 0,
        dtype_bytes: 2,
    }
    .with_param_counts(),
];

/// Extra normalised names per catalog entry (the canonical name, lowercased, is always accepted).
/// Llama-3.3-70B shares Llama-3.1-70B's architecture; Llama-3-8B shares Llama-3.1-8B's.
const MODEL_ALIASES: &[(&str, &str)] = &[
    ("llama-3.2-1b-instruct", "Llama-3.2-1B"),
    ("llama-3.1-8b-instruct", "Llama-3.1-8B"),
    ("llama-3-8b", "Llama-3.1-8B"),
    ("llama-3-8b-instruct", "Llama-3.1-8B"),
    ("llama-3.1-70b-instruct", "Llama-3.1-70B"),
    ("llama-3.3-70b", "Llama-3.1-70B"),
    ("llama-3.3-70b-instruct", "Llama-3.1-70B"),
];

/// Looks a model up by catalog name, alias, HF id (`meta-llama/Llama-3.2-1B`) or `hf://` URI.
pub fn model(name: &str) -> Result<&'static ModelSpec, CatalogError> {
    let key = normalize(name);
    let canonical = MODELS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(&key))
        .map(|m| m.name.as_ref())
        .or_else(|| {
            MODEL_ALIASES
                .iter()
                .find(|(a, _)| *a == key)
                .map(|(_, c)| *c)
        });
    if let Some(c) = canonical {
        if let Some(m) = MODELS.iter().find(|m| m.name == c) {
            return Ok(m);
        }
    }
    let lowered: Vec<(String, &'static str)> = MODELS
        .iter()
        .filter_map(|m| match &m.name {
            Cow::Borrowed(s) => Some((s.to_ascii_lowercase(), *s)),
            Cow::Owned(_) => None,
        })
        .collect();
    let candidates = lowered
        .iter()
        .map(|(l, n)| (l.as_str(), *n))
        .chain(MODEL_ALIASES.iter().copied());
    Err(CatalogError::UnknownModel {
        name: name.to_string(),
        valid: MODELS
            .iter()
            .map(|m| m.name.as_ref())
            .collect::<Vec<_>>()
            .join(", "),
        suggestion: nearest_name(&key, candidates),
    })
}

#[allow(clippy::too_many_arguments)]
const fn llama(
    name: Cow<'static, str>,
    n_layers: u32,
    hidden: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    intermediate: u32,
    tied_embeddings: bool,
) -> ModelSpec {
    ModelSpec {
        name,
        n_layers,
        hidden,
        n_heads,
        n_kv_heads,
        head_dim,
        intermediate,
        vocab: 128256,
        tied_embeddings,
        qkv_bias: false,
        qk_norm: false,
        n_params: 0,
        n_params_nonemb: 0,
        dtype_bytes: 2,
    }
    .with_param_counts()
}

/// `hf://org/Name-Instruct` → `name-instruct`; an older `Meta-` prefix is dropped.
fn normalize(name: &str) -> String {
    let s = name.trim();
    let s = s.strip_prefix("hf://").unwrap_or(s);
    let s = s.trim_end_matches('/');
    let s = s.rsplit('/').next().unwrap_or(s);
    let lower = s.to_ascii_lowercase().replace([' ', '_'], "-");
    lower.strip_prefix("meta-").unwrap_or(&lower).to_string()
}

struct ConfigReader<'a> {
    cfg: &'a serde_json::Value,
    source_name: String,
}

impl ConfigReader<'_> {
    fn invalid(
        &self,
        field: &'static str,
        v: &serde_json::Value,
        expected: &'static str,
    ) -> CatalogError {
        CatalogError::InvalidField {
            source_name: self.source_name.clone(),
            field,
            value: v.to_string(),
            expected,
        }
    }

    fn optional_u32(&self, field: &'static str) -> Result<Option<u32>, CatalogError> {
        match self.cfg.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 && n <= u32::MAX as u64 => Ok(Some(n as u32)),
                _ => Err(self.invalid(field, v, "a positive integer")),
            },
        }
    }

    fn required_u32(&self, field: &'static str) -> Result<u32, CatalogError> {
        self.optional_u32(field)?
            .ok_or_else(|| CatalogError::MissingField {
                source_name: self.source_name.clone(),
                field,
            })
    }

    fn optional_bool(&self, field: &'static str) -> Result<Option<bool>, CatalogError> {
        match self.cfg.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.invalid(field, v, "true or false")),
        }
    }

    fn dtype_bytes(&self) -> Result<u32, CatalogError> {
        for field in ["torch_dtype", "dtype"] {
            let Some(v) = self.cfg.get(field) else {
                continue;
            };
            let Some(s) = v.as_str() else {
                return Err(self.invalid(field, v, "a dtype string such as \"bfloat16\""));
            };
            let s = s.trim_start_matches("torch.").to_ascii_lowercase();
            return match s.as_str() {
                "bfloat16" | "float16" | "half" | "bf16" | "fp16" | "float32" | "float"
                | "fp32" => Ok(2),
                _ if s.contains("float8") || s.contains("fp8") => Ok(1),
                _ => Err(self.invalid(field, v, "bfloat16, float16, float32 or a float8 type")),
            };
        }
        Ok(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA_3_2_1B_CONFIG: &str = r#"{
      "architectures": ["LlamaForCausalLM"],
      "attention_bias": false,
      "attention_dropout": 0.0,
      "bos_token_id": 128000,
      "eos_token_id": 128001,
      "head_dim": 64,
      "hidden_act": "silu",
      "hidden_size": 2048,
      "initializer_range": 0.02,
      "intermediate_size": 8192,
      "max_position_embeddings": 131072,
      "mlp_bias": false,
      "model_type": "llama",
      "num_attention_heads": 32,
      "num_hidden_layers": 16,
      "num_key_value_heads": 8,
      "pretraining_tp": 1,
      "rms_norm_eps": 1e-05,
      "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                       "original_max_position_embeddings": 8192, "rope_type": "llama3"},
      "rope_theta": 500000.0,
      "tie_word_embeddings": true,
      "torch_dtype": "bfloat16",
      "transformers_version": "4.45.0.dev0",
      "use_cache": true,
      "vocab_size": 128256
    }"#;

    #[test]
    fn param_counts_match_spec() {
        let m1 = model("Llama-3.2-1B").unwrap();
        assert_eq!(m1.n_params, 1_235_814_400);
        assert!((m1.n_params as f64 / 1e9 - 1.2358).abs() < 5e-5);
        assert!((m1.n_params_nonemb as f64 / 1e9 - 0.973).abs() < 5e-4);
        let m8 = model("Llama-3.1-8B").unwrap();
        assert_eq!(m8.n_params, 8_030_261_248);
        assert!((m8.n_params_nonemb as f64 / 1e9 - 6.98).abs() < 5e-3);
        let m70 = model("Llama-3.1-70B").unwrap();
        assert!((m70.n_params as f64 / 1e9 - 70.55).abs() < 0.01);
        let q32 = model("Qwen3-32B").unwrap();
        // Qwen's model card: 32.8 B parameters.
        assert!((q32.n_params as f64 / 1e9 - 32.76).abs() < 0.01);
    }

    #[test]
    fn derived_quantities_match_spec_table() {
        let m1 = model("Llama-3.2-1B").unwrap();
        let m8 = model("Llama-3.1-8B").unwrap();
        assert_eq!(m1.kv_bytes_per_token(), 32768);
        assert_eq!(m8.kv_bytes_per_token(), 131072);
        assert!((m1.weight_bytes() as f64 / 1e9 - 2.47).abs() < 0.01);
        assert!((m8.weight_bytes() as f64 / 1e9 - 16.06).abs() < 0.01);
        assert!((m1.linear_flops_per_token() / 1e9 - 1.95).abs() < 0.01);
        assert!((m8.linear_flops_per_token() / 1e9 - 13.96).abs() < 0.01);
        assert!((m1.lm_head_flops_per_token() / 1e9 - 0.53).abs() < 0.01);
        assert!((m8.lm_head_flops_per_token() / 1e9 - 1.05).abs() < 0.01);
        assert_eq!(m1.attn_flops_per_pair(), 131072.0);
        assert_eq!(m8.attn_flops_per_pair(), 524288.0);
    }

    #[test]
    fn kv_heads_split_then_replicate_under_tp() {
        let m70 = model("Llama-3.1-70B").unwrap();
        assert_eq!(m70.kv_heads_per_rank(1), 8);
        assert_eq!(m70.kv_heads_per_rank(4), 2);
        assert_eq!(m70.kv_heads_per_rank(16), 1);
        assert_eq!(
            m70.kv_bytes_per_token_per_rank(4) * 4,
            m70.kv_bytes_per_token()
        );
    }

    #[test]
    fn names_aliases_and_hf_ids_resolve() {
        for n in [
            "Llama-3.2-1B",
            "llama-3.2-1b",
            "Llama-3.2-1B-Instruct",
            "meta-llama/Llama-3.2-1B",
            "hf://meta-llama/Llama-3.2-1B",
            "hf://meta-llama/Llama-3.2-1B-Instruct",
        ] {
            assert_eq!(model(n).unwrap().name, "Llama-3.2-1B", "{n}");
        }
        assert_eq!(
            model("meta-llama/Meta-Llama-3.1-8B-Instruct").unwrap().name,
            "Llama-3.1-8B"
        );
        assert_eq!(
            model("meta-llama/Llama-3.3-70B-Instruct").unwrap().name,
            "Llama-3.1-70B"
        );
        assert_eq!(model("Qwen/Qwen3-32B").unwrap().name, "Qwen3-32B");
    }

    #[test]
    fn unknown_model_suggests_nearest() {
        let err = model("Llama-3.2-1C").unwrap_err();
        assert!(matches!(
            err,
            CatalogError::UnknownModel {
                suggestion: Some("Llama-3.2-1B"),
                ..
            }
        ));
        assert!(err.to_string().contains("did you mean \"Llama-3.2-1B\"?"));
        let err = model("mistral/Mixtral-8x7B").unwrap_err();
        assert!(matches!(
            err,
            CatalogError::UnknownModel {
                suggestion: None,
                ..
            }
        ));
    }

    #[test]
    fn hf_config_reproduces_catalog_entry() {
        let m =
            ModelSpec::from_hf_config_json(LLAMA_3_2_1B_CONFIG, "meta-llama/Llama-3.2-1B").unwrap();
        let cat = model("Llama-3.2-1B").unwrap();
        assert_eq!(m.name, "meta-llama/Llama-3.2-1B");
        assert_eq!(
            ModelSpec {
                name: cat.name.clone(),
                ..m
            },
            *cat
        );
    }

    #[test]
    fn hf_config_defaults_apply() {
        let text = r#"{"num_hidden_layers": 2, "hidden_size": 256, "num_attention_heads": 4,
                       "intermediate_size": 512, "vocab_size": 1000}"#;
        let m = ModelSpec::from_hf_config_json(text, "tiny").unwrap();
        assert_eq!(m.n_kv_heads, 4);
        assert_eq!(m.head_dim, 64);
        assert!(!m.tied_embeddings);
        assert_eq!(m.dtype_bytes, 2);
        // 2·(4·256·256 + 3·256·512 + 2·256) + 256 non-embedding, plus two 1000×256 matrices.
        assert_eq!(m.n_params_nonemb, 2 * (4 * 65536 + 393216 + 512) + 256);
        assert_eq!(m.n_params, m.n_params_nonemb + 2 * 256_000);
    }

    #[test]
    fn hf_config_errors_name_the_field() {
        let missing = r#"{"num_hidden_layers": 2, "hidden_size": 256, "num_attention_heads": 4,
                          "vocab_size": 1000}"#;
        let err = ModelSpec::from_hf_config_json(missing, "cfg.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cfg.json: missing field \"intermediate_size\""
        );

        let bad = r#"{"num_hidden_layers": "two", "hidden_size": 256, "num_attention_heads": 4,
                      "intermediate_size": 512, "vocab_size": 1000}"#;
        let err = ModelSpec::from_hf_config_json(bad, "cfg.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cfg.json: field \"num_hidden_layers\": expected a positive integer, got \"two\""
        );

        let dtype = r#"{"num_hidden_layers": 2, "hidden_size": 256, "num_attention_heads": 4,
                        "intermediate_size": 512, "vocab_size": 1000, "torch_dtype": "int3"}"#;
        let err = ModelSpec::from_hf_config_json(dtype, "cfg.json").unwrap_err();
        assert!(err.to_string().contains("\"torch_dtype\""), "{err}");

        let err = ModelSpec::from_hf_config_json("{\"a\": ", "cfg.json").unwrap_err();
        assert!(matches!(err, CatalogError::Json { line: 1, .. }), "{err:?}");

        let moe = r#"{"num_hidden_layers": 2, "hidden_size": 256, "num_attention_heads": 4,
                      "intermediate_size": 512, "vocab_size": 1000, "num_experts": 8}"#;
        assert!(matches!(
            ModelSpec::from_hf_config_json(moe, "moe.json"),
            Err(CatalogError::Unsupported { .. })
        ));
    }

    #[test]
    fn qwen3_config_sets_qk_norm() {
        let text = r#"{"architectures": ["Qwen3ForCausalLM"], "head_dim": 128, "hidden_size": 5120,
            "intermediate_size": 25600, "model_type": "qwen3", "num_attention_heads": 64,
            "num_hidden_layers": 64, "num_key_value_heads": 8, "tie_word_embeddings": false,
            "torch_dtype": "bfloat16", "vocab_size": 151936, "attention_bias": false}"#;
        let m = ModelSpec::from_hf_config_json(text, "Qwen/Qwen3-32B").unwrap();
        let cat = model("Qwen3-32B").unwrap();
        assert!(m.qk_norm);
        assert_eq!(m.n_params, cat.n_params);
    }
}
