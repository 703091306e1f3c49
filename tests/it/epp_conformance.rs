//! EPP conformance fixtures: request view + endpoint views (+ index entries,
//! + prior routing history) + EndpointPickerConfig → expected per-scorer
//! scores, totals and pick.
//!
//! Fixture format (`tests/data/epp_fixtures/*.json`):
//! - `config`: EndpointPickerConfig YAML text ("" = no config);
//! - `seed`, `now_ns`: optional (default 1 and 0);
//! - `index`: `[{key, entries: [[endpoint id, tier], ...]}]` for model `request.model`;
//! - `prior`: requests already routed, either `{request, primary, prefill?, primary_profile?}`
//!   (PreRequest hooks run with that result) or `{request, schedule_on: [ids]}`
//!   (a full cycle over those endpoints, then PreRequest);
//! - `request`: `{id, model, tokens?, n_prompt_tokens?, block_keys?, session_token?, cache_salt?}`;
//! - `endpoints`: EndpointView fields (`id`, `name`, optional metrics, and
//!   `lora: {active: [..], waiting: [..], max_active}`);
//! - `expected`: `{primary_profile, profiles: [{name, endpoints, scores: {scorer: [..]}, totals, pick}]}`
//!   in run order, or `{error: substring}`.

use kvsim::epp::config::load_yaml;
use kvsim::epp::plugin::{PodEntry, PreRequestContext, SchedulingContext, Tier};
use kvsim::epp::profile::ProfileRunResult;
use kvsim::epp::scheduler::{Scheduler, SchedulingResult};
use kvsim::epp::view::{EndpointId, EndpointView, LoraView, RequestView, TokenPrompt};
use kvsim::index::{IndexConfig, KvIndex};
use rand::SeedableRng;
use serde_json::Value;
use std::sync::Arc;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

struct Req {
    id: u64,
    model: String,
    tokens: Vec<u32>,
    n_tokens: u32,
    keys: Vec<u64>,
    session: Option<String>,
    salt: Option<String>,
}

fn req(v: &Value) -> Req {
    let tokens: Vec<u32> = v["tokens"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_u64().unwrap() as u32).collect())
        .unwrap_or_default();
    Req {
        id: v["id"].as_u64().unwrap(),
        model: v["model"].as_str().unwrap_or("m").to_string(),
        n_tokens: v["n_prompt_tokens"]
            .as_u64()
            .map_or(tokens.len() as u32, |n| n as u32),
        tokens,
        keys: v["block_keys"]
            .as_array()
            .map(|a| a.iter().map(|k| k.as_u64().unwrap()).collect())
            .unwrap_or_default(),
        session: v["session_token"].as_str().map(str::to_string),
        salt: v["cache_salt"].as_str().map(str::to_string),
    }
}

fn view<'a>(r: &'a Req, prompt: &'a TokenPrompt<'a>) -> RequestView<'a> {
    let mut v = RequestView::new(r.id, &r.model, r.n_tokens);
    v.block_keys = &r.keys;
    v.prompt = prompt;
    v.session_token = r.session.as_deref();
    v.cache_salt = r.salt.as_deref();
    v
}

fn endpoints(v: &Value) -> (Vec<String>, Vec<Option<String>>, Vec<Value>) {
    let a = v.as_array().unwrap();
    (
        a.iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect(),
        a.iter()
            .map(|e| e["role"].as_str().map(str::to_string))
            .collect(),
        a.clone(),
    )
}

/// The `lora` object of an endpoint: (active, waiting, max_active).
fn lora_of(e: &Value) -> (Vec<&str>, Vec<&str>, u32) {
    let names = |k: &str| -> Vec<&str> {
        e["lora"][k]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n.as_str().unwrap())
            .collect()
    };
    let max = e["lora"]["max_active"].as_u64().unwrap_or(0) as u32;
    (names("active"), names("waiting"), max)
}

fn ep_view<'a>(
    e: &Value,
    name: &'a str,
    role: Option<&'a str>,
    lora: &'a (Vec<&'a str>, Vec<&'a str>, u32),
) -> EndpointView<'a> {
    let u = |k: &str| e[k].as_u64().unwrap_or(0);
    let mut v = EndpointView::new(EndpointId(u("id") as u32), name);
    v.role = role;
    v.waiting_queue_len = u("waiting_queue_len") as u32;
    v.running_requests = u("running_requests") as u32;
    v.kv_usage = e["kv_usage"].as_f64().unwrap_or(0.0);
    v.num_gpu_blocks = e["num_gpu_blocks"].as_u64().map(|n| n as u32);
    v.block_size_tokens = e["block_size_tokens"].as_u64().map(|n| n as u32);
    v.in_flight_requests = u("in_flight_requests") as u32;
    v.in_flight_tokens = u("in_flight_tokens");
    v.metrics_age_ns = u("metrics_age_ns");
    v.lora = LoraView {
        active: &lora.0,
        waiting: &lora.1,
        max_active: lora.2,
    };
    v
}

fn tier(s: &str) -> Tier {
    Tier::from_medium(Some(s))
}

