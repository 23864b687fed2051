//! Fields of experiment files and the checks their validation is made of, shared by the
//! experiment's own keys (`experiment::validate`) and by every fault kind's file
//! (`crate::fault`): problems collected with the span they concern, durations, fractions,
//! link selectors, node ids and regions checked against the posture. Below both, so that the
//! experiment can dispatch to the faults' validation without the faults depending back on it.
//!
//! A value that is itself wrong is left out of the checks that depend on it (an unknown
//! posture does not also make every link "absent"), so the report names the cause, not a
//! consequence: every check returns None once it has reported, and takes `Option`s.

use crate::posture::Posture;
use crate::stack::topology::{
    LinkSpec, NodeId, WITNESS_REGION, links, nodes_in, regions_with_nodes, why_absent,
};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

/// A duration exactly as written, e.g. `"80ms"`, `"1.5s"`, `"2m"`, `"1h30m"` (humantime
/// syntax). Only strings are accepted: a bare number has no unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationText(pub String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration in quotes, such as "80ms", "1.5s" or "2m""#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// Which links a network fault acts on (`links` or `between` in the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkSelector {
    /// These links, by name.
    Named(Vec<String>),
    /// Every link between the two regions, both ways.
    Between(String, String),
    /// Every link between the region and any other (the witness included), both ways: the
    /// region cut off from everyone else.
    Isolate(String),
}

impl LinkSelector {
    /// Whether the selector takes `link`.
    pub fn takes(&self, link: &LinkSpec) -> bool {
        match self {
            LinkSelector::Named(names) => names.contains(&link.name),
            LinkSelector::Between(a, b) => joins(link, a, b),
            LinkSelector::Isolate(r) => link.from == *r || link.to == *r,
        }
    }
}

const DURATION_EXAMPLE: &str = r#"write e.g. "80ms", "1.5s" or "2m""#;

/// A problem: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Byte range in the file (the document's own span for a missing top-level key).
    pub span: Range<usize>,
    /// Dotted field path, e.g. `faults[1].heal_at`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Why a document is not a valid experiment: the first problem in file order, wrong types and
/// unknown keys before everything else.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Invalid {
    /// A value of the wrong type or an unknown key, as serde reports it (its span, no field:
    /// the field is the document's key or value at that span).
    #[error("{}", .0.message())]
    Type(toml::de::Error),
    /// Any other problem.
    #[error("{}: {}", .0.field, .0.message)]
    Problem(Problem),
}

/// Collects the problems of one document.
#[derive(Default)]
pub(crate) struct Checker {
    problems: Vec<Problem>,
    type_errors: Vec<toml::de::Error>,
}

