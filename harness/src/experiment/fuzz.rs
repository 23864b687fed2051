//! Fuzzing the loaders with the shipped files, mutated: whatever a file holds, loading it
//! either succeeds or is refused with `<path>:<line>:<col>: <field>: <message>`, the line and
//! column inside the file; it never panics.
//!
//! Each case takes one shipped experiment (every `experiments/*.toml` but `matrix.toml`,
//! through [`super::load`] after [`matrix::is_matrix`], as the CLI does) or `matrix.toml`
//! (through [`matrix::load`]), applies a few mutations (byte flips, truncations, line
//! deletions and duplications, values replaced by hostile ones, values swapped between keys,
//! hostile keys inserted), writes it to a file and loads that.
//!
//! Bounded for CI (2 cores, well under a minute): [`EXPERIMENT_CASES`] and [`MATRIX_CASES`]
//! cases, or `PROPTEST_CASES` for both.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Cases of the experiment files' fuzz unless `PROPTEST_CASES` says otherwise.
const EXPERIMENT_CASES: u32 = 2000;
/// Cases of the matrix file's fuzz (each load validates 21 cells) unless `PROPTEST_CASES`
/// says otherwise.
const MATRIX_CASES: u32 = 400;

/// Values a user (or a corrupted file) may put after `=`: out of range, of the wrong type,
/// not numbers, empty, non-ASCII, durations too long for anything, units that are easy to
/// get wrong.
const HOSTILE: &[&str] = &[
    "18446744073709551616",
    "9223372036854775807",
    "4294967295",
    "4294967296",
    "-1",
    "-9223372036854775808",
    "0",
    "0.0",
    "-0.0",
    "1e308",
    "5e-324",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "true",
    "[]",
    "{}",
    "[[]]",
    "\"\"",
    "\" \"",
    "\"\\u0000\"",
    "\"ü🙂 région\"",
    "\"80mins\"",
    "\"80 ms\"",
    "\"10000h\"",
    "\"1000000000years\"",
    "\"18446744073709551615s\"",
    "\"584942417355years\"",
    "\"-5s\"",
    "\"+2h\"",
    "\"1ns\"",
    "\"0ms\"",
    "\"1.5ms\"",
    "\"1e9s\"",
    "\"us-db\"",
    "[\"us\", \"us\"]",
    "[\"eu\", \"us\", \"eu\"]",
    "'''\nmulti\nline'''",
    "1979-05-27T07:32:00Z",
];

/// Keys worth setting to a hostile value, with their table (`""`: the top level;
/// `[[faults]]`: the first fault): the sizes, the durations, the names.
const KEYS: &[(&str, &str)] = &[
    ("", "duration"),
    ("", "settle"),
    ("", "seed"),
    ("", "posture"),
    ("", "name"),
    ("network", "rtt"),
    ("network", "jitter"),
    ("network.pair_jitter", "us-eu"),
    ("workload", "rate_per_s"),
    ("workload", "users"),
    ("workload", "keys"),
    ("workload", "counters"),
    ("workload", "op_timeout"),
    ("workload", "read_fraction"),
    ("workload", "travel_fraction"),
    ("cache", "ttl"),
    ("cache", "ttl_jitter"),
    ("failover", "interval"),
    ("failover", "threshold"),
    ("failover", "dns_ttl"),
    ("slo", "rto"),
    ("slo", "max_stale_read_rate"),
    ("[[faults]]", "at"),
    ("[[faults]]", "heal_at"),
    ("[[faults]]", "duration"),
    ("[[faults]]", "rtt"),
    ("[[faults]]", "offset"),
    ("[[faults]]", "links"),
];

