//! Azure LLM inference trace (2023) CSV importer.
//!
//! `TIMESTAMP,ContextTokens,GeneratedTokens` with absolute timestamps such as
//! `2023-11-16 18:17:03.9799600` (up to 9 fractional digits accepted). Times
//! become nanoseconds relative to the first data row. The trace carries no
//! prefix information, so every prompt is unique: one hash id per request that
//! no other request shares ([`Prompt::HashIds`] with `tokens_per_id =
//! n_tokens`), which costs no token storage. The header is optional (columns
//! are then in the order above) and may list the columns in any order.

use std::io::BufRead;

use super::error::{check_token_count, FieldError};
use super::reader::{LineParser, LineReader, ReadOptions};
use super::request::{Prompt, TraceRequest};

/// Hash ids of Azure prompts start here, far from Mooncake's small integers.
pub const AZURE_ID_BASE: u64 = 0xA2_0000_0000_0000;

/// Streams the requests of an Azure LLM inference CSV.
pub fn read_azure<R: BufRead>(input: R, opts: ReadOptions) -> LineReader<R, AzureParser> {
    LineReader::new(input, AzureParser::default(), opts)
}

/// Line parser of the Azure CSV format.
#[derive(Clone, Debug, Default)]
pub struct AzureParser {
    /// Column index of (timestamp, context tokens, generated tokens).
    cols: Option<[usize; 3]>,
    first_ns: Option<i128>,
    n_rows: u64,
}

const COLUMNS: [&str; 3] = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"];

impl LineParser for AzureParser {
    const ARRIVAL_FIELD: &'static str = COLUMNS[0];

    fn parse_line(
        &mut self,
        line: &str,
        _line_no: u64,
    ) -> Result<Option<TraceRequest>, FieldError> {
        let line = line.trim_start_matches('\u{feff}');
        if self.cols.is_none() {
            if line.starts_with(|c: char| c.is_ascii_alphabetic()) {
                self.cols = Some(header_columns(line)?);
                return Ok(None);
            }
            self.cols = Some([0, 1, 2]);
        }
        let cols = self.cols.unwrap_or([0, 1, 2]);
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| -> Result<&str, FieldError> {
            fields.get(cols[i]).copied().ok_or_else(|| {
                FieldError::new(
                    COLUMNS[i],
                    format!("missing column ({} columns on the line)", fields.len()),
                )
            })
        };
        let t_ns = parse_timestamp_ns(get(0)?).map_err(|p| FieldError::new(COLUMNS[0], p))?;
        let n_in = parse_u32(get(1)?).map_err(|p| FieldError::new(COLUMNS[1], p))?;
        let n_out = parse_u32(get(2)?).map_err(|p| FieldError::new(COLUMNS[2], p))?;
        check_token_count(COLUMNS[1], n_in)?;
        check_token_count(COLUMNS[2], n_out)?;
        let first = *self.first_ns.get_or_insert(t_ns);
        if t_ns < first {
            return Err(FieldError::new(
                COLUMNS[0],
                "earlier than the first row (the format requires non-decreasing times)",
            ));
        }
        let arrival_ns = u64::try_from(t_ns - first)
            .map_err(|_| FieldError::new(COLUMNS[0], "more than 584 years after the first row"))?;
        let row = self.n_rows;
        self.n_rows += 1;
        let ids = if n_in == 0 {
            Vec::new()
        } else {
            vec![AZURE_ID_BASE + row]
        };
        Ok(Some(TraceRequest {
            id: 0,
            arrival_ns,
            prompt: Prompt::HashIds {
                ids,
                tokens_per_id: n_in.max(1),
                n_tokens: n_in,
            },
            output_len: n_out,
            session_id: None,
            cache_salt: None,
            output_token_ids: None,
        }))
    }
}

fn header_columns(line: &str) -> Result<[usize; 3], FieldError> {
    let names: Vec<&str> = line.split(',').map(str::trim).collect();
    let mut cols = [0usize; 3];
    for (i, want) in COLUMNS.iter().enumerate() {
        cols[i] = names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(want))
            .ok_or_else(|| {
                FieldError::new(
                    "header",
                    format!("no {want} column (columns: {})", names.join(",")),
                )
            })?;
    }
    Ok(cols)
}