impl Checker {
    pub fn report(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            span,
            field: field.into(),
            message: message.into(),
        });
    }

    /// `value` read as `T` (serde, spans kept); a wrong type or an unknown key is kept and
    /// reported before any other problem.
    pub fn read<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>) -> Option<T> {
        T::deserialize(ValueDeserializer::from(value))
            .map_err(|e| self.type_errors.push(e))
            .ok()
    }

    /// The verdict on the document: its first type error, else its first problem, in file
    /// order; else `value`.
    pub fn finish<T>(mut self, value: Option<T>) -> Result<T, Invalid> {
        let start = |e: &toml::de::Error| e.span().map_or(0, |s| s.start);
        if let Some(e) = std::mem::take(&mut self.type_errors)
            .into_iter()
            .min_by_key(start)
        {
            return Err(Invalid::Type(e));
        }
        match (self.first_problem(), value) {
            (Some(problem), _) => Err(Invalid::Problem(problem)),
            (None, Some(value)) => Ok(value),
            // A check returned None without saying why: a bug, but not the user's problem.
            (None, None) => Err(Invalid::Problem(Problem {
                span: 0..0,
                field: "(file)".into(),
                message: "refused without a reason (a bug in regiondrill: please report it)".into(),
            })),
        }
    }

    /// The first problem in file order (type errors aside).
    pub fn first_problem(self) -> Option<Problem> {
        let mut problems = self.problems;
        // A stable sort: for problems at the same place, the first found (the root cause).
        problems.sort_by_key(|p| p.span.start);
        problems.into_iter().next()
    }

    /// Parses a duration; None (reported) when malformed.
    pub fn parse_duration(
        &mut self,
        field: &str,
        text: &Spanned<DurationText>,
    ) -> Option<Duration> {
        let raw = &text.get_ref().0;
        match humantime::parse_duration(raw.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.report(
                    text.span(),
                    field,
                    format!("invalid duration \"{raw}\" ({e}); {DURATION_EXAMPLE}"),
                );
                None
            }
        }
    }

    /// An optional duration with a default; `positive` rejects zero.
    pub fn duration_or(
        &mut self,
        field: &str,
        text: Option<&Spanned<DurationText>>,
        default: Duration,
        positive: bool,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        let d = self.parse_duration(field, text)?;
        if positive && d.is_zero() {
            self.report(text.span(), field, "must be more than 0");
            return None;
        }
        Some(d)
    }

    /// An optional duration without a default (`Some(None)` when absent).
    pub fn optional_duration(
        &mut self,
        field: &str,
        text: Option<&Spanned<DurationText>>,
    ) -> Option<Option<Duration>> {
        match text {
            None => Some(None),
            Some(text) => self.parse_duration(field, text).map(Some),
        }
    }

    pub fn fraction_or(
        &mut self,
        field: &str,
        v: Option<&Spanned<f64>>,
        default: f64,
    ) -> Option<f64> {
        let Some(v) = v else {
            return Some(default);
        };
        let x = *v.get_ref();
        if !(0.0..=1.0).contains(&x) {
            self.report(v.span(), field, format!("{x} is not in [0, 1]"));
            return None;
        }
        Some(x)
    }

    pub fn at_least_one(
        &mut self,
        field: &str,
        v: Option<&Spanned<u32>>,
        default: u32,
    ) -> Option<u32> {
        let Some(v) = v else {
            return Some(default);
        };
        if *v.get_ref() == 0 {
            self.report(v.span(), field, "must be at least 1");
            return None;
        }
        Some(*v.get_ref())
    }

    /// A jitter (default 0) must not exceed the duration it varies, `base` (named `of`).
    pub fn jitter(
        &mut self,
        field: &str,
        text: Option<&Spanned<DurationText>>,
        base: Option<Duration>,
        of: &str,
    ) -> Option<Duration> {
        let jitter = self.duration_or(field, text, Duration::ZERO, false)?;
        if let (Some(text), Some(base)) = (text, base)
            && jitter > base
        {
            self.report(
                text.span(),
                field,
                format!("{} is more than the {of} ({})", show(jitter), show(base)),
            );
            return None;
        }
        Some(jitter)
    }
}

/// The checks of one `[[faults]]` entry, for its kind's file: problems are reported on
/// `faults[i].<key>`, a missing key at the entry's header.
pub(crate) struct FaultCheck<'a> {
    checker: &'a mut Checker,
    index: usize,
    header: Range<usize>,
    posture: Option<Posture>,
    duration: Option<Duration>,
    shape: Shape,
}

/// What a fault's names are checked against besides the posture: the experiment's regions
/// and whether the built-in controller watches from the witness (which then has links).
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// The data regions, the primary's first.
    pub regions: Vec<String>,
    /// The witness is a vantage point.
    pub witness: bool,
}

impl Shape {
    /// Every node `posture` runs over these regions.
    pub fn nodes(&self, posture: Posture) -> Vec<NodeId> {
        nodes_in(self.with_nodes(posture))
    }

    /// Regions that have nodes in `posture`: all, or the primary's alone in single-region.
    pub fn with_nodes(&self, posture: Posture) -> &[String] {
        regions_with_nodes(&self.regions, posture.has_standby())
    }

    /// Every link over these regions (the witness's when it watches).
    pub fn links(&self) -> Vec<LinkSpec> {
        links(&self.regions, self.witness)
    }

    /// Why `link` carries nothing in `posture`, or None when it exists there.
    pub fn absent(&self, posture: Posture, link: &LinkSpec) -> Option<String> {
        why_absent(link, &self.nodes(posture), posture.has_standby())
    }

    /// The links that exist in `posture`, listed.
    fn link_names(&self, posture: Posture) -> String {
        self.links()
            .iter()
            .filter(|l| self.absent(posture, l).is_none())
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn node_names(&self, posture: Posture) -> String {
        self.nodes(posture)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether `r` is a region of these, or the watching witness.
    fn knows(&self, r: &str) -> bool {
        self.regions.iter().any(|x| x == r) || (self.witness && r == WITNESS_REGION)
    }
}

impl<'a> FaultCheck<'a> {
    /// Fault `index` (file order), whose table spans `header`. `posture` and `duration` are
    /// None when themselves invalid: the checks that need them are then skipped.
    pub fn new(
        checker: &'a mut Checker,
        index: usize,
        header: Range<usize>,
        posture: Option<Posture>,
        duration: Option<Duration>,
        shape: Shape,
    ) -> Self {
        FaultCheck {
            checker,
            index,
            header,
            posture,
            duration,
            shape,
        }
    }

    /// The experiment's regions and vantage points.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The experiment's posture (None when it is itself invalid).
    pub fn posture(&self) -> Option<Posture> {
        self.posture
    }

    /// The experiment's duration (None when it is itself invalid).
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// `faults[i].<key>`.
    pub fn field(&self, key: &str) -> String {
        format!("faults[{}].{key}", self.index)
    }

    /// Reports a problem with `key`'s value at `span`.
    pub fn report(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let field = self.field(key);
        self.checker.report(span, field, message);
    }

    /// `value`, or None with `required: {what}` reported at the entry's header.
    pub fn required<'v, T>(
        &mut self,
        value: Option<&'v T>,
        key: &str,
        what: &str,
    ) -> Option<&'v T> {
        if value.is_none() {
            let header = self.header.clone();
            self.report(header, key, format!("required: {what}"));
        }
        value
    }

