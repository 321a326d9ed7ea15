//! The bench's results: every figure under its JSON key, the table rows with their targets,
//! and the parts that were skipped or failed.
//!
//! Owns: the rule that every declared key is present in the JSON, as a number or as `null`,
//! and that every `null` is explained by a `SKIPPED <part>: <reason>` or `FAILED <part>:
//! <reason>` line. It never measures, and it never turns a missed target into an error:
//! targets are reported beside the figures, not asserted.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

/// One line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub part: String,
    pub figure: String,
    pub takt: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    /// Whether the target is met; `None` when there is no target or no figure.
    pub met: Option<bool>,
}

impl Row {
    pub fn new(part: &str, figure: impl Into<String>) -> Row {
        Row {
            part: part.to_string(),
            figure: figure.into(),
            takt: String::new(),
            baseline: String::new(),
            ratio: String::new(),
            target: String::new(),
            met: None,
        }
    }
    pub fn takt(mut self, text: impl Into<String>) -> Row {
        self.takt = text.into();
        self
    }
    pub fn baseline(mut self, text: impl Into<String>) -> Row {
        self.baseline = text.into();
        self
    }
    pub fn ratio(mut self, ratio: Option<f64>) -> Row {
        self.ratio = ratio.map_or_else(|| "-".to_string(), fmt_ratio);
        self
    }
    /// A target `value <= limit`, shown as `target`.
    pub fn at_most(mut self, value: Option<f64>, limit: f64, target: &str) -> Row {
        self.target = target.to_string();
        self.met = value.map(|v| v <= limit);
        self
    }
    /// A target `value >= limit`, shown as `target`.
    pub fn at_least(mut self, value: Option<f64>, limit: f64, target: &str) -> Row {
        self.target = target.to_string();
        self.met = value.map(|v| v >= limit);
        self
    }
}

/// Why a part (or a piece of one) produced no figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub part: String,
    pub reason: String,
}

/// Everything one bench run found.
#[derive(Debug, Default)]
pub struct Report {
    values: BTreeMap<String, Value>,
    /// The part each declared key belongs to.
    owner: BTreeMap<String, String>,
    rows: Vec<Row>,
    skipped: Vec<Note>,
    failed: Vec<Note>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    /// Declares `keys` as belonging to `part`; they are `null` until set.
    pub fn declare(&mut self, part: &str, keys: &[&str]) {
        for k in keys {
            self.values.entry(k.to_string()).or_insert(Value::Null);
            self.owner.insert(k.to_string(), part.to_string());
        }
    }

    /// Sets a figure. A non-finite value (a ratio over 0) stays `null`.
    pub fn set(&mut self, key: &str, value: f64) {
        let v = Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.values.insert(key.to_string(), v);
    }

    /// Sets a count.
    pub fn set_count(&mut self, key: &str, value: u64) {
        self.values
            .insert(key.to_string(), Value::Number(Number::from(value)));
    }

