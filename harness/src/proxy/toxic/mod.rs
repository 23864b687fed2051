//! Toxics: the faults a proxy applies to the bytes of one stream.
//!
//! One file per toxic type, each holding its attributes (named and unit-ed exactly as
//! Toxiproxy names them, so the JSON is the API) and the small piece of behaviour the
//! connection pump asks of it. [`ToxicKind`] is the registry that maps a type name to its file.

mod bandwidth;
mod latency;
mod limit_data;
mod noop;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

pub use bandwidth::Bandwidth;
pub use latency::Latency;
pub use limit_data::LimitData;
pub use noop::Noop;
pub use reset_peer::ResetPeer;
pub use slicer::Slicer;
pub use slow_close::SlowClose;
pub use timeout::Timeout;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which direction of a proxied connection a toxic acts on.
///
/// `downstream` is upstream server → client (Toxiproxy's default), `upstream` is client → server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → upstream server.
    Upstream,
    /// Upstream server → client.
    #[default]
    Downstream,
}

impl Stream {
    /// Toxiproxy's spelling, as used in default toxic names (`latency_downstream`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    /// Parses Toxiproxy's stream names, in any case (`UpStream` too), as Toxiproxy does.
    pub fn parse(s: &str) -> Option<Stream> {
        match s.to_ascii_lowercase().as_str() {
            "upstream" => Some(Stream::Upstream),
            "downstream" => Some(Stream::Downstream),
            _ => None,
        }
    }
}

/// A toxic's type and typed attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    /// Delay every chunk.
    Latency(Latency),
    /// Cap the rate in KB/s.
    Bandwidth(Bandwidth),
    /// Delay the close of the connection.
    SlowClose(SlowClose),
    /// Stop data; close after a time (never when 0: a black hole).
    Timeout(Timeout),
    /// Reset the connection (TCP RST) after a time.
    ResetPeer(ResetPeer),
    /// Cut data into small slices with a delay between them.
    Slicer(Slicer),
    /// Close the connection after a number of bytes.
    LimitData(LimitData),
    /// Pass data through untouched (Toxiproxy has it for tests of the API itself).
    Noop(Noop),
}

/// Every type name the registry knows, for error messages.
pub const TOXIC_TYPES: &[&str] = &[
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "noop",
];

impl ToxicKind {
    /// Builds a toxic of type `type_name` from its JSON attributes.
    ///
    /// An absent (or `null`) attribute takes Toxiproxy's default, the zero value of its Go
    /// field: clients such as toxiproxy-python send `"attributes": {}` unless told otherwise,
    /// and Toxiproxy's own tests add toxics with none. One exception: slicer's `average_size`,
    /// whose zero value makes Toxiproxy's slicer recurse without end on the first byte, so it
    /// is required (and must be at least 1). Values Toxiproxy would take but that are always
    /// mistakes are refused with a message naming the attribute: negative or fractional
    /// numbers (Toxiproxy silently uses 0 or stalls) and numbers beyond what the attribute can
    /// mean (above 2^63 − 1, which Toxiproxy's JSON decoder refuses too, or a duration beyond
    /// the 292 years Go's `time.Duration` holds, which Toxiproxy would wrap around).
    pub fn from_attributes(
        type_name: &str,
        attributes: &Map<String, Value>,
    ) -> Result<Self, AttributeError> {
        let a = Attributes(attributes);
        Ok(match type_name {
            "latency" => ToxicKind::Latency(Latency::from_attributes(&a)?),
            "bandwidth" => ToxicKind::Bandwidth(Bandwidth::from_attributes(&a)?),
            "slow_close" => ToxicKind::SlowClose(SlowClose::from_attributes(&a)?),
            "timeout" => ToxicKind::Timeout(Timeout::from_attributes(&a)?),
            "reset_peer" => ToxicKind::ResetPeer(ResetPeer::from_attributes(&a)?),
            "slicer" => ToxicKind::Slicer(Slicer::from_attributes(&a)?),
            "limit_data" => ToxicKind::LimitData(LimitData::from_attributes(&a)?),
            "noop" => ToxicKind::Noop(Noop),
            other => {
                return Err(AttributeError::UnknownType {
                    name: other.to_string(),
                });
            }
        })
    }