/// One change to a file's bytes. Indexes are taken modulo what they index.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte with a non-zero mask (this is what makes files that are not UTF-8).
    FlipByte(usize, u8),
    /// Keep only the first bytes.
    Truncate(usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    /// Replace the value of a `key = value` line with a hostile value.
    HostileValue(usize, usize),
    /// Exchange the values of two `key = value` lines.
    SwapValues(usize, usize),
    /// Set a key of [`KEYS`] in its table to a hostile value: its value replaced when the
    /// table has it, else a line added under the table's header (the table added at the end
    /// when the file has none).
    SetKey(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::FlipByte(at, mask)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => any::<usize>().prop_map(Mutation::DeleteLine),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(l, v)| Mutation::HostileValue(l, v)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapValues(a, b)),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(k, v)| Mutation::SetKey(k, v)),
    ]
}

/// Lines with their line ends, so that joining them gives the file back.
fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// The key of a `key = value` line (a bare key at the start of the line), but not
/// `description`, whose multi-line value is not worth breaking over and over.
fn key_of(line: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(line).ok()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    (!key.is_empty() && key.chars().all(bare) && key != "description").then_some(key)
}

/// Where the value of a `key = value` line starts and ends (before the line end).
fn value_of(line: &[u8]) -> Option<(usize, usize)> {
    key_of(line)?;
    let eq = line.iter().position(|b| *b == b'=')?;
    let end = line.len() - line.iter().rev().take_while(|b| **b == b'\n').count();
    Some((eq + 1, end.max(eq + 1)))
}

/// The table a header line opens (`[base.network]` → `base.network`, `[[faults]]` →
/// `[[faults]]`), or None for any other line.
fn header_of(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?.trim();
    if let Some(t) = line.strip_prefix("[[") {
        return Some(format!("[[{}]]", t.split("]]").next()?.trim()));
    }
    Some(
        line.strip_prefix('[')?
            .split(']')
            .next()?
            .trim()
            .to_string(),
    )
}

/// The file's `key = value` lines (by index).
fn key_lines(ls: &[Vec<u8>]) -> Vec<usize> {
    (0..ls.len())
        .filter(|i| value_of(&ls[*i]).is_some())
        .collect()
}

/// Applies `m`; `matrix`: the file is a matrix, whose experiment keys are under `[base]` and
/// its faults under `[[scenarios.faults]]`.
fn apply(mut bytes: Vec<u8>, m: &Mutation, matrix: bool) -> Vec<u8> {
    let mut ls = lines(&bytes);
    match *m {
        Mutation::FlipByte(at, mask) => {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
            return bytes;
        }
        Mutation::Truncate(at) => {
            bytes.truncate(at % (bytes.len() + 1));
            return bytes;
        }
        Mutation::DeleteLine(l) if !ls.is_empty() => {
            ls.remove(l % ls.len());
        }
        Mutation::DuplicateLine(l) if !ls.is_empty() => {
            let l = l % ls.len();
            ls.insert(l, ls[l].clone());
        }
        Mutation::HostileValue(l, v) => {
            let with_value = key_lines(&ls);
            if !with_value.is_empty() {
                let i = with_value[l % with_value.len()];
                let (start, end) = value_of(&ls[i]).expect("has a value");
                let value = format!(" {}", HOSTILE[v % HOSTILE.len()]);
                ls[i].splice(start..end, value.bytes());
            }
        }
        Mutation::SwapValues(a, b) => {
            let with_value = key_lines(&ls);
            if !with_value.is_empty() {
                let (i, j) = (
                    with_value[a % with_value.len()],
                    with_value[b % with_value.len()],
                );
                let ((si, ei), (sj, ej)) = (
                    value_of(&ls[i]).expect("has a value"),
                    value_of(&ls[j]).expect("has a value"),
                );
                let (vi, vj) = (ls[i][si..ei].to_vec(), ls[j][sj..ej].to_vec());
                ls[i].splice(si..ei, vj);
                ls[j].splice(sj..ej, vi);
            }
        }
        Mutation::SetKey(k, v) => {
            let (table, key) = KEYS[k % KEYS.len()];
            let table = match (matrix, table) {
                (false, t) => t.to_string(),
                (true, "") => "base".to_string(),
                (true, "[[faults]]") => "[[scenarios.faults]]".to_string(),
                (true, "slo") => "slo".to_string(),
                (true, t) => format!("base.{t}"),
            };
            let value = HOSTILE[v % HOSTILE.len()];
            // The table's lines: after its header (top level: from the start) to the next.
            let begin = if table.is_empty() {
                Some(0)
            } else {
                (0..ls.len())
                    .find(|i| header_of(&ls[*i]).as_deref() == Some(&table))
                    .map(|i| i + 1)
            };
            match begin {
                None => {
                    if ls.last().is_some_and(|l| !l.ends_with(b"\n")) {
                        ls.push(b"\n".to_vec());
                    }
                    let open = if table.starts_with("[[") {
                        table.clone()
                    } else {
                        format!("[{table}]")
                    };
                    ls.push(format!("{open}\n{key} = {value}\n").into_bytes());
                }
                Some(begin) => {
                    let end = (begin..ls.len())
                        .find(|i| header_of(&ls[*i]).is_some())
                        .unwrap_or(ls.len());
                    match (begin..end).find(|i| key_of(&ls[*i]) == Some(key)) {
                        Some(i) => {
                            let (start, end) = value_of(&ls[i]).expect("has a value");
                            ls[i].splice(start..end, format!(" {value}").bytes());
                        }
                        None => ls.insert(begin, format!("{key} = {value}\n").into_bytes()),
                    }
                }
            }
        }
        Mutation::DeleteLine(_) | Mutation::DuplicateLine(_) => {}
    }
    ls.concat()
}

