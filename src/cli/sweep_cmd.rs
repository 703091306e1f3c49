//! `kvsim sweep SCENARIO --set key=v1,v2,... [--set ...] [--out DIR] [--jobs N] [--seed S] [--keep-runs]`:
//! the cartesian grid of every `--set` list, simulated in parallel.
//!
//! Grid order is odometer order: the first `--set` varies slowest. Each
//! point's seed derives from the base seed and its canonical `key=value`
//! list ([`super::point::point_seed`]), so its row is the same on 1 thread or
//! many, alone or in any grid. Outputs in `DIR`:
//! - `sweep.csv`: one row per point in grid order: the swept keys, `point_seed`,
//!   the metrics of [`super::point::METRIC_COLUMNS`], and `error` (empty, or
//!   why the point could not run; one failed point never stops the sweep,
//!   but a `--set` that cannot apply stops it before the first point, and
//!   the command fails when every point failed);
//! - `sweep.json`: the same rows as objects;
//! - `sweep_plot.csv`: `series,<first key>,<metrics>` for `kvsim report --sweep`
//!   (`series` names the other keys' values);
//! - `points/<safe-name>/`: each point's run outputs, with `--keep-runs`.
//!
//! Resuming: rows of an existing `sweep.csv` and `sweep.partial.csv` (appended
//! as each point finishes) whose key values match a grid point, whose
//! `point_seed` is the one the point would get, and whose `error` is empty are
//! kept, not re-run; the scenario file is assumed unchanged. Rows for points
//! outside the grid are kept after the grid rows. The final files are written
//! to temporary names and renamed, so a crash leaves the old `sweep.csv` whole.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::point::{self, SeedRule, METRIC_COLUMNS};

/// Version of the `sweep.json` schema.
pub(crate) const SWEEP_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// Scenario file (YAML).
    scenario: PathBuf,
    /// `key=v1,v2,...`: a scenario path (`pods[0].count`, `workload.arrivals.rate_per_s`,
    /// `router.config.schedulingProfiles[0].plugins[1].weight`) or an alias
    /// (`decode`, `prefill`, `rate`) and its values; repeat for a grid.
    #[arg(long = "set", value_name = "KEY=V1,V2,...", required = true)]
    sets: Vec<String>,
    /// Output directory (default: out/<scenario stem>-sweep).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Points simulated at once (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Base seed every point's seed derives from (default: the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Also write each point's run outputs under DIR/points/<point>/.
    #[arg(long)]
    keep_runs: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// One `--set` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Axis {
    /// The key.
    pub(crate) key: String,
    /// Its values, as written.
    pub(crate) values: Vec<String>,
}

/// A sweep to run.
#[derive(Clone, Debug)]
pub(crate) struct SweepSpec {
    /// Scenario file.
    pub(crate) scenario: PathBuf,
    /// The grid's axes, slowest first.
    pub(crate) axes: Vec<Axis>,
    /// `--seed`.
    pub(crate) seed: Option<u64>,
    /// Worker threads.
    pub(crate) jobs: usize,
    /// `--keep-runs`.
    pub(crate) keep_runs: bool,
    /// Draw a progress bar (only on a terminal).
    pub(crate) show_progress: bool,
}

/// What a finished sweep did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SweepOutcome {
    /// Points in the grid.
    pub(crate) n_points: usize,
    /// Points kept from an earlier run.
    pub(crate) n_resumed: usize,
    /// Points simulated now.
    pub(crate) n_run: usize,
    /// Points with an error.
    pub(crate) n_failed: usize,
    /// The first failed point's error, in grid order.
    pub(crate) first_error: Option<String>,
}

