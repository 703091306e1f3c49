//! Writers for run outputs (`summary.json`, `requests.csv`, `pods.csv`,
//! `timeseries.csv`, `config.json`, the terminal summary table) and the
//! `kvsim report` side that reads them back into charts and an HTML page.
//! The core does no IO: writers take `impl Write`, readers `impl Read`, and
//! the CLI opens files.

pub mod font;
pub mod html;
pub mod plot;
pub mod results;
pub mod series;
pub mod sweep;
pub mod table;
pub mod write;