/// Checks a refusal against the file it is about: `<path>:<line>:<col>: <field>: `, the line
/// and column inside the file, the same parts in the fields.
fn check_refusal(path: &Path, bytes: &[u8], e: &ExperimentError) -> Result<(), String> {
    let shown = e.to_string();
    let rest = shown
        .strip_prefix(&format!("{}:", path.display()))
        .ok_or("does not start with the path")?;
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("no line number")?;
    let column: usize = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or("no column number")?;
    let rest = parts
        .next()
        .and_then(|r| r.strip_prefix(' '))
        .ok_or("no space after the column")?;
    let (field, message) = rest.split_once(": ").ok_or("no `field: `")?;
    if field.is_empty() || field.contains('\n') || field.starts_with(' ') {
        return Err(format!("bad field {field:?}"));
    }
    if message.trim().is_empty() {
        return Err("empty message".into());
    }
    if (line, column) != (e.line, e.column) || !rest.starts_with(e.field.as_str()) {
        return Err("the text disagrees with the error's fields".into());
    }
    // The file's lines as a reader sees them (an invalid byte shows as one character): the
    // position may be just past the end of a line or of the file, never beyond.
    let text = String::from_utf8_lossy(bytes);
    let file_lines: Vec<&str> = text.split('\n').collect();
    if line == 0 || line > file_lines.len() {
        return Err(format!(
            "line {line} outside the file's {} lines",
            file_lines.len()
        ));
    }
    let width = file_lines[line - 1].chars().count();
    if column == 0 || column > width + 1 {
        return Err(format!(
            "column {column} outside line {line} ({width} characters)"
        ));
    }
    Ok(())
}