    /// Toxiproxy's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency(_) => "latency",
            ToxicKind::Bandwidth(_) => "bandwidth",
            ToxicKind::SlowClose(_) => "slow_close",
            ToxicKind::Timeout(_) => "timeout",
            ToxicKind::ResetPeer(_) => "reset_peer",
            ToxicKind::Slicer(_) => "slicer",
            ToxicKind::LimitData(_) => "limit_data",
            ToxicKind::Noop(_) => "noop",
        }
    }

    /// The attributes as Toxiproxy's JSON object.
    pub fn attributes(&self) -> Value {
        match self {
            ToxicKind::Latency(t) => serde_json::json!({"latency": t.latency, "jitter": t.jitter}),
            ToxicKind::Bandwidth(t) => serde_json::json!({"rate": t.rate}),
            ToxicKind::SlowClose(t) => serde_json::json!({"delay": t.delay}),
            ToxicKind::Timeout(t) => serde_json::json!({"timeout": t.timeout}),
            ToxicKind::ResetPeer(t) => serde_json::json!({"timeout": t.timeout}),
            ToxicKind::Slicer(t) => serde_json::json!({
                "average_size": t.average_size,
                "size_variation": t.size_variation,
                "delay": t.delay,
            }),
            ToxicKind::LimitData(t) => serde_json::json!({"bytes": t.bytes}),
            ToxicKind::Noop(_) => serde_json::json!({}),
        }
    }

    /// Applies a partial attribute update (Toxiproxy's `POST …/toxics/{name}` semantics:
    /// attributes not mentioned keep their value). The result is checked as a new toxic is.
    pub fn updated(&self, changes: &Map<String, Value>) -> Result<Self, AttributeError> {
        let mut merged = match self.attributes() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, v) in changes {
            merged.insert(k.clone(), v.clone());
        }
        ToxicKind::from_attributes(self.type_name(), &merged)
    }
}

/// A configured toxic on a proxy: what `GET /proxies/{name}/toxics` lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique per proxy; defaults to `<type>_<stream>`.
    pub name: String,
    /// The stream it acts on.
    pub stream: Stream,
    /// Probability, rolled once per connection, that the toxic applies to that connection.
    pub toxicity: f64,
    /// Type and attributes.
    pub kind: ToxicKind,
}

impl Toxic {
    /// A toxic with Toxiproxy's default name and full toxicity.
    pub fn new(kind: ToxicKind, stream: Stream) -> Self {
        Toxic {
            name: format!("{}_{}", kind.type_name(), stream.as_str()),
            stream,
            toxicity: 1.0,
            kind,
        }
    }

    /// Toxiproxy's JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }
}

/// The largest duration in milliseconds: Go's `time.Duration` (int64 nanoseconds, about 292
/// years), which Toxiproxy multiplies every millisecond attribute into.
pub const MAX_MILLIS: u64 = i64::MAX as u64 / 1_000_000;
/// The largest duration in microseconds (slicer `delay`), for the same reason.
pub const MAX_MICROS: u64 = i64::MAX as u64 / 1_000;
/// The largest count (bytes, KB/s): Toxiproxy's attributes are int64.
pub const MAX_COUNT: u64 = i64::MAX as u64;

/// Why a toxic's type or attributes were refused. The API turns [`AttributeError::UnknownType`]
/// into Toxiproxy's "invalid toxic type" and every other variant into a "bad request body",
/// each naming the attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    /// No toxic has that type name.
    #[error("unknown toxic type '{name}' (known: {})", TOXIC_TYPES.join(", "))]
    UnknownType {
        /// The type asked for.
        name: String,
    },
    /// An attribute that has no usable default is absent.
    #[error("missing attribute '{attribute}' ({why})")]
    Missing {
        /// The attribute.
        attribute: &'static str,
        /// Its unit, and why it has no default.
        why: &'static str,
    },
    /// Not a JSON number, or not a whole one.
    #[error("attribute '{attribute}' must be a non-negative integer (got {got})")]
    NotAnInteger {
        /// The attribute.
        attribute: &'static str,
        /// The JSON given.
        got: String,
    },
    /// A negative number.
    #[error("attribute '{attribute}' must not be negative (got {got})")]
    Negative {
        /// The attribute.
        attribute: &'static str,
        /// The JSON given.
        got: String,
    },
    /// A number larger than the attribute can mean (it would otherwise be saturated or wrap).
    #[error("attribute '{attribute}' is out of range: {got} is above the maximum of {max} {unit}")]
    OutOfRange {
        /// The attribute.
        attribute: &'static str,
        /// The JSON given.
        got: String,
        /// The largest value taken.
        max: u64,
        /// The attribute's unit.
        unit: &'static str,
    },
    /// A value that contradicts another attribute or the toxic's meaning.
    #[error("attribute '{attribute}' {reason}")]
    Invalid {
        /// The attribute.
        attribute: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Read access to a toxic's JSON attributes with messages that name the attribute.
pub(crate) struct Attributes<'a>(&'a Map<String, Value>);

