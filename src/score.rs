//! `pynomaly score`: offline scoring of a CSV or JSONL file (or stdin)
//! through the same [`Engine`] the Kafka service uses.
//!
//! * **CSV** with a header: a `timestamp` column is passed through when
//!   present, `--key-column` names the entity-key column (default: the whole
//!   file is one key), `--features a,b,c` chooses the feature columns (default:
//!   every other column that is numeric in the first data row). The output
//!   repeats the input columns and appends `anomaly_score`, `raw_score`,
//!   `is_anomaly` and `warming_up`.
//! * **JSONL** in the input record format
//!   `{"key": "host-1", "timestamp": 1732610000000, "values": {"cpu": 0.42}}`
//!   (`--key-column` names another key field, `--features` chooses entries of
//!   `values`, default every numeric one). Each output line is the input object
//!   with the same four fields added.
//!
//! Every key starts fresh. A bad row (unparseable, non-finite, missing or
//! changed features) is reported on stderr with its line number, counted and
//! skipped; a summary follows at the end. The format is taken from
//! `--format`, else the file extension, else the first byte (`{` = JSONL).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use crate::codec::json::{parse_timestamp, parse_timestamp_text};
use crate::config::Config;
use crate::detect::{Algorithm, Score};
use crate::engine::Engine;

/// Input encodings of `pynomaly score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON record per line.
    Jsonl,
}

/// Arguments of `pynomaly score`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// Input file (CSV or JSONL); `-` reads stdin.
    pub input: String,
    /// Output file, same format as the input; `-` writes stdout.
    #[arg(short, long, default_value = "-")]
    pub output: String,
    /// Detector to run for every key (overrides `default_algorithm`,
    /// `multivariate_algorithm`, `enable_ensemble` and `enable_automl`): ewma,
    /// mad, gaussian, seasonal, cusum, ensemble, auto, hst, rcf, loda, …
    /// Without it, keys with at least `multivariate_min_features` features get
    /// `multivariate_algorithm`, the others `default_algorithm`.
    #[arg(long)]
    pub algorithm: Option<String>,
    /// Column (CSV) or field (JSONL) holding the entity key; default: one key
    /// for the whole CSV file, the `key` field for JSONL.
    #[arg(long)]
    pub key_column: Option<String>,
    /// Feature columns, comma-separated; default: every numeric column other
    /// than the timestamp and key.
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
    /// Input format; default: from the file extension, else sniffed.
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// Never draw a progress bar (it is drawn only for files when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// Counters reported at the end of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Rows scored and written.
    pub scored: u64,
    /// Rows skipped because they were bad.
    pub skipped: u64,
    /// Rows flagged as anomalies.
    pub anomalies: u64,
    /// Distinct keys.
    pub keys: u64,
}

/// Runs `pynomaly score` with a loaded configuration.
pub fn run(args: ScoreArgs, config: &Config) -> anyhow::Result<()> {
    let mut spec = config.detector_spec()?;
    if let Some(name) = &args.algorithm {
        spec.algorithm = name
            .parse::<Algorithm>()
            .map_err(|m| anyhow::anyhow!("--algorithm: {m}"))?;
        spec.multivariate = None;
    }
    let mut engine = Engine::new(spec);

    let (reader, progress): (Box<dyn Read>, Option<ProgressBar>) = if args.input == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file =
            File::open(&args.input).with_context(|| format!("cannot open {}", args.input))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if !args.no_progress && io::stderr().is_terminal() {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            (Box::new(bar.wrap_read(file)), Some(bar))
        } else {
            (Box::new(file), None)
        }
    };
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let format = match args.format {
        Some(f) => f,
        None => detect_format(&args.input, &mut reader)?,
    };
    let writer: Box<dyn Write> = if args.output == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(
            File::create(&args.output).with_context(|| format!("cannot create {}", args.output))?,
        )
    };
    let mut writer = BufWriter::with_capacity(1 << 16, writer);
    let mut report = |line: u64, msg: &str| {
        let text = format!("{}:{line}: {msg}; row skipped", args.input);
        match &progress {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    };
    let summary = match format {
        InputFormat::Csv => score_csv(&args, &mut engine, reader, &mut writer, &mut report)?,
        InputFormat::Jsonl => score_jsonl(&args, &mut engine, reader, &mut writer, &mut report)?,
    };
    writer.flush().context("cannot write the output")?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    eprintln!(
        "scored {} rows of {} keys with {}: {} anomalies, {} bad rows skipped",
        summary.scored,
        summary.keys,
        engine.detector_name(),
        summary.anomalies,
        summary.skipped
    );
    Ok(())
}

fn detect_format(input: &str, reader: &mut impl BufRead) -> anyhow::Result<InputFormat> {
    let ext = Path::new(input)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv" | "tsv" | "txt") => return Ok(InputFormat::Csv),
        Some("jsonl" | "ndjson" | "json") => return Ok(InputFormat::Jsonl),
        _ => {}
    }
    let buf = reader.fill_buf().context("cannot read the input")?;
    let first = buf.iter().find(|b| !b.is_ascii_whitespace());
    Ok(if first == Some(&b'{') {
        InputFormat::Jsonl
    } else {
        InputFormat::Csv
    })
}

fn fmt_f64(v: f64) -> String {
    // Shortest representation that round-trips.
    format!("{v}")
}

