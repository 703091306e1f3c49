//! `kvsim report RESULTS_DIR... [--out DIR] [--format png|svg|both|html|all]
//! [--sweep FILE.csv]...`: charts (PNG, SVG) and a self-contained HTML page
//! from the directories `kvsim run` writes; several directories are overlaid.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use crate::report::html::{self, PageChart};
use crate::report::plot::{self, Figure};
use crate::report::results::{self, RunResults};
use crate::report::sweep::parse_sweep_csv;

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Results directories written by `kvsim run`; several are compared in
    /// one set of charts (one line or bar per run).
    #[arg(required_unless_present = "sweep")]
    dirs: Vec<PathBuf>,
    /// Output directory (default: DIR/report for one directory, out/report
    /// for several or for sweeps only).
    #[arg(long)]
    out: Option<PathBuf>,
    /// What to write: png, svg, both (png and svg), html (the page only),
    /// or all (png, svg and the page).
    #[arg(long, value_enum, default_value_t = ReportFormat::All)]
    format: ReportFormat,
    /// Sweep results CSV (`series,<parameter>,<metric>...`) to chart, one
    /// chart per metric column; repeatable.
    #[arg(long, value_name = "FILE.csv")]
    sweep: Vec<PathBuf>,
}

/// Output formats of `kvsim report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// PNG images only.
    Png,
    /// SVG images only.
    Svg,
    /// PNG and SVG images.
    Both,
    /// The HTML page only (charts inlined as SVG).
    Html,
    /// PNG, SVG and the HTML page.
    All,
}

impl ReportFormat {
    fn png(self) -> bool {
        matches!(self, Self::Png | Self::Both | Self::All)
    }
    fn svg(self) -> bool {
        matches!(self, Self::Svg | Self::Both | Self::All)
    }
    fn html(self) -> bool {
        matches!(self, Self::Html | Self::All)
    }
}

/// Name of the HTML page in the output directory.
pub(crate) const HTML_FILE: &str = "report.html";