impl Attributes<'_> {
    /// A non-negative integer attribute of at most `max` (in `unit`); absent or `null` means
    /// 0, Toxiproxy's default.
    pub(crate) fn int(
        &self,
        attribute: &'static str,
        unit: &'static str,
        max: u64,
    ) -> Result<u64, AttributeError> {
        match self.0.get(attribute) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => integer(attribute, unit, max, v),
        }
    }

    /// Like [`Attributes::int`], for an attribute with no usable default (`why` says why).
    pub(crate) fn required_int(
        &self,
        attribute: &'static str,
        unit: &'static str,
        max: u64,
        why: &'static str,
    ) -> Result<u64, AttributeError> {
        match self.0.get(attribute) {
            None | Some(Value::Null) => Err(AttributeError::Missing { attribute, why }),
            Some(v) => integer(attribute, unit, max, v),
        }
    }
}

/// A JSON value as an integer in `0..=max`. Whole floats (`40.0`, `1e3`) are taken, as before.
fn integer(
    attribute: &'static str,
    unit: &'static str,
    max: u64,
    v: &Value,
) -> Result<u64, AttributeError> {
    let got = || v.to_string();
    let not_integer = || AttributeError::NotAnInteger {
        attribute,
        got: got(),
    };
    let out_of_range = || AttributeError::OutOfRange {
        attribute,
        got: got(),
        max,
        unit,
    };
    let Value::Number(n) = v else {
        return Err(not_integer());
    };
    let value = if let Some(u) = n.as_u64() {
        u
    } else if n.is_i64() {
        return Err(AttributeError::Negative {
            attribute,
            got: got(),
        });
    } else {
        // A float: beyond u64, or written with a fraction or an exponent.
        let f = n.as_f64().ok_or_else(not_integer)?;
        if !f.is_finite() || f.fract() != 0.0 {
            return Err(not_integer());
        }
        if f < 0.0 {
            return Err(AttributeError::Negative {
                attribute,
                got: got(),
            });
        }
        // 2^63 is exactly representable; anything at or above it is out of every range.
        if f >= 9_223_372_036_854_775_808.0 {
            return Err(out_of_range());
        }
        f as u64
    };
    if value > max {
        return Err(out_of_range());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_every_registered_type_and_round_trips_attributes() {
        let all = json!({"latency": 1, "rate": 2, "delay": 3, "timeout": 4,
                         "average_size": 5, "bytes": 6});
        for t in TOXIC_TYPES {
            let kind = ToxicKind::from_attributes(t, &attrs(all.clone())).unwrap();
            assert_eq!(kind.type_name(), *t);
            let again = ToxicKind::from_attributes(t, &attrs(kind.attributes())).unwrap();
            assert_eq!(again, kind);
        }
    }

    /// Finding: `{"type":"timeout"}` (and toxiproxy-python's `"attributes": {}`) was refused;
    /// Toxiproxy takes each attribute's zero value.
    #[test]
    fn toxic_without_attributes_takes_toxiproxy_zero_defaults() {
        let none = Map::new();
        let kind = |t: &str| ToxicKind::from_attributes(t, &none).unwrap();
        assert_eq!(
            kind("latency"),
            ToxicKind::Latency(Latency {
                latency: 0,
                jitter: 0
            })
        );
        assert_eq!(
            kind("bandwidth"),
            ToxicKind::Bandwidth(Bandwidth { rate: 0 })
        );
        assert_eq!(
            kind("slow_close"),
            ToxicKind::SlowClose(SlowClose { delay: 0 })
        );
        assert_eq!(kind("timeout"), ToxicKind::Timeout(Timeout { timeout: 0 }));
        assert_eq!(
            kind("reset_peer"),
            ToxicKind::ResetPeer(ResetPeer { timeout: 0 })
        );
        assert_eq!(
            kind("limit_data"),
            ToxicKind::LimitData(LimitData { bytes: 0 })
        );
        // `null` is absent too (Go's client sends it for nil attributes).
        let nulls = attrs(json!({"latency": null, "jitter": null}));
        assert_eq!(
            ToxicKind::from_attributes("latency", &nulls).unwrap(),
            kind("latency")
        );
        // Unknown attributes are ignored, as Toxiproxy's JSON decoder does.
        let other = attrs(json!({"jitter": 1}));
        assert_eq!(
            ToxicKind::from_attributes("bandwidth", &other).unwrap(),
            kind("bandwidth")
        );
        // Slicer's zero average never finishes slicing in Toxiproxy: required, and says why.
        let err = ToxicKind::from_attributes("slicer", &none).unwrap_err();
        assert!(matches!(
            err,
            AttributeError::Missing {
                attribute: "average_size",
                ..
            }
        ));
        let ok = attrs(json!({"average_size": 10}));
        assert_eq!(
            ToxicKind::from_attributes("slicer", &ok).unwrap(),
            ToxicKind::Slicer(Slicer {
                average_size: 10,
                size_variation: 0,
                delay: 0
            })
        );
    }

    #[test]
    fn refuses_unknown_type_and_lists_known_ones() {
        let err = ToxicKind::from_attributes("lag", &Map::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown toxic type 'lag'"), "{err}");
        assert!(err.contains("latency"), "{err}");
    }

    #[test]
    fn refuses_negative_and_non_integer_attributes_by_name() {
        let err = ToxicKind::from_attributes("latency", &attrs(json!({"latency": -5})))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'latency'") && err.contains("negative"),
            "{err}"
        );
        let err = ToxicKind::from_attributes("bandwidth", &attrs(json!({"rate": "fast"})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("'rate'"), "{err}");
        let err =
            ToxicKind::from_attributes("latency", &attrs(json!({"latency": 1, "jitter": 1.5})))
                .unwrap_err()
                .to_string();
        assert!(err.contains("'jitter'"), "{err}");
    }

    /// Finding: 2^64 ms of latency was taken and saturated into a silent black hole.
    #[test]
    fn numbers_above_i64_max_or_an_attributes_range_are_refused_not_saturated() {
        let parse = |t: &str, body: &str| {
            let v: Value = serde_json::from_str(body).unwrap();
            ToxicKind::from_attributes(t, v.as_object().unwrap())
        };
        for (t, body, attribute) in [
            ("latency", r#"{"latency":18446744073709551616}"#, "latency"),
            ("latency", r#"{"latency":18446744073709551615}"#, "latency"),
            ("latency", r#"{"latency":9223372036854775808}"#, "latency"),
            ("latency", r#"{"latency":1,"jitter":1e19}"#, "jitter"),
            ("latency", r#"{"latency":9223372036855}"#, "latency"),
            ("timeout", r#"{"timeout":9223372036854775807}"#, "timeout"),
            ("reset_peer", r#"{"timeout":1e300}"#, "timeout"),
            ("slow_close", r#"{"delay":9223372036855}"#, "delay"),
            ("bandwidth", r#"{"rate":9223372036854776}"#, "rate"),
            ("limit_data", r#"{"bytes":9223372036854775808}"#, "bytes"),
            (
                "slicer",
                r#"{"average_size":9223372036854775808}"#,
                "average_size",
            ),
            (
                "slicer",
                r#"{"average_size":8,"delay":9223372036854776}"#,
                "delay",
            ),
        ] {
            let err = parse(t, body).unwrap_err();
            assert!(
                matches!(&err, AttributeError::OutOfRange { attribute: a, .. } if *a == attribute),
                "{t} {body}: {err:?}"
            );
            assert!(err.to_string().contains(&format!("'{attribute}'")), "{err}");
        }
        // The largest values each attribute can mean are taken, unchanged.
        assert_eq!(
            parse("latency", r#"{"latency":9223372036854}"#).unwrap(),
            ToxicKind::Latency(Latency {
                latency: MAX_MILLIS,
                jitter: 0
            })
        );
        assert_eq!(
            parse("limit_data", r#"{"bytes":9223372036854775807}"#).unwrap(),
            ToxicKind::LimitData(LimitData { bytes: MAX_COUNT })
        );
        // Whole floats still count as integers.
        assert_eq!(
            parse("timeout", r#"{"timeout":250.0}"#).unwrap(),
            ToxicKind::Timeout(Timeout { timeout: 250 })
        );
    }

    #[test]
    fn partial_update_keeps_other_attributes() {
        let k = ToxicKind::from_attributes("latency", &attrs(json!({"latency": 40, "jitter": 5})))
            .unwrap();
        let k = k.updated(&attrs(json!({"latency": 100}))).unwrap();
        assert_eq!(
            k,
            ToxicKind::Latency(Latency {
                latency: 100,
                jitter: 5
            })
        );
    }

    #[test]
    fn stream_names_are_case_insensitive_without_abbreviations() {
        assert_eq!(Stream::parse("UpStream"), Some(Stream::Upstream));
        assert_eq!(Stream::parse("downstream"), Some(Stream::Downstream));
        assert_eq!(Stream::parse("up"), None);
        assert_eq!(Stream::parse(""), None);
    }

    #[test]
    fn default_name_is_type_and_stream() {
        let t = Toxic::new(ToxicKind::Timeout(Timeout { timeout: 0 }), Stream::Upstream);
        assert_eq!(t.name, "timeout_upstream");
        assert_eq!(t.to_json()["attributes"]["timeout"], 0);
    }
}