fn parse_u32(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| format!("expected non-negative integer, got {s:?}"))
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` (or `T` separator) → ns since 1970 (UTC,
/// no zone handling: only differences are used).
pub fn parse_timestamp_ns(s: &str) -> Result<i128, String> {
    let bad = || format!("expected timestamp like 2023-11-16 18:17:03.9799600, got {s:?}");
    let (date, time) = s.split_once([' ', 'T']).ok_or_else(bad)?;
    let mut d = date.splitn(3, '-');
    let (y, mo, da) = (d.next(), d.next(), d.next());
    let y: i64 = y.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let mo: u32 = mo
        .and_then(|v| v.parse().ok())
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(bad)?;
    let da: u32 = da
        .and_then(|v| v.parse().ok())
        .filter(|d| (1..=31).contains(d))
        .ok_or_else(bad)?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':');
    let h: i64 = t
        .next()
        .and_then(|v| v.parse().ok())
        .filter(|h| *h < 24)
        .ok_or_else(bad)?;
    let mi: i64 = t
        .next()
        .and_then(|v| v.parse().ok())
        .filter(|m| *m < 60)
        .ok_or_else(bad)?;
    let sec: i64 = t
        .next()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s <= 60)
        .ok_or_else(bad)?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let frac_ns: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().map_err(|_| bad())? * 10i64.pow(9 - frac.len() as u32)
    };
    let days = days_from_civil(y, mo, da);
    let secs = days as i128 * 86_400 + (h * 3600 + mi * 60 + sec) as i128;
    Ok(secs * 1_000_000_000 + frac_ns as i128)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_ns() {
        assert_eq!(parse_timestamp_ns("1970-01-01 00:00:00").unwrap(), 0);
        assert_eq!(
            parse_timestamp_ns("1970-01-02 00:00:01.5").unwrap(),
            86_401_500_000_000
        );
        let a = parse_timestamp_ns("2023-11-16 18:17:03.9799600").unwrap();
        let b = parse_timestamp_ns("2023-11-16 18:17:04.0319600").unwrap();
        assert_eq!(b - a, 52_000_000);
        // 2024-03-01 minus 2024-02-28 is two days (leap year).
        let x = parse_timestamp_ns("2024-02-28 00:00:00").unwrap();
        let y = parse_timestamp_ns("2024-03-01 00:00:00").unwrap();
        assert_eq!(y - x, 2 * 86_400 * 1_000_000_000);
        assert!(parse_timestamp_ns("2023-13-01 00:00:00").is_err());
        assert!(parse_timestamp_ns("yesterday").is_err());
    }

    #[test]
    fn rows_become_unique_prompts_relative_to_first_row() {
        let csv = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                   2023-11-16 18:17:03.9799600,4808,10\n\
                   2023-11-16 18:17:04.0319600,3180,8\n";
        let r: Vec<TraceRequest> = read_azure(csv.as_bytes(), ReadOptions::strict("a.csv"))
            .map(Result::unwrap)
            .collect();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].arrival_ns, 0);
        assert_eq!(r[1].arrival_ns, 52_000_000);
        assert_eq!((r[0].prompt.n_tokens(), r[0].output_len), (4808, 10));
        assert_eq!(r[0].prompt.block_keys(16, None).len(), 300);
        let k0 = r[0].prompt.block_keys(16, None);
        let k1 = r[1].prompt.block_keys(16, None);
        assert!(k0.iter().all(|k| !k1.contains(k)));
    }

    #[test]
    fn bad_rows_name_the_column() {
        let csv = "GeneratedTokens,TIMESTAMP,ContextTokens\n3,2023-11-16 18:17:03,x\n";
        let e = read_azure(csv.as_bytes(), ReadOptions::strict("a.csv"))
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.csv:2: ContextTokens: expected non-negative integer, got \"x\""
        );
        let csv = "TIMESTAMP,ContextTokens\n";
        let e = read_azure(csv.as_bytes(), ReadOptions::strict("a.csv"))
            .next()
            .unwrap()
            .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("a.csv:1: header: no GeneratedTokens column"));
        let csv = "2023-11-16 18:17:05,1,1\n2023-11-16 18:17:03,1,1\n";
        let e = read_azure(csv.as_bytes(), ReadOptions::strict("a.csv"))
            .nth(1)
            .unwrap()
            .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("a.csv:2: TIMESTAMP: earlier than the first row"));
    }
}