fn score_csv(
    args: &ScoreArgs,
    engine: &mut Engine,
    reader: impl Read,
    writer: &mut impl Write,
    report: &mut impl FnMut(u64, &str),
) -> anyhow::Result<Summary> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(reader);
    let header = rdr.headers().context("cannot read the CSV header")?.clone();
    if header.is_empty() {
        bail!("the CSV input has no header");
    }
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let key_col = match &args.key_column {
        Some(k) => {
            Some(find(k).with_context(|| format!("--key-column `{k}` is not in the header"))?)
        }
        None => None,
    };
    let ts_col = header
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case("timestamp"));
    let mut out = csv::WriterBuilder::new().from_writer(writer);
    let mut out_header: Vec<&str> = header.iter().collect();
    out_header.extend(["anomaly_score", "raw_score", "is_anomaly", "warming_up"]);
    out.write_record(&out_header)?;

    let mut features: Option<Vec<(usize, String)>> = if args.features.is_empty() {
        None
    } else {
        let mut cols = Vec::new();
        for f in &args.features {
            let i = find(f).with_context(|| format!("--features: `{f}` is not in the header"))?;
            cols.push((i, f.clone()));
        }
        Some(cols)
    };
    let mut summary = Summary::default();
    let mut keys = std::collections::HashSet::new();
    let mut values: Vec<(String, f64)> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                summary.skipped += 1;
                report(line, &format!("unreadable CSV row: {e}"));
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.len() != header.len() {
            summary.skipped += 1;
            report(
                line,
                &format!(
                    "{} fields where the header has {}",
                    record.len(),
                    header.len()
                ),
            );
            continue;
        }
        let cols = features.get_or_insert_with(|| {
            header
                .iter()
                .enumerate()
                .filter(|&(i, _)| Some(i) != ts_col && Some(i) != key_col)
                .filter(|&(i, _)| record[i].trim().parse::<f64>().is_ok())
                .map(|(i, h)| (i, h.trim().to_string()))
                .collect()
        });
        if cols.is_empty() {
            bail!("line {line}: no numeric feature column (choose them with --features)");
        }
        values.clear();
        let mut bad = None;
        for (i, name) in cols.iter() {
            let text = record[*i].trim();
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => values.push((name.clone(), v)),
                _ => {
                    bad = Some(format!("column `{name}`: `{text}` is not a finite number"));
                    break;
                }
            }
        }
        if let Some(msg) = bad {
            summary.skipped += 1;
            report(line, &msg);
            continue;
        }
        let key = key_col.map_or("", |i| &record[i]);
        let timestamp = ts_col.and_then(|i| parse_timestamp_text(&record[i]));
        match engine.score_at(key.as_bytes(), &values, timestamp) {
            Ok(s) => {
                if !keys.contains(key) {
                    keys.insert(key.to_string());
                }
                count(&mut summary, &s);
                let mut row: Vec<String> = record.iter().map(str::to_string).collect();
                row.extend([
                    fmt_f64(s.score),
                    fmt_f64(s.raw),
                    s.is_anomaly.to_string(),
                    s.warming_up.to_string(),
                ]);
                out.write_record(&row)?;
            }
            Err(e) => {
                summary.skipped += 1;
                report(line, &e.to_string());
            }
        }
    }
    out.flush()?;
    summary.keys = keys.len() as u64;
    Ok(summary)
}

fn count(summary: &mut Summary, s: &Score) {
    summary.scored += 1;
    if s.is_anomaly {
        summary.anomalies += 1;
    }
}

fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn score_jsonl(
    args: &ScoreArgs,
    engine: &mut Engine,
    reader: impl BufRead,
    writer: &mut impl Write,
    report: &mut impl FnMut(u64, &str),
) -> anyhow::Result<Summary> {
    let key_field = args.key_column.as_deref().unwrap_or("key");
    let mut summary = Summary::default();
    let mut keys = std::collections::HashSet::new();
    let mut values: Vec<(String, f64)> = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line_no = n as u64 + 1;
        let line = line.with_context(|| format!("cannot read line {line_no}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut obj: Map<String, Value> = match serde_json::from_str(&line) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                summary.skipped += 1;
                report(line_no, "not a JSON object");
                continue;
            }
            Err(e) => {
                summary.skipped += 1;
                report(line_no, &format!("invalid JSON: {e}"));
                continue;
            }
        };
        let key = obj.get(key_field).and_then(key_text).unwrap_or_default();
        values.clear();
        let bad = match obj.get("values") {
            Some(Value::Object(vals)) if args.features.is_empty() => {
                values.extend(
                    vals.iter()
                        .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f))),
                );
                None
            }
            Some(Value::Object(vals)) => {
                args.features
                    .iter()
                    .find_map(|f| match vals.get(f).and_then(Value::as_f64) {
                        Some(v) => {
                            values.push((f.clone(), v));
                            None
                        }
                        None => Some(format!("feature `{f}` is missing or not a number")),
                    })
            }
            _ => Some("no `values` object".to_string()),
        };
        if let Some(msg) = bad {
            summary.skipped += 1;
            report(line_no, &msg);
            continue;
        }
        let timestamp = obj.get("timestamp").and_then(parse_timestamp);
        match engine.score_at(key.as_bytes(), &values, timestamp) {
            Ok(s) => {
                if !keys.contains(&key) {
                    keys.insert(key);
                }
                count(&mut summary, &s);
                obj.insert("anomaly_score".into(), finite_json(s.score));
                obj.insert("raw_score".into(), finite_json(s.raw));
                obj.insert("is_anomaly".into(), Value::Bool(s.is_anomaly));
                obj.insert("warming_up".into(), Value::Bool(s.warming_up));
                serde_json::to_writer(&mut *writer, &obj)?;
                writer.write_all(b"\n")?;
            }
            Err(e) => {
                summary.skipped += 1;
                report(line_no, &e.to_string());
            }
        }
    }
    summary.keys = keys.len() as u64;
    Ok(summary)
}

fn finite_json(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}