pub(crate) fn run(a: &SweepArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let axes = a
        .sets
        .iter()
        .map(|s| parse_axis(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let jobs = match a.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| point::default_out_dir(&a.scenario, "sweep"));
    let spec = SweepSpec {
        scenario: a.scenario.clone(),
        axes,
        seed: a.seed,
        jobs,
        keep_runs: a.keep_runs,
        show_progress: !a.quiet && std::io::stderr().is_terminal(),
    };
    let o = run_sweep(&spec, &dir)?;
    writeln!(
        out,
        "sweep: {} points ({} resumed, {} run, {} failed) on {jobs} thread(s) written to {}",
        o.n_points,
        o.n_resumed,
        o.n_run,
        o.n_failed,
        dir.join("sweep.csv").display()
    )?;
    if o.n_points > 0 && o.n_failed == o.n_points {
        bail!(
            "every point failed (see the error column of {}); the first: {}",
            dir.join("sweep.csv").display(),
            o.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

/// Parses `key=v1,v2,...`; commas inside `{}`, `[]` or quotes do not split.
pub(crate) fn parse_axis(s: &str) -> anyhow::Result<Axis> {
    let Some((key, list)) = s.split_once('=') else {
        bail!("--set {s}: expected key=value[,value...]");
    };
    let key = key.trim();
    if key.is_empty() {
        bail!("--set {s}: empty key");
    }
    let values = split_values(list);
    if values.iter().any(String::is_empty) {
        bail!("--set {s}: empty value in the list");
    }
    Ok(Axis {
        key: key.to_string(),
        values,
    })
}

fn split_values(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for c in list.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out
}

/// Every point of the grid in odometer order (first axis slowest).
pub(crate) fn grid(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let mut points: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((axis.key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    points
}

/// The `sweep.csv` header for these axes.
pub(crate) fn header(axes: &[Axis]) -> Vec<String> {
    let mut h: Vec<String> = axes.iter().map(|a| a.key.clone()).collect();
    h.push("point_seed".into());
    h.extend(METRIC_COLUMNS.iter().map(|s| s.to_string()));
    h.push("error".into());
    h
}

/// Runs (or resumes) a sweep and writes its files into `dir`.
pub(crate) fn run_sweep(spec: &SweepSpec, dir: &Path) -> anyhow::Result<SweepOutcome> {
    let mut keys: Vec<&str> = spec.axes.iter().map(|a| a.key.as_str()).collect();
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        bail!("--set {} is given twice: give one list per key", w[0]);
    }
    let points = grid(&spec.axes);
    check_sets_apply(&spec.scenario, &points)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let header = header(&spec.axes);
    let n_keys = spec.axes.len();
    let csv_path = dir.join("sweep.csv");
    let partial_path = dir.join("sweep.partial.csv");
    // Earlier rows: sweep.csv, then the newer partial rows.
    let mut old: Vec<Vec<String>> = read_rows(&csv_path, &header)?;
    old.extend(read_rows(&partial_path, &header)?);
    let mut by_key: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for row in &old {
        by_key.insert(row[..n_keys].to_vec(), row.clone());
    }
    let mut rows: Vec<Option<Vec<String>>> = vec![None; points.len()];
    let seed_rule = SeedRule::PerPoint(spec.seed);
    for (i, p) in points.iter().enumerate() {
        let values: Vec<String> = p.iter().map(|(_, v)| v.clone()).collect();
        let Some(row) = by_key.get(&values) else {
            continue;
        };
        let ok = row[header.len() - 1].is_empty();
        let same_seed = point::resolve_point(&spec.scenario, p, seed_rule)
            .is_ok_and(|r| row[n_keys] == r.seed.to_string());
        if ok && same_seed {
            rows[i] = Some(row.clone());
        }
    }
    let todo: Vec<usize> = (0..points.len()).filter(|&i| rows[i].is_none()).collect();
    let n_resumed = points.len() - todo.len();
    if n_resumed > 0 && spec.show_progress {
        eprintln!(
            "resuming: {n_resumed} of {} points already in {}",
            points.len(),
            dir.display()
        );
    }
    let partial = Mutex::new(open_partial(&partial_path, &header)?);
    let bar = if spec.show_progress {
        let b = ProgressBar::new(todo.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} points [{elapsed_precise}, eta {eta}]",
            )
            .expect("static template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(spec.jobs)
        .build()
        .context("starting the worker threads")?;
    let done: Vec<(usize, Vec<String>)> = pool.install(|| {
        todo.par_iter()
            .map(|&i| {
                let row = run_point(spec, dir, &points[i], n_keys);
                // The partial file only protects against a crash: a failed
                // append must not lose the row, which is still returned.
                if let Ok(mut w) = partial.lock() {
                    let _ = w.write_record(&row).and_then(|()| Ok(w.flush()?));
                }
                bar.inc(1);
                (i, row)
            })
            .collect()
    });
    bar.finish_and_clear();
    for (i, row) in done {
        rows[i] = Some(row);
    }
    let mut final_rows: Vec<Vec<String>> = rows.into_iter().flatten().collect();
    let in_grid: std::collections::BTreeSet<Vec<String>> = points
        .iter()
        .map(|p| p.iter().map(|(_, v)| v.clone()).collect())
        .collect();
    // Rows outside the grid: first-appearance order, latest version.
    let mut extra_seen = std::collections::BTreeSet::new();
    for row in &old {
        let k = row[..n_keys].to_vec();
        if !in_grid.contains(&k) && extra_seen.insert(k.clone()) {
            final_rows.push(by_key[&k].clone());
        }
    }
    let failed: Vec<&String> = final_rows
        .iter()
        .map(|r| &r[header.len() - 1])
        .filter(|e| !e.is_empty())
        .collect();
    let (n_failed, first_error) = (failed.len(), failed.first().map(|e| e.to_string()));
    write_atomic(&csv_path, &csv_bytes(&header, &final_rows)?)?;
    write_atomic(
        &dir.join("sweep.json"),
        &json_bytes(spec, &header, &final_rows)?,
    )?;
    write_atomic(
        &dir.join("sweep_plot.csv"),
        &plot_bytes(&spec.axes, &header, &final_rows)?,
    )?;
    drop(partial);
    std::fs::remove_file(&partial_path)
        .with_context(|| format!("removing {}", partial_path.display()))?;
    Ok(SweepOutcome {
        n_points: points.len(),
        n_resumed,
        n_run: todo.len(),
        n_failed,
        first_error,
    })
}

/// Fails when some point's `--set`s cannot be applied to the scenario (a
/// missing path, an index out of range, a value that is not YAML): that is a
/// typo, known without simulating anything, so the sweep stops before its
/// first point. Values that apply but do not validate fail their point only.
fn check_sets_apply(scenario: &Path, points: &[Vec<(String, String)>]) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(scenario)
        .with_context(|| format!("reading {}", scenario.display()))?;
    // A file that is not YAML fails every point with its own message.
    let Ok(mut doc) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
        return Ok(());
    };
    if doc.get("deployment").is_some() {
        // Its pods are the deployment's: check against them (as each point
        // will run); a deployment that cannot be imported fails every point.
        let base_dir = scenario.parent().unwrap_or(Path::new(""));
        let Some((expanded, _)) = crate::scenario::set::expand_in_document(&doc, base_dir) else {
            return Ok(());
        };
        doc = expanded;
    }
    for p in points {
        let mut d = doc.clone();
        for (k, v) in p {
            crate::scenario::set::apply_set(&mut d, k, v)
                .map_err(|e| anyhow::anyhow!("{}: {e}", scenario.display()))?;
        }
    }
    Ok(())
}

/// Simulates one point into its `sweep.csv` row; errors go to the `error` cell.
fn run_point(spec: &SweepSpec, dir: &Path, p: &[(String, String)], n_keys: usize) -> Vec<String> {
    let mut row: Vec<String> = p.iter().map(|(_, v)| v.clone()).collect();
    let keep = spec
        .keep_runs
        .then(|| dir.join("points").join(safe_name(p)));
    match point::evaluate(
        &spec.scenario,
        p,
        SeedRule::PerPoint(spec.seed),
        keep.as_deref(),
    ) {
        Ok(e) => {
            row.push(e.seed.to_string());
            row.extend(point::metric_cells(&e));
            row.push(String::new());
        }
        Err(e) => {
            row.extend(std::iter::repeat_n(String::new(), 1 + METRIC_COLUMNS.len()));
            row.push(format!("{e:#}").replace('\n', " "));
        }
    }
    debug_assert_eq!(row.len(), n_keys + 2 + METRIC_COLUMNS.len());
    row
}

/// A directory name for a point: `key=value` pairs made filename-safe, joined
/// with `__`, plus a hash of the canonical list so distinct points never collide.
pub(crate) fn safe_name(p: &[(String, String)]) -> String {
    let readable: Vec<String> = p
        .iter()
        .map(|(k, v)| {
            format!("{k}={v}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._=-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    let hash = xxhash_rust::xxh3::xxh3_64(point::canonical(p).as_bytes());
    let mut name = readable.join("__");
    name.truncate(120);
    format!("{name}__{:08x}", hash as u32)
}

/// Rows of an earlier sweep file with this header; a truncated last line
/// (a crash mid-append) is dropped. A file with other columns is an error.
fn read_rows(path: &Path, header: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(file);
    let mut records = rd.records();
    let Some(first) = records.next() else {
        return Ok(Vec::new());
    };
    let first = first.with_context(|| format!("reading {}", path.display()))?;
    if first.iter().ne(header.iter().map(String::as_str)) {
        bail!(
            "{} has columns {:?} but this sweep writes {:?}: use another --out or remove the file",
            path.display(),
            first.iter().collect::<Vec<_>>(),
            header
        );
    }
    let mut rows = Vec::new();
    for rec in records {
        let Ok(rec) = rec else { break };
        if rec.len() == header.len() {
            rows.push(rec.iter().map(str::to_string).collect());
        }
    }
    Ok(rows)
}

fn open_partial(path: &Path, header: &[String]) -> anyhow::Result<csv::Writer<File>> {
    let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if !fresh {
        // A crash may have cut the last line short: start on a new one.
        f.write_all(b"\n")?;
    }
    let mut w = csv::WriterBuilder::new().flexible(true).from_writer(f);
    if fresh {
        w.write_record(header)?;
        w.flush()?;
    }
    Ok(w)
}

/// `sweep.csv` bytes.
pub(crate) fn csv_bytes(header: &[String], rows: &[Vec<String>]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for r in rows {
        w.write_record(r)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

fn json_bytes(
    spec: &SweepSpec,
    header: &[String],
    rows: &[Vec<String>],
) -> anyhow::Result<Vec<u8>> {
    use serde_json::{json, Map, Value};
    let n_keys = spec.axes.len();
    let cell = |s: &str| -> Value {
        if s.is_empty() {
            Value::Null
        } else if let Ok(u) = s.parse::<u64>() {
            json!(u)
        } else if let Ok(f) = s.parse::<f64>() {
            json!(f)
        } else {
            json!(s)
        }
    };
    let points: Vec<Value> = rows
        .iter()
        .map(|r| {
            let set: Map<String, Value> = header[..n_keys]
                .iter()
                .zip(r)
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            let mut obj = Map::new();
            obj.insert("set".into(), Value::Object(set));
            for (k, v) in header[n_keys..header.len() - 1].iter().zip(&r[n_keys..]) {
                obj.insert(k.clone(), cell(v));
            }
            let err = &r[header.len() - 1];
            obj.insert(
                "error".into(),
                if err.is_empty() {
                    Value::Null
                } else {
                    json!(err)
                },
            );
            Value::Object(obj)
        })
        .collect();
    let doc = json!({
        "schema_version": SWEEP_SCHEMA_VERSION,
        "kvsim_version": env!("CARGO_PKG_VERSION"),
        "scenario": spec.scenario.display().to_string(),
        "seed": spec.seed,
        "keys": &header[..n_keys],
        "points": points,
    });
    let mut b = serde_json::to_vec_pretty(&doc)?;
    b.push(b'\n');
    Ok(b)
}

/// `series,<first key>,<metrics>` (the `kvsim report --sweep` contract).
fn plot_bytes(axes: &[Axis], header: &[String], rows: &[Vec<String>]) -> anyhow::Result<Vec<u8>> {
    let n_keys = axes.len();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut h = vec!["series".to_string(), axes[0].key.clone()];
    h.extend(METRIC_COLUMNS.iter().map(|s| s.to_string()));
    w.write_record(&h)?;
    for r in rows {
        let series = if n_keys == 1 {
            "all".to_string()
        } else {
            header[1..n_keys]
                .iter()
                .zip(&r[1..n_keys])
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut rec = vec![series, r[0].clone()];
        rec.extend(r[n_keys + 1..header.len() - 1].iter().cloned());
        w.write_record(&rec)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Writes `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_split_on_top_level_commas_only() {
        let a = parse_axis("pods[0].count=1,2, 4").unwrap();
        assert_eq!(a.key, "pods[0].count");
        assert_eq!(a.values, vec!["1", "2", "4"]);
        let a = parse_axis("step_time={model: constant, step_us: 5},\"a,b\"").unwrap();
        assert_eq!(a.values, vec!["{model: constant, step_us: 5}", "\"a,b\""]);
        assert!(parse_axis("decode").is_err());
        assert!(parse_axis("=1").is_err());
        assert!(parse_axis("decode=1,,2").is_err());
    }

    #[test]
    fn grid_is_odometer_order() {
        let axes = vec![parse_axis("a=1,2").unwrap(), parse_axis("b=x,y,z").unwrap()];
        let g: Vec<String> = grid(&axes).iter().map(|p| point::canonical(p)).collect();
        assert_eq!(
            g,
            vec!["a=1,b=x", "a=1,b=y", "a=1,b=z", "a=2,b=x", "a=2,b=y", "a=2,b=z"]
        );
        assert_eq!(
            header(&axes)[..4],
            ["a", "b", "point_seed", "n_gpus"].map(String::from)
        );
    }

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    fn scratch(name: &str) -> PathBuf {
        let d = data("target/sweep-tests").join(name);
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// 2 × 2 × 2 points; `pods[0].gpu=H9000` cannot resolve.
    fn spec(jobs: usize, sets: &[&str]) -> SweepSpec {
        SweepSpec {
            scenario: data("tests/data/sweep/poisson.yaml"),
            axes: sets.iter().map(|s| parse_axis(s).unwrap()).collect(),
            seed: None,
            jobs,
            keep_runs: false,
            show_progress: false,
        }
    }

    const GRID: &[&str] = &["pods[0].count=1,2", "rate=80,160", "pods[0].gpu=H100,H9000"];

    fn read(dir: &Path, f: &str) -> String {
        std::fs::read_to_string(dir.join(f)).unwrap()
    }

    #[test]
    fn a_set_that_cannot_apply_stops_the_sweep_before_any_point_runs() {
        let d = scratch("bad-set");
        let e = run_sweep(&spec(2, &["pods[0].count=1,2", "pods[3].count=1"]), &d).unwrap_err();
        assert!(
            e.to_string()
                .contains("--set pods[3].count: `pods[3]`: index 3 out of range"),
            "{e}"
        );
        assert!(!d.exists(), "nothing written");
        // A bad value in the second point's list is caught up front too.
        let e = run_sweep(&spec(2, &["pods[0].gpu=H100,{unclosed"]), &d).unwrap_err();
        assert!(
            e.to_string()
                .contains("pods[0].gpu={unclosed: not a YAML value"),
            "{e}"
        );
    }

    #[test]
    fn a_sweep_whose_every_point_fails_is_an_error_with_the_first_reason() {
        let dir = scratch("all-fail");
        let args = SweepArgs {
            scenario: data("tests/data/sweep/poisson.yaml"),
            sets: vec!["pods[0].gpu=H9000,H9001".into()],
            out: Some(dir.clone()),
            jobs: Some(1),
            seed: None,
            keep_runs: false,
            quiet: true,
        };
        let e = run(&args, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            e.contains("every point failed") && e.contains("\"H9000\""),
            "{e}"
        );
        assert!(
            read(&dir, "sweep.csv").contains("H9001"),
            "rows still written"
        );
    }

    #[test]
    fn rows_are_identical_on_one_thread_or_many() {
        let (a, b) = (scratch("jobs1"), scratch("jobs4"));
        let oa = run_sweep(&spec(1, GRID), &a).unwrap();
        let ob = run_sweep(&spec(4, GRID), &b).unwrap();
        assert_eq!(oa, ob);
        assert_eq!((oa.n_points, oa.n_run, oa.n_failed), (8, 8, 4));
        let csv = read(&a, "sweep.csv");
        assert_eq!(csv, read(&b, "sweep.csv"));
        assert_eq!(read(&a, "sweep.json"), read(&b, "sweep.json"));
        // Grid order, failed points reported in the error column, and the
        // metrics differ between points (the seed and the load reach them).
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 9);
        assert!(lines[0]
            .starts_with("pods[0].count,rate,pods[0].gpu,point_seed,n_gpus,hit_rate,ttft_p50_ms"));
        assert!(lines[0].ends_with(",preemptions,error"));
        assert!(lines[1].starts_with("1,80,H100,"));
        assert!(lines[2].starts_with("1,80,H9000,"));
        // The error cell (last column) names the GPU that failed to resolve.
        let rec = csv::Reader::from_reader(csv.as_bytes())
            .records()
            .nth(1)
            .unwrap()
            .unwrap();
        let error = rec.iter().next_back().unwrap();
        assert!(error.contains("unknown GPU \"H9000\""), "{error}");
        assert!(lines[8].starts_with("2,160,H9000,"));
        assert!(lines[1].ends_with(','), "no error: {}", lines[1]);
        assert!(!lines[2].ends_with(','), "an error: {}", lines[2]);
        let ok: Vec<&str> = lines[1..].iter().step_by(2).copied().collect();
        let metrics = |l: &str| l.split(',').skip(5).take(5).collect::<Vec<_>>().join(",");
        assert_ne!(metrics(ok[0]), metrics(ok[1]));
        assert!(!std::fs::exists(a.join("sweep.partial.csv")).unwrap());
        // The report reads the plot CSV.
        let plot = std::fs::read(a.join("sweep_plot.csv")).unwrap();
        let t = crate::report::sweep::parse_sweep_csv(&plot[..], "sweep_plot.csv").unwrap();
        assert_eq!(t.x_name, "pods[0].count");
        assert_eq!(t.rows[0].series, "rate=80 pods[0].gpu=H100");
        assert_eq!(t.rows[1].values[0], None);
    }

    #[test]
    fn a_point_alone_matches_the_same_point_in_a_grid() {
        let grid_dir = scratch("grid");
        run_sweep(&spec(2, &["rate=80,160", "pods[0].count=2,1"]), &grid_dir).unwrap();
        let alone = scratch("alone");
        run_sweep(&spec(1, &["rate=160", "pods[0].count=1"]), &alone).unwrap();
        let row = read(&alone, "sweep.csv")
            .lines()
            .nth(1)
            .unwrap()
            .to_string();
        assert!(row.starts_with("160,1,"));
        assert!(
            read(&grid_dir, "sweep.csv").lines().any(|l| l == row),
            "{row}"
        );
    }

    #[test]
    fn resume_skips_done_points_and_writes_the_same_file() {
        let full = scratch("full");
        run_sweep(&spec(2, GRID), &full).unwrap();
        let want = read(&full, "sweep.csv");
        // A finished sub-grid, then the whole grid.
        let dir = scratch("resume");
        let sub = ["pods[0].count=1,2", "rate=80", "pods[0].gpu=H100,H9000"];
        run_sweep(&spec(2, &sub), &dir).unwrap();
        let o = run_sweep(&spec(2, GRID), &dir).unwrap();
        // 2 good points resumed; the 2 failed ones and the 4 new ones run.
        assert_eq!((o.n_resumed, o.n_run), (2, 6));
        assert_eq!(read(&dir, "sweep.csv"), want);
        // Nothing left to do.
        let o = run_sweep(&spec(1, GRID), &dir).unwrap();
        assert_eq!((o.n_resumed, o.n_run), (4, 4));
        assert_eq!(read(&dir, "sweep.csv"), want);
        // A crash: no sweep.csv, a partial file with two rows and a cut line.
        let crashed = scratch("crashed");
        std::fs::create_dir_all(&crashed).unwrap();
        let lines: Vec<&str> = want.lines().collect();
        let partial = format!("{}\n{}\n{}\n2,160,H1", lines[0], lines[5], lines[1]);
        std::fs::write(crashed.join("sweep.partial.csv"), partial).unwrap();
        let o = run_sweep(&spec(2, GRID), &crashed).unwrap();
        assert_eq!((o.n_resumed, o.n_run), (2, 6));
        assert_eq!(read(&crashed, "sweep.csv"), want);
        // A different base seed invalidates every row.
        let mut reseeded = spec(2, GRID);
        reseeded.seed = Some(99);
        let o = run_sweep(&reseeded, &dir).unwrap();
        assert_eq!(o.n_resumed, 0);
        assert_ne!(read(&dir, "sweep.csv"), want);
        // Other keys: refuse to mix files.
        let e = run_sweep(&spec(1, &["rate=80"]), &dir).unwrap_err();
        assert!(e.to_string().contains("use another --out"), "{e}");
    }

    #[test]
    fn a_point_that_completes_nothing_has_empty_latencies_and_counts_rejections() {
        // Every prompt (16..256 tokens) is longer than max_model_len 8: all
        // 150 requests are rejected, so there is no latency to report.
        let dir = scratch("all-rejected");
        run_sweep(&spec(1, &["pods[0].vllm.max_model_len=8"]), &dir).unwrap();
        let csv = read(&dir, "sweep.csv");
        let mut rd = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
        let row = rd.records().next().unwrap().unwrap();
        let cell = |c: &str| &row[header.iter().position(|h| h == c).unwrap()];
        for c in ["ttft_p50_ms", "ttft_p90_ms", "tpot_mean_ms", "e2e_p90_ms"] {
            assert_eq!(cell(c), "", "{c}");
        }
        assert_eq!(cell("requests_completed"), "0");
        assert_eq!(cell("requests_rejected"), "150");
        assert_eq!(cell("error"), "");
    }

    #[test]
    fn keep_runs_writes_each_point() {
        let dir = scratch("keep");
        let mut s = spec(2, &["rate=80,160"]);
        s.keep_runs = true;
        run_sweep(&s, &dir).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.join("points"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2);
        assert!(names[0].starts_with("rate=160__"), "{names:?}");
        assert!(dir
            .join("points")
            .join(&names[0])
            .join("summary.json")
            .exists());
    }

    #[test]
    fn safe_names_are_filename_safe_and_distinct() {
        let a = safe_name(&[("pods[0].count".into(), "4".into())]);
        let b = safe_name(&[("pods_0_.count".into(), "4".into())]);
        assert!(a.starts_with("pods_0_.count=4__"), "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._=-".contains(c)));
        assert_ne!(a, b);
    }
}
