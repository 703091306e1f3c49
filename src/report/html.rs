//! The self-contained HTML report: run and pod tables, then every chart as
//! inline SVG with a caption. No scripts, no external assets, no timestamp
//! (the same inputs give the same bytes).

use std::fmt::Write;

use super::plot::Figure;
use super::results::{PodRow, RunResults};
use crate::metrics::percentile::Dist;

/// One chart on the page.
pub struct PageChart<'a> {
    /// The figure (title, caption, reference).
    pub figure: &'a Figure,
    /// Its SVG document.
    pub svg: &'a str,
}

/// Renders the page for `runs` and `charts` (in order).
pub fn render(runs: &[RunResults], charts: &[PageChart<'_>]) -> String {
    let mut o = String::new();
    let title = match runs {
        [] => "kvsim report".to_string(),
        [r] => format!("kvsim report: {}", r.label),
        _ => format!("kvsim report: {} runs compared", runs.len()),
    };
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let _ = writeln!(
        o,
        "<p class=\"note\">Written by kvsim {} from {}. Every number is defined in \
         <code>docs/metrics.md</code>; times are simulated.</p>",
        esc(env!("CARGO_PKG_VERSION")),
        runs.iter()
            .map(|r| format!("<code>{}</code>", esc(&r.dir)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    toc(&mut o, runs, charts);
    if !runs.is_empty() {
        run_table(&mut o, runs);
        pod_tables(&mut o, runs);
    }
    for c in charts {
        let f = c.figure;
        let _ = writeln!(
            o,
            "<section id=\"{}\">\n<h2>{}</h2>\n<figure>\n{}\n<figcaption>{} \
             <span class=\"ref\">Definition: {}.</span></figcaption>\n</figure>\n</section>",
            esc(&f.stem),
            esc(&f.title),
            inline_svg(c.svg),
            esc(&f.caption),
            esc(&f.reference)
        );
    }
    o.push_str("</main>\n</body>\n</html>\n");
    o
}

const STYLE: &str = "\
body{margin:0;background:#f6f6f4;color:#1a1a1a;font:15px/1.45 \"DejaVu Sans\",system-ui,sans-serif}\
main{max-width:1060px;margin:0 auto;padding:24px 20px 60px}\
h1{font-size:26px;margin:0 0 6px}h2{font-size:19px;margin:34px 0 10px}\
h3{font-size:16px;margin:18px 0 6px}\
.note{color:#555;margin:0 0 14px}code{font-size:13px;background:#ecece8;padding:1px 4px;border-radius:3px}\
nav{font-size:14px;margin-bottom:8px;display:flex;flex-wrap:wrap;gap:4px 16px}nav a{color:#0072b2;white-space:nowrap}\
table{border-collapse:collapse;background:#fff;font-size:14px;margin:4px 0 10px}\
th,td{border:1px solid #d8d8d4;padding:4px 10px;text-align:right;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}thead th{background:#ecece8}\
tr.pool td{background:#f3f3ef;font-weight:600}\
.scroll{overflow-x:auto}\
figure{margin:0;background:#fff;border:1px solid #d8d8d4;padding:8px}\
figure svg{display:block;width:100%;height:auto}\
figure svg text{font-family:\"DejaVu Sans\",sans-serif}\
figcaption{font-size:14px;color:#333;margin:8px 4px 2px}.ref{color:#666}";

fn toc(o: &mut String, runs: &[RunResults], charts: &[PageChart<'_>]) {
    o.push_str("<nav>");
    if !runs.is_empty() {
        o.push_str("<a href=\"#runs\">Runs</a>\n<a href=\"#pods\">Pods and pools</a>\n");
    }
    for c in charts {
        let _ = writeln!(
            o,
            "<a href=\"#{}\">{}</a>",
            esc(&c.figure.stem),
            esc(&c.figure.title)
        );
    }
    o.push_str("</nav>\n");
}

fn run_table(o: &mut String, runs: &[RunResults]) {
    o.push_str(
        "<section id=\"runs\">\n<h2>Runs</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th></th>",
    );
    for r in runs {
        let _ = write!(o, "<th>{}</th>", esc(&r.label));
    }
    o.push_str("</tr></thead>\n<tbody>\n");
    type Row = (&'static str, fn(&RunResults) -> String);
    let rows: [Row; 21] = [
        ("scenario", |r| {
            r.config.name.clone().unwrap_or_else(|| "—".into())
        }),
        ("seed", |r| {
            r.config.seed.map_or("—".into(), |s| s.to_string())
        }),
        ("kvsim version", |r| {
            r.config.kvsim_version.clone().unwrap_or_else(|| "—".into())
        }),
        ("results dir", |r| r.dir.clone()),
        ("requests completed / total", |r| {
            format!(
                "{} / {}",
                r.summary.requests_completed, r.summary.requests_total
            )
        }),
        ("rejected / unfinished / after horizon", |r| {
            format!(
                "{} / {} / {}",
                r.summary.requests_rejected,
                r.summary.requests_unfinished,
                r.summary.requests_after_horizon
            )
        }),
        ("span (s)", |r| format!("{:.1}", r.summary.duration_s)),
        ("prefix-cache hit rate", |r| pct(r.summary.hit_rate)),
        ("TTFT p50 / p90 / p99 (ms)", |r| {
            dist(&r.summary.latency.ttft_ms)
        }),
        ("TPOT p50 / p90 / p99 (ms)", |r| {
            dist(&r.summary.latency.tpot_ms)
        }),
        ("ITL p50 / p90 / p99 (ms)", |r| {
            dist(&r.summary.latency.itl_ms)
        }),
        ("E2E p50 / p90 / p99 (ms)", |r| {
            dist(&r.summary.latency.e2e_ms)
        }),
        ("queue wait p50 / p90 / p99 (ms)", |r| {
            dist(&r.summary.latency.queue_wait_ms)
        }),
        ("throughput (req/s)", |r| {
            format!("{:.2}", r.summary.throughput.requests_per_s)
        }),
        ("output tokens/s", |r| {
            format!("{:.0}", r.summary.throughput.output_tokens_per_s)
        }),
        ("total tokens/s", |r| {
            format!("{:.0}", r.summary.throughput.total_tokens_per_s)
        }),
        ("imbalance (max/mean req per pod, worst pool)", |r| {
            format!("{:.2}", r.summary.imbalance)
        }),
        (
            "idle pods (no request)",
            |r| match &r.summary.idle_pods[..] {
                [] => "none".into(),
                names => names.join(", "),
            },
        ),
        ("preemptions", |r| r.summary.preemptions.to_string()),
        ("routing decisions (stale)", |r| {
            format!(
                "{} ({})",
                r.summary.routing_decisions, r.summary.stale_decisions
            )
        }),
        ("routing.csv rows", |r| {
            r.routing_rows
                .map_or("not written".into(), |n| n.to_string())
        }),
    ];
    for (label, f) in rows {
        let _ = write!(o, "<tr><th>{}</th>", esc(label));
        for r in runs {
            let _ = write!(o, "<td>{}</td>", esc(&f(r)));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table></div>\n</section>\n");
}

fn pod_tables(o: &mut String, runs: &[RunResults]) {
    o.push_str("<section id=\"pods\">\n<h2>Pods and pools</h2>\n");
    for r in runs {
        let _ = writeln!(o, "<h3>{}</h3>", esc(&r.label));
        o.push_str(
            "<div class=\"scroll\"><table>\n<thead><tr><th>pod</th><th>role</th><th>requests</th>\
             <th>completed</th><th>hit rate</th><th>preemptions</th><th>busy</th>\
             <th>KV usage mean</th><th>max waiting</th></tr></thead>\n<tbody>\n",
        );
        for p in &r.pods {
            pod_row(o, p);
        }
        o.push_str("</tbody></table></div>\n");
    }
    o.push_str("</section>\n");
}

fn pod_row(o: &mut String, p: &PodRow) {
    let _ = writeln!(
        o,
        "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td></tr>",
        if p.is_pool() { " class=\"pool\"" } else { "" },
        esc(&p.name),
        esc(&p.role),
        p.requests,
        p.completed,
        pct(p.hit_rate),
        p.preemptions,
        pct(p.busy_fraction),
        pct(p.kv_usage_mean),
        p.max_waiting
    );
}

/// The SVG element without any XML prolog, ready to sit inside HTML.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => svg[i..].trim_end(),
        None => svg,
    }
}

/// p50 / p90 / p99, or a dash for an empty distribution (summary.json holds zeros).
fn dist(d: &Dist) -> String {
    if d.count == 0 {
        return "—".into();
    }
    format!("{} / {} / {}", num(d.p50), num(d.p90), num(d.p99))
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// A ms value without exponent, rounded by magnitude: no decimals from 100,
/// one from 10, two below.
pub(crate) fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn strips_xml_prolog() {
        assert_eq!(
            inline_svg("<?xml version=\"1.0\"?>\n<svg a=\"1\"></svg>\n"),
            "<svg a=\"1\"></svg>"
        );
    }

    #[test]
    fn number_formats() {
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(22.51), "22.5");
        assert_eq!(num(7.6204), "7.62");
        assert_eq!(pct(0.80016), "80.02%");
    }
}