    pub fn row(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Records that `part` could not run here (no SCHED_FIFO, no cyclictest, an input that
    /// does not load yet) and returns the line to print.
    pub fn skip(&mut self, part: &str, reason: impl Into<String>) -> String {
        let note = Note {
            part: part.to_string(),
            reason: reason.into(),
        };
        let line = format!("SKIPPED {}: {}", note.part, note.reason);
        self.skipped.push(note);
        line
    }

    /// Records that `part` ran into an error of the code under test and returns the line.
    pub fn fail(&mut self, part: &str, reason: impl Into<String>) -> String {
        let note = Note {
            part: part.to_string(),
            reason: reason.into(),
        };
        let line = format!("FAILED {}: {}", note.part, note.reason);
        self.failed.push(note);
        line
    }

    pub fn failed(&self) -> &[Note] {
        &self.failed
    }

    /// Declared keys that are `null` although their part has no SKIPPED or FAILED note
    /// (e.g. a ratio whose denominator was 0). Each gets a SKIPPED note now; the lines are
    /// returned for printing.
    pub fn explain_nulls(&mut self) -> Vec<String> {
        let unexplained: Vec<(String, String)> = self
            .values
            .iter()
            .filter(|(_, v)| v.is_null())
            .filter_map(|(k, _)| {
                let part = self.owner.get(k)?;
                let explained = self
                    .skipped
                    .iter()
                    .chain(self.failed.iter())
                    .any(|n| n.part.split_whitespace().next() == Some(part.as_str()));
                (!explained).then(|| (part.clone(), k.clone()))
            })
            .collect();
        unexplained
            .into_iter()
            .map(|(part, key)| {
                self.skip(
                    &part,
                    format!("`{key}` could not be computed from the measurements"),
                )
            })
            .collect()
    }

    /// The JSON report: every figure at top level, plus `machine`, `quick`, `skipped` and
    /// `failed`.
    pub fn to_json(&self, machine: Value, quick: bool) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.values {
            m.insert(k.clone(), v.clone());
        }
        let notes = |notes: &[Note]| {
            Value::Array(
                notes
                    .iter()
                    .map(|n| {
                        let mut o = Map::new();
                        o.insert("part".into(), Value::String(n.part.clone()));
                        o.insert("reason".into(), Value::String(n.reason.clone()));
                        Value::Object(o)
                    })
                    .collect(),
            )
        };
        m.insert("machine".into(), machine);
        m.insert("quick".into(), Value::Bool(quick));
        m.insert("skipped".into(), notes(&self.skipped));
        m.insert("failed".into(), notes(&self.failed));
        Value::Object(m)
    }

    /// The table: one row per figure, columns aligned, a verdict per target.
    pub fn render_table(&self) -> String {
        let header = Row {
            part: "part".into(),
            figure: "figure".into(),
            takt: "takt".into(),
            baseline: "baseline".into(),
            ratio: "ratio".into(),
            target: "target".into(),
            met: None,
        };
        let verdict = |r: &Row| -> &'static str {
            match (r.met, r.target.is_empty()) {
                (Some(true), _) => "meets",
                (Some(false), _) => "MISSES",
                (None, false) => "n/a",
                (None, true) => "",
            }
        };
        let all: Vec<&Row> = std::iter::once(&header).chain(self.rows.iter()).collect();
        let width =
            |f: fn(&Row) -> &str| all.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
        let w = [
            width(|r| &r.part),
            width(|r| &r.figure),
            width(|r| &r.takt),
            width(|r| &r.baseline),
            width(|r| &r.ratio),
            width(|r| &r.target),
        ];
        let mut out = String::new();
        for (i, r) in all.iter().enumerate() {
            let v = if i == 0 { "verdict" } else { verdict(r) };
            let line = format!(
                "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:<w5$}  {}",
                r.part,
                r.figure,
                r.takt,
                r.baseline,
                r.ratio,
                r.target,
                v,
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4],
                w5 = w[5],
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A duration in the unit that keeps three significant digits readable.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".to_string()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "-".to_string()
    }
}

/// `a / b`, or `None` when either is missing or `b` is not positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_keys_are_null_until_set_and_nulls_get_explained() {
        let mut r = Report::new();
        r.declare("ports", &["port_a", "port_b"]);
        r.declare("jitter", &["jitter_a"]);
        r.set("port_a", 1.5);
        r.set("port_b", f64::NAN);
        r.skip("jitter", "no SCHED_FIFO");
        let lines = r.explain_nulls();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("SKIPPED ports: `port_b`"), "{lines:?}");
        let json = r.to_json(Value::Null, true);
        assert_eq!(json["port_a"], Value::from(1.5));
        assert!(json["port_b"].is_null() && json["jitter_a"].is_null());
        assert_eq!(json["quick"], Value::Bool(true));
        assert_eq!(json["skipped"].as_array().map(Vec::len), Some(2));
        assert!(r.explain_nulls().is_empty(), "explained once is enough");
    }

    #[test]
    fn a_sub_part_note_explains_its_part() {
        let mut r = Report::new();
        r.declare("jitter", &["jitter_ratio_p99"]);
        r.skip("jitter (cyclictest baseline)", "cyclictest not found");
        assert!(r.explain_nulls().is_empty());
    }

    #[test]
    fn table_shows_verdicts_and_aligns_columns() {
        let mut r = Report::new();
        r.row(
            Row::new("ports", "8 B one-way p50")
                .takt(fmt_ns(1234.0))
                .baseline(fmt_ns(1200.0))
                .ratio(Some(1.028))
                .at_most(Some(1.028), 1.10, "<= 1.10x"),
        );
        r.row(
            Row::new("sim", "speedup")
                .takt("50.0x")
                .at_least(Some(50.0), 100.0, ">= 100x"),
        );
        r.row(Row::new("sim", "other").at_least(None, 1.0, ">= 1"));
        let t = r.render_table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].ends_with("meets"), "{t}");
        assert!(lines[2].ends_with("MISSES"), "{t}");
        assert!(lines[3].ends_with("n/a"), "{t}");
        assert!(
            lines[1].contains("1.23 us") && lines[1].contains("1.03x"),
            "{t}"
        );
        let col = lines[0].find("figure").expect("header");
        assert_eq!(lines[1].find("8 B"), Some(col));
    }

    #[test]
    fn formats_and_ratios() {
        assert_eq!(fmt_ns(812.0), "812 ns");
        assert_eq!(fmt_ns(12_500.0), "12.50 us");
        assert_eq!(fmt_ns(4_560_000.0), "4.56 ms");
        assert_eq!(fmt_ns(2.5e9), "2.50 s");
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
    }
}