    /// Reads the entry's own keys as its kind's spec (see [`Checker::read`]).
    pub fn read<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>) -> Option<T> {
        self.checker.read(value)
    }

    /// An optional duration with a default; `positive` rejects zero.
    pub fn duration_or(
        &mut self,
        key: &str,
        text: Option<&Spanned<DurationText>>,
        default: Duration,
        positive: bool,
    ) -> Option<Duration> {
        let field = self.field(key);
        self.checker.duration_or(&field, text, default, positive)
    }

    /// A required duration, more than 0 (`what`: the `required:` message).
    pub fn positive_duration(
        &mut self,
        key: &str,
        text: Option<&Spanned<DurationText>>,
        what: &str,
    ) -> Option<Duration> {
        let text = self.required(text, key, what)?;
        self.duration_or(key, Some(text), Duration::ZERO, true)
    }

    /// A jitter (default 0) of at most `base` (named `of`).
    pub fn jitter(
        &mut self,
        key: &str,
        text: Option<&Spanned<DurationText>>,
        base: Option<Duration>,
        of: &str,
    ) -> Option<Duration> {
        let field = self.field(key);
        self.checker.jitter(&field, text, base, of)
    }

    /// `links`, `between` or `isolate` (exactly one): links that exist in the posture.
    pub fn links(
        &mut self,
        links: Option<&Spanned<Vec<Spanned<String>>>>,
        between: Option<&Spanned<Vec<Spanned<String>>>>,
        isolate: Option<&Spanned<String>>,
    ) -> Option<LinkSelector> {
        let given: Vec<(&str, Range<usize>)> = [
            links.map(|l| ("links", l.span())),
            between.map(|b| ("between", b.span())),
            isolate.map(|i| ("isolate", i.span())),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let [_, second, ..] = given.as_slice() {
            let (key, span) = given
                .iter()
                .max_by_key(|(_, span)| span.start)
                .cloned()
                .unwrap_or(second.clone());
            self.report(
                span,
                key,
                "give one of links, between or isolate, not several",
            );
            return None;
        }
        match (links, between, isolate) {
            (Some(names), _, _) => self.named_links(names),
            (_, Some(between), _) => self.between(between),
            (_, _, Some(region)) => self.isolate(region),
            (None, None, None) => {
                let header = self.header.clone();
                self.report(
                    header,
                    "links",
                    "required: links = [link names], between = [\"us\", \"eu\"] or isolate = \"eu\"",
                );
                None
            }
        }
    }

    fn isolate(&mut self, region: &Spanned<String>) -> Option<LinkSelector> {
        let r = region.get_ref().trim();
        if !self.shape.knows(r) {
            self.report(
                region.span(),
                "isolate",
                format!(
                    "unknown region \"{r}\"; regions: {}",
                    self.shape.regions.join(", ")
                ),
            );
            return None;
        }
        let selector = LinkSelector::Isolate(r.to_string());
        if let Some(posture) = self.posture
            && !self
                .shape
                .links()
                .iter()
                .any(|l| selector.takes(l) && self.shape.absent(posture, l).is_none())
        {
            self.report(
                region.span(),
                "isolate",
                format!("no link of {r} exists in {posture}"),
            );
            return None;
        }
        Some(selector)
    }

    fn named_links(&mut self, names: &Spanned<Vec<Spanned<String>>>) -> Option<LinkSelector> {
        if names.get_ref().is_empty() {
            self.report(names.span(), "links", "empty: name at least one link");
            return None;
        }
        let posture = self.posture;
        let all = self.shape.links();
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for (j, name) in names.get_ref().iter().enumerate() {
            let key = format!("links[{j}]");
            let n = name.get_ref().trim();
            let Some(link) = all.iter().find(|l| l.name == n) else {
                let known = match posture {
                    Some(posture) => {
                        format!("links in {posture}: {}", self.shape.link_names(posture))
                    }
                    None => format!(
                        "links: {}",
                        all.iter()
                            .map(|l| l.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.report(name.span(), &key, format!("unknown link \"{n}\"; {known}"));
                ok = false;
                continue;
            };
            if let Some(posture) = posture
                && let Some(why) = self.shape.absent(posture, link)
            {
                let known = self.shape.link_names(posture);
                self.report(
                    name.span(),
                    &key,
                    format!(
                        "link \"{n}\" does not exist in {posture} ({why}); links in {posture}: {known}"
                    ),
                );
                ok = false;
                continue;
            }
            if out.iter().any(|o| o == n) {
                self.report(name.span(), &key, format!("link \"{n}\" is listed twice"));
                ok = false;
                continue;
            }
            out.push(n.to_string());
        }
        ok.then_some(LinkSelector::Named(out))
    }

    fn between(&mut self, between: &Spanned<Vec<Spanned<String>>>) -> Option<LinkSelector> {
        let [a, b] = between.get_ref().as_slice() else {
            self.report(
                between.span(),
                "between",
                "needs exactly two regions, e.g. [\"us\", \"eu\"]",
            );
            return None;
        };
        let mut ok = true;
        for (j, r) in [a, b].into_iter().enumerate() {
            if !self.shape.knows(r.get_ref().trim()) {
                let known = self.shape.regions.join(", ");
                self.report(
                    r.span(),
                    &format!("between[{j}]"),
                    format!("unknown region \"{}\"; regions: {known}", r.get_ref()),
                );
                ok = false;
            }
        }
        let (a, b) = (a.get_ref().trim(), b.get_ref().trim());
        if ok && a == b {
            self.report(between.span(), "between", "needs two different regions");
            return None;
        }
        if ok
            && let Some(posture) = self.posture
            && !self
                .shape
                .links()
                .iter()
                .any(|l| joins(l, a, b) && self.shape.absent(posture, l).is_none())
        {
            self.report(
                between.span(),
                "between",
                format!("no link between {a} and {b} exists in {posture}"),
            );
            return None;
        }
        ok.then(|| LinkSelector::Between(a.to_string(), b.to_string()))
    }

    /// `node`: a node id that exists in the posture.
    pub fn node(&mut self, n: Option<&Spanned<String>>) -> Option<NodeId> {
        let n = self.required(n, "node", "a node id such as \"us-db\"")?;
        let posture = self.posture;
        let shape = self.shape.clone();
        let listing = |posture: Option<Posture>| match posture {
            Some(posture) => format!("nodes in {posture}: {}", shape.node_names(posture)),
            None => format!("nodes: {}", shape.node_names(Posture::ActivePassiveAsync)),
        };
        let Some(node) = NodeId::parse(n.get_ref().trim()) else {
            self.report(
                n.span(),
                "node",
                format!("unknown node \"{}\"; {}", n.get_ref(), listing(posture)),
            );
            return None;
        };
        if let Some(posture) = posture
            && !self.shape.nodes(posture).contains(&node)
        {
            self.report(
                n.span(),
                "node",
                format!(
                    "node \"{node}\" does not exist in {posture}; {}",
                    listing(Some(posture))
                ),
            );
            return None;
        }
        Some(node)
    }

    /// `region`: a region with nodes in the posture.
    pub fn region(&mut self, r: Option<&Spanned<String>>) -> Option<String> {
        let r = self.required(r, "region", "a region such as \"us\"")?;
        let region = r.get_ref().trim();
        if !self.shape.regions.iter().any(|x| x == region) {
            let known = self.shape.regions.join(", ");
            self.report(
                r.span(),
                "region",
                format!("unknown region \"{region}\"; regions: {known}"),
            );
            return None;
        }
        if let Some(posture) = self.posture
            && !self.shape.with_nodes(posture).iter().any(|r| r == region)
        {
            let with_nodes = self.shape.with_nodes(posture).join(", ");
            self.report(
                r.span(),
                "region",
                format!(
                    "region \"{region}\" has no nodes in {posture}; regions with nodes: {with_nodes}"
                ),
            );
            return None;
        }
        Some(region.to_string())
    }
}

/// Whether `link` runs between regions `a` and `b` (either way).
pub(crate) fn joins(link: &LinkSpec, a: &str, b: &str) -> bool {
    joins_regions(&link.from, &link.to, a, b)
}

/// Whether regions `x` and `y` are `a` and `b` (either way).
pub(crate) fn joins_regions(x: &str, y: &str, a: &str, b: &str) -> bool {
    (x == a && y == b) || (x == b && y == a)
}

/// A duration as people write it: "5s", "1.5s", "80ms".
pub(crate) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