/// Runs `cases` cases over `originals`: each mutated, written under `dir` with its original
/// file name, loaded by `load` inside `catch_unwind`.
fn fuzz(
    originals: Vec<(String, Vec<u8>)>,
    cases: u32,
    matrix: bool,
    load: fn(&Path) -> Result<(), ExperimentError>,
) {
    let dir = if matrix {
        "fuzz-matrix"
    } else {
        "fuzz-experiments"
    };
    let dir = std::env::temp_dir().join(format!("regiondrill-{dir}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(cases),
        // No regression files written into the source tree: a failure prints its input.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (0..originals.len(), prop::collection::vec(mutation(), 1..=4));
    let result = runner.run(&strategy, |(which, mutations)| {
        let (name, original) = &originals[which];
        let bytes = mutations
            .iter()
            .fold(original.clone(), |b, m| apply(b, m, matrix));
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let loaded = catch_unwind(AssertUnwindSafe(|| load(&path)));
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        match loaded {
            Err(_) => Err(TestCaseError::fail(format!(
                "panicked loading {name} mutated by {mutations:?}:\n{shown}"
            ))),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => check_refusal(&path, &bytes, &e).map_err(|why| {
                TestCaseError::fail(format!(
                    "{why}: `{e}` for {name} mutated by {mutations:?}:\n{shown}"
                ))
            }),
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments")
}

fn shipped(keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(experiments_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml") && keep(n))
        .map(|n| {
            let bytes = std::fs::read(experiments_dir().join(&n)).unwrap();
            (n, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn mutated_experiment_files_load_or_are_refused_at_a_place_in_the_file() {
    let files = shipped(|n| n != MATRIX_FILE);
    assert!(files.len() >= 10, "{} shipped experiments", files.len());
    // As the CLI does: is it a matrix? Then load it as an experiment.
    fuzz(files, EXPERIMENT_CASES, false, |path| {
        if !matrix::is_matrix(path)? {
            load(path)?;
        }
        Ok(())
    });
}

#[test]
fn mutated_matrix_files_load_or_are_refused_at_a_place_in_the_file() {
    let files = shipped(|n| n == MATRIX_FILE);
    assert_eq!(files.len(), 1);
    fuzz(files, MATRIX_CASES, true, |path| {
        matrix::load(path).map(|_| ())
    });
}

#[test]
fn the_fuzz_checks_catch_a_misplaced_refusal() {
    // The oracle itself: a refusal past the end of its line, without a field, or of another
    // file fails it.
    let path = Path::new("d/x.toml");
    let bytes = b"a = 1\nbb = 2\n";
    let at = |line, column, field: &str| ExperimentError {
        file: path.to_path_buf(),
        line,
        column,
        field: field.into(),
        message: "wrong".into(),
    };
    assert_eq!(check_refusal(path, bytes, &at(2, 7, "bb")), Ok(()));
    assert_eq!(check_refusal(path, bytes, &at(3, 1, "syntax")), Ok(()));
    assert!(check_refusal(path, bytes, &at(2, 8, "bb")).is_err());
    assert!(check_refusal(path, bytes, &at(4, 1, "bb")).is_err());
    assert!(check_refusal(path, bytes, &at(1, 1, "")).is_err());
    assert!(check_refusal(path, bytes, &at(0, 0, "")).is_err());
    assert!(check_refusal(Path::new("other.toml"), bytes, &at(1, 1, "a")).is_err());
    // And the mutations do what they say.
    let file = b"a = 1\nbb = 2\n[t]\nc = 3\n";
    let mutated = |m: Mutation| String::from_utf8(apply(file.to_vec(), &m, false)).unwrap();
    assert_eq!(
        mutated(Mutation::SwapValues(0, 1)),
        "a = 2\nbb = 1\n[t]\nc = 3\n"
    );
    assert_eq!(
        mutated(Mutation::HostileValue(1, 23)),
        "a = 1\nbb = \"80mins\"\n[t]\nc = 3\n"
    );
    assert_eq!(
        mutated(Mutation::DuplicateLine(5)),
        "a = 1\nbb = 2\nbb = 2\n[t]\nc = 3\n"
    );
    assert_eq!(mutated(Mutation::Truncate(3)), "a =");
    // `duration` at the top level: added before the first line.
    assert_eq!(
        mutated(Mutation::SetKey(0, 23)),
        "duration = \"80mins\"\na = 1\nbb = 2\n[t]\nc = 3\n"
    );
    // `[network] rtt`: the file has no [network], so it is added at the end.
    assert_eq!(
        mutated(Mutation::SetKey(5, 25)),
        "a = 1\nbb = 2\n[t]\nc = 3\n[network]\nrtt = \"10000h\"\n"
    );
    // In a matrix, the same key is under [base.network], replaced where it is.
    let matrix = b"[base.network]\nrtt = \"80ms\"\n[slo]\n";
    assert_eq!(
        apply(matrix.to_vec(), &Mutation::SetKey(5, 23), true),
        b"[base.network]\nrtt = \"80mins\"\n[slo]\n"
    );
}