pub(crate) fn run(a: &ReportArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut runs = a
        .dirs
        .iter()
        .map(|d| load_run(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    results::disambiguate_labels(&mut runs);
    let mut figures = if runs.is_empty() {
        Vec::new()
    } else {
        plot::run_figures(&runs)
    };
    for (i, path) in a.sweep.iter().enumerate() {
        let name = path.display().to_string();
        let f = File::open(path).with_context(|| format!("opening sweep file {name}"))?;
        let table = parse_sweep_csv(BufReader::new(f), &name)?;
        let prefix = if a.sweep.len() == 1 {
            "sweep".to_string()
        } else {
            format!("sweep{}", i + 1)
        };
        figures.extend(plot::sweep::sweep_figures(&table, &prefix, &name));
    }
    let dir = match (&a.out, a.dirs.as_slice()) {
        (Some(d), _) => d.clone(),
        (None, [one]) => one.join("report"),
        (None, _) => PathBuf::from("out").join("report"),
    };
    let written = write_report(&dir, &runs, &figures, a.format)?;
    for p in &written {
        writeln!(out, "{}", p.display())?;
    }
    writeln!(
        out,
        "report: {} charts for {} run(s) written to {}",
        figures.len(),
        runs.len(),
        dir.display()
    )?;
    Ok(())
}

/// Writes the figures (and the page) to `dir`; returns the files written.
pub(crate) fn write_report(
    dir: &Path,
    runs: &[RunResults],
    figures: &[Figure],
    format: ReportFormat,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut svgs = Vec::new();
    for f in figures {
        if format.png() {
            let p = dir.join(format!("{}.png", f.stem));
            let mut w = BufWriter::new(
                File::create(&p).with_context(|| format!("creating {}", p.display()))?,
            );
            plot::render_png(f, &mut w)?;
            w.flush()
                .with_context(|| format!("writing {}", p.display()))?;
            written.push(p);
        }
        if format.svg() || format.html() {
            let svg = plot::render_svg(f)?;
            if format.svg() {
                let p = dir.join(format!("{}.svg", f.stem));
                std::fs::write(&p, &svg).with_context(|| format!("writing {}", p.display()))?;
                written.push(p);
            }
            svgs.push(svg);
        }
    }
    if format.html() {
        let charts: Vec<PageChart> = figures
            .iter()
            .zip(&svgs)
            .map(|(figure, svg)| PageChart { figure, svg })
            .collect();
        let p = dir.join(HTML_FILE);
        std::fs::write(&p, html::render(runs, &charts))
            .with_context(|| format!("writing {}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}

/// Files a results directory must hold.
pub(crate) const REQUIRED_FILES: [&str; 4] =
    ["summary.json", "pods.csv", "requests.csv", "timeseries.csv"];

/// Reads one results directory; `config.json` and `routing.csv` are optional.
pub(crate) fn load_run(dir: &Path) -> anyhow::Result<RunResults> {
    if !dir.is_dir() {
        bail!(
            "results directory {} does not exist (expected the --out directory of `kvsim run`)",
            dir.display()
        );
    }
    for f in REQUIRED_FILES {
        if !dir.join(f).is_file() {
            bail!(
                "results directory {}: missing required file {f} (needs {})",
                dir.display(),
                REQUIRED_FILES.join(", ")
            );
        }
    }
    let open = |name: &str| -> anyhow::Result<(BufReader<File>, String)> {
        let p = dir.join(name);
        let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        Ok((BufReader::new(f), p.display().to_string()))
    };
    let (r, n) = open("summary.json")?;
    let summary = results::parse_summary(r, &n)?;
    let (r, n) = open("pods.csv")?;
    let pods = results::parse_pods(r, &n)?;
    let (r, n) = open("requests.csv")?;
    let requests = results::parse_requests(r, &n)?;
    let (r, n) = open("timeseries.csv")?;
    let samples = results::parse_timeseries(r, &n)?;
    let config = if dir.join("config.json").is_file() {
        let (r, n) = open("config.json")?;
        results::parse_config(r, &n)?
    } else {
        results::ConfigView::default()
    };
    let routing_rows = if dir.join("routing.csv").is_file() {
        let (r, n) = open("routing.csv")?;
        Some(results::count_csv_rows(r, &n)?)
    } else {
        None
    };
    let dir_name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    Ok(RunResults {
        label: results::run_label(&config, &dir_name),
        dir: dir.display().to_string(),
        config,
        summary,
        pods,
        requests,
        samples,
        routing_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::resolve::{self, Overrides};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kvsim-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Runs the quickstart scenario with `seed` into `dir` (a real results dir).
    fn quickstart(dir: &Path, seed: u64) {
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.yaml");
        let overrides = Overrides {
            seed: Some(seed),
            ..Overrides::default()
        };
        let resolved = resolve::load(&scenario, &overrides).unwrap();
        let done = super::super::run_cmd::simulate(resolved, false, 1).unwrap();
        super::super::run_cmd::write_outputs(dir, &done).unwrap();
    }

    fn args(dirs: &[&Path], out: &Path, format: ReportFormat) -> ReportArgs {
        ReportArgs {
            dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
            out: Some(out.to_path_buf()),
            format,
            sweep: Vec::new(),
        }
    }

    #[test]
    fn two_real_runs_give_every_file() {
        let root = tmp("two");
        let (a, b, out) = (root.join("a"), root.join("b"), root.join("report"));
        quickstart(&a, 42);
        quickstart(&b, 7);
        std::fs::write(a.join("routing.csv"), "request_id,pod\n0,pod-0\n1,pod-1\n").unwrap();
        let sweep = root.join("sweep.csv");
        std::fs::write(&sweep, "series,decode_pods,ttft_p90_ms\nrr,1,30\nrr,2,20\n").unwrap();
        let mut a_args = args(&[&a, &b], &out, ReportFormat::All);
        a_args.sweep.push(sweep);
        let mut stdout = Vec::new();
        run(&a_args, &mut stdout).unwrap();
        let stems = [
            "hit_rate",
            "hit_rate_per_pod",
            "ttft_cdf",
            "tpot_cdf",
            "kv_usage",
            "queue_length",
            "requests_per_pod",
            "sweep_ttft_p90_ms",
        ];
        let html = std::fs::read_to_string(out.join(HTML_FILE)).unwrap();
        for s in stems {
            let png = std::fs::read(out.join(format!("{s}.png"))).unwrap();
            assert!(png.len() > 5000, "{s}.png is {} bytes", png.len());
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{s}.png magic");
            let svg = std::fs::read_to_string(out.join(format!("{s}.svg"))).unwrap();
            assert!(
                svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
                "{s}.svg"
            );
            assert!(
                html.contains(&format!("<section id=\"{s}\">")),
                "html lacks {s}"
            );
        }
        assert_eq!(html.matches("<svg").count(), stems.len());
        assert!(!html.contains("<script") && !html.contains("src=\"http"));
        // Run table (one column per run, labelled name · seed), pod tables.
        assert!(html.contains("<th>quickstart · seed 42</th>"), "run label");
        assert!(html.contains("<th>quickstart · seed 7</th>"), "run label");
        assert!(html.contains("<td>pool:both</td>") && html.contains("<td>pod-1</td>"));
        assert!(html.contains("<th>routing.csv rows</th><td>2</td><td>not written</td>"));
        let listing = String::from_utf8(stdout).unwrap();
        assert!(
            listing.contains("report: 8 charts for 2 run(s)"),
            "{listing}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn format_selects_outputs() {
        let root = tmp("fmt");
        let (a, out) = (root.join("a"), root.join("png"));
        quickstart(&a, 42);
        run(&args(&[&a], &out, ReportFormat::Png), &mut Vec::new()).unwrap();
        assert!(out.join("ttft_cdf.png").is_file());
        assert!(!out.join("ttft_cdf.svg").exists() && !out.join(HTML_FILE).exists());
        let out = root.join("html");
        run(&args(&[&a], &out, ReportFormat::Html), &mut Vec::new()).unwrap();
        let files: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
        assert_eq!(files.len(), 1, "html only");
        let page = std::fs::read_to_string(out.join(HTML_FILE)).unwrap();
        assert!(
            page.contains("rejected / unfinished / after horizon"),
            "the run table counts every request"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_required_file_is_named() {
        let root = tmp("missing");
        let a = root.join("a");
        quickstart(&a, 42);
        std::fs::remove_file(a.join("timeseries.csv")).unwrap();
        let e = run(
            &args(&[&a], &root.join("r"), ReportFormat::All),
            &mut Vec::new(),
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("missing required file timeseries.csv"),
            "{msg}"
        );
        assert!(msg.contains(&a.display().to_string()), "{msg}");
        let e = load_run(&root.join("nope")).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn invalid_file_error_names_file_and_line() {
        let root = tmp("invalid");
        let a = root.join("a");
        quickstart(&a, 42);
        std::fs::write(a.join("requests.csv"), "pod,ttft_ms,tpot_ms\npod-0,x,1\n").unwrap();
        let msg = format!("{:#}", load_run(&a).unwrap_err());
        assert!(msg.contains("requests.csv:2: field \"ttft_ms\""), "{msg}");
        std::fs::remove_file(a.join("config.json")).unwrap();
        std::fs::write(a.join("requests.csv"), "pod,ttft_ms,tpot_ms\n").unwrap();
        let r = load_run(&a).unwrap();
        assert_eq!(r.label, "a", "no config.json: the directory names the run");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
