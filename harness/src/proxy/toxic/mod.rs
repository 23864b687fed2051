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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
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
    /// Stricter than Toxiproxy, on purpose: each type's main attribute (`latency`, `rate`,
    /// `delay`, `timeout`, `average_size`, `bytes`) is required, and negative or fractional
    /// values are refused with a message naming the attribute, where Toxiproxy silently uses 0
    /// or stalls. Secondary attributes (`jitter`, `size_variation`, slicer `delay`) default to 0.
    pub fn from_attributes(
        type_name: &str,
        attributes: &Map<String, Value>,
    ) -> Result<Self, String> {
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
                return Err(format!(
                    "unknown toxic type '{other}' (known: {})",
                    TOXIC_TYPES.join(", ")
                ));
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
    /// attributes not mentioned keep their value).
    pub fn updated(&self, changes: &Map<String, Value>) -> Result<Self, String> {
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

/// Read access to a toxic's JSON attributes with messages that name the attribute.
pub(crate) struct Attributes<'a>(&'a Map<String, Value>);

impl Attributes<'_> {
    /// A required non-negative integer attribute.
    pub(crate) fn required_u64(&self, name: &str, unit: &str) -> Result<u64, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(format!("missing attribute '{name}' ({unit})")),
            Some(_) => self.u64(name),
        }
    }

    /// An optional non-negative integer attribute; missing means 0 (Toxiproxy's zero value).
    pub(crate) fn u64(&self, name: &str) -> Result<u64, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) => {
                if let Some(v) = n.as_u64() {
                    Ok(v)
                } else if n.as_i64().is_some() {
                    Err(format!("attribute '{name}' must not be negative (got {n})"))
                } else {
                    match n.as_f64() {
                        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => {
                            Ok(f as u64)
                        }
                        _ => Err(format!(
                            "attribute '{name}' must be a non-negative integer (got {n})"
                        )),
                    }
                }
            }
            Some(other) => Err(format!(
                "attribute '{name}' must be a non-negative integer (got {other})"
            )),
        }
    }
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

    #[test]
    fn main_attribute_is_required() {
        let err = ToxicKind::from_attributes("latency", &Map::new()).unwrap_err();
        assert_eq!(err, "missing attribute 'latency' (milliseconds)");
        let err =
            ToxicKind::from_attributes("bandwidth", &attrs(json!({"jitter": 1}))).unwrap_err();
        assert!(err.contains("'rate'"), "{err}");
    }

    #[test]
    fn refuses_unknown_type_and_lists_known_ones() {
        let err = ToxicKind::from_attributes("lag", &Map::new()).unwrap_err();
        assert!(err.contains("unknown toxic type 'lag'"), "{err}");
        assert!(err.contains("latency"), "{err}");
    }

    #[test]
    fn refuses_negative_and_non_integer_attributes_by_name() {
        let err =
            ToxicKind::from_attributes("latency", &attrs(json!({"latency": -5}))).unwrap_err();
        assert!(
            err.contains("'latency'") && err.contains("negative"),
            "{err}"
        );
        let err =
            ToxicKind::from_attributes("bandwidth", &attrs(json!({"rate": "fast"}))).unwrap_err();
        assert!(err.contains("'rate'"), "{err}");
        let err =
            ToxicKind::from_attributes("latency", &attrs(json!({"latency": 1, "jitter": 1.5})))
                .unwrap_err();
        assert!(err.contains("'jitter'"), "{err}");
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
