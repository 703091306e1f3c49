//! The sweep-results CSV contract read by `kvsim report --sweep`.
//!
//! ```text
//! series,decode_pods,ttft_p90_ms,hit_rate
//! precise-prefix,2,812.5,0.61
//! precise-prefix,4,430.1,0.58
//! round-robin,2,901.0,
//! ```
//! Column 1 is `series` (one line per distinct value); column 2 is the swept
//! parameter (its header names the x axis; numbers give a numeric axis,
//! anything else a categorical axis in first-appearance order); every further
//! column is a metric (one chart each, its header names the y axis). An
//! empty metric cell is a missing point. See `docs/metrics.md` → Report charts.

use std::io::Read;

use super::results::{csv_error, field_error, ResultsError};

/// A parsed sweep CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepTable {
    /// Header of the parameter column.
    pub x_name: String,
    /// Headers of the metric columns.
    pub metrics: Vec<String>,
    /// Rows in file order.
    pub rows: Vec<SweepRow>,
}

/// One sweep point.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    /// Series name.
    pub series: String,
    /// Parameter value as written.
    pub x: String,
    /// One value per metric column.
    pub values: Vec<Option<f64>>,
}

/// Parses a sweep CSV (see the module docs for the contract).
pub fn parse_sweep_csv(r: impl Read, file: &str) -> Result<SweepTable, ResultsError> {
    let mut rd = csv::ReaderBuilder::new().flexible(false).from_reader(r);
    let headers = rd
        .headers()
        .map_err(|e| csv_error(file, &e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect::<Vec<_>>();
    if headers.first().map(String::as_str) != Some("series") || headers.len() < 3 {
        let first = headers.first().cloned().unwrap_or_default();
        return Err(ResultsError::MissingColumn {
            file: file.into(),
            column: if first == "series" {
                "<metric> (need series, a parameter and at least one metric column)".into()
            } else {
                "series".into()
            },
            available: headers.join(","),
            suggestion: (first != "series" && strsim::levenshtein(&first, "series") <= 2)
                .then_some(first),
        });
    }
    let mut rows = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| csv_error(file, &e))?;
        let line = i as u64 + 2;
        let x = rec.get(1).unwrap_or("").trim().to_string();
        if x.is_empty() {
            return Err(field_error(
                file,
                line,
                &headers[1],
                "",
                "expected a parameter value",
            ));
        }
        let mut values = Vec::new();
        for (j, cell) in rec.iter().enumerate().skip(2) {
            let cell = cell.trim();
            if cell.is_empty() {
                values.push(None);
                continue;
            }
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => values.push(Some(v)),
                _ => {
                    return Err(field_error(
                        file,
                        line,
                        &headers[j],
                        cell,
                        "expected a number",
                    ))
                }
            }
        }
        rows.push(SweepRow {
            series: rec.get(0).unwrap_or("").trim().to_string(),
            x,
            values,
        });
    }
    Ok(SweepTable {
        x_name: headers[1].clone(),
        metrics: headers[2..].to_vec(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_series_parameter_and_metrics() {
        let csv = "series,decode_pods,ttft_p90_ms,hit_rate\na,2,812.5,0.61\nb,4,,0.5\n";
        let t = parse_sweep_csv(csv.as_bytes(), "s.csv").unwrap();
        assert_eq!(t.x_name, "decode_pods");
        assert_eq!(t.metrics, vec!["ttft_p90_ms", "hit_rate"]);
        assert_eq!(t.rows[1].values, vec![None, Some(0.5)]);
        assert_eq!(t.rows[0].x, "2");
    }

    #[test]
    fn rejects_bad_header_and_cells() {
        let e = parse_sweep_csv(&b"serie,x,y\na,1,2\n"[..], "s.csv").unwrap_err();
        assert!(e.to_string().contains("did you mean \"serie\""), "{e}");
        let e = parse_sweep_csv(&b"series,x\na,1\n"[..], "s.csv").unwrap_err();
        assert!(e.to_string().contains("metric"), "{e}");
        let e = parse_sweep_csv(&b"series,x,y\na,1,fast\n"[..], "s.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "s.csv:2: field \"y\": expected a number, got \"fast\""
        );
    }
}