fn run_fixture(path: &std::path::Path) {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut sched: Scheduler = load_yaml(fx["config"].as_str().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .scheduler;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(fx["seed"].as_u64().unwrap_or(1));
    let now_ns = fx["now_ns"].as_u64().unwrap_or(0);
    let r = req(&fx["request"]);
    let mut index = KvIndex::new(IndexConfig::default());
    for item in fx["index"].as_array().into_iter().flatten() {
        let entries: Vec<PodEntry> = item["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| PodEntry {
                pod: EndpointId(p[0].as_u64().unwrap() as u32),
                tier: tier(p[1].as_str().unwrap()),
                speculative: false,
            })
            .collect();
        index.add(&r.model, &[item["key"].as_u64().unwrap()], &entries);
    }
    let (names, roles, raw_eps) = endpoints(&fx["endpoints"]);
    let loras: Vec<_> = raw_eps.iter().map(lora_of).collect();
    let eps: Vec<EndpointView<'_>> = raw_eps
        .iter()
        .enumerate()
        .map(|(i, e)| ep_view(e, &names[i], roles[i].as_deref(), &loras[i]))
        .collect();

    for prior in fx["prior"].as_array().into_iter().flatten() {
        let pr = req(&prior["request"]);
        let prompt = TokenPrompt(&pr.tokens);
        let pv = view(&pr, &prompt);
        let result = if let Some(on) = prior["schedule_on"].as_array() {
            let ids: Vec<u64> = on.iter().map(|x| x.as_u64().unwrap()).collect();
            let sub: Vec<EndpointView<'_>> = eps
                .iter()
                .filter(|e| ids.contains(&u64::from(e.id.0)))
                .copied()
                .collect();
            let mut ctx = SchedulingContext {
                now_ns,
                kv_index: Some(&mut index),
                rng: &mut rng,
            };
            sched
                .schedule(&pv, &sub, &mut ctx)
                .unwrap_or_else(|e| panic!("{name}: prior: {e}"))
        } else {
            let primary_profile = prior["primary_profile"].as_str().unwrap_or("default");
            let mut profiles = vec![ProfileRunResult::with_target(
                primary_profile,
                Some(EndpointId(prior["primary"].as_u64().unwrap() as u32)),
            )];
            if let Some(p) = prior["prefill"].as_u64() {
                profiles.push(ProfileRunResult::with_target(
                    "prefill",
                    Some(EndpointId(p as u32)),
                ));
            }
            SchedulingResult {
                request_id: pr.id,
                primary_profile: Arc::from(primary_profile),
                profiles,
                approx_prefix_match: None,
            }
        };
        sched.pre_request(
            &mut PreRequestContext {
                now_ns,
                speculative_index: Some(&mut index),
            },
            &pv,
            &result,
        );
    }

    let prompt = TokenPrompt(&r.tokens);
    let rv = view(&r, &prompt);
    let mut ctx = SchedulingContext {
        now_ns,
        kv_index: Some(&mut index),
        rng: &mut rng,
    };
    let res = sched.schedule(&rv, &eps, &mut ctx);
    let exp = &fx["expected"];
    if let Some(want) = exp["error"].as_str() {
        let e = res
            .err()
            .unwrap_or_else(|| panic!("{name}: expected error containing {want:?}"));
        assert!(
            e.to_string().contains(want),
            "{name}: error {e} lacks {want:?}"
        );
        return;
    }
    let res = res.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        &*res.primary_profile,
        exp["primary_profile"].as_str().unwrap(),
        "{name}: primary profile"
    );
    let want_profiles = exp["profiles"].as_array().unwrap();
    assert_eq!(
        res.profiles.len(),
        want_profiles.len(),
        "{name}: profiles run: {:?}",
        res.profiles
            .iter()
            .map(|p| p.profile.clone())
            .collect::<Vec<_>>()
    );
    for (got, want) in res.profiles.iter().zip(want_profiles) {
        let pn = want["name"].as_str().unwrap();
        assert_eq!(&*got.profile, pn, "{name}: profile order");
        let want_eps: Vec<u32> = want["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            got.endpoints.iter().map(|e| e.0).collect::<Vec<_>>(),
            want_eps,
            "{name}/{pn}: endpoints after filters"
        );
        for (scorer, vals) in want["scores"].as_object().unwrap() {
            let s_idx = got
                .scorers
                .iter()
                .position(|m| &*m.name == scorer.as_str())
                .unwrap_or_else(|| panic!("{name}/{pn}: no scorer {scorer}"));
            for (e_idx, v) in vals.as_array().unwrap().iter().enumerate() {
                let g = got.raw_score(e_idx, s_idx).unwrap_or(0.0);
                assert!(
                    (g - f(v)).abs() < 1e-9,
                    "{name}/{pn}/{scorer}: endpoint #{e_idx}: got {g}, want {v}"
                );
            }
        }
        for (e_idx, v) in want["totals"].as_array().unwrap().iter().enumerate() {
            assert!(
                (got.totals[e_idx] - f(v)).abs() < 1e-9,
                "{name}/{pn}: total #{e_idx}: got {}, want {v}",
                got.totals[e_idx]
            );
        }
        assert_eq!(
            got.target().map(|e| u64::from(e.0)),
            want["pick"].as_u64(),
            "{name}/{pn}: pick"
        );
    }
}

#[test]
fn all_fixtures_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/epp_fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 8,
        "expected at least 8 fixtures, found {}",
        paths.len()
    );
    for p in &paths {
        run_fixture(p);
    }
}
