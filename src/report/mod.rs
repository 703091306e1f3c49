//! Writers for run outputs: `summary.json`, `requests.csv`, `pods.csv`,
//! `timeseries.csv`, `config.json`, and the terminal summary table.
//! The core does no IO: these take `impl Write` and the CLI opens files.

pub mod font;
pub mod table;
pub mod write;
