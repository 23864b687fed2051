//! Clock skew: shifts an app's wall clock by an offset, without its cooperation, while it
//! runs: the app is started under libfaketime (`LD_PRELOAD`) reading its offset from a file
//! on every clock read, and the fault rewrites that file (inside the container on Docker).
//! Monotonic time is not faked (`FAKETIME_DONT_FAKE_MONOTONIC=1`), so timers and timeouts
//! keep working. Heal sets the offset back to zero.

use crate::stack::plan::StackPlan;
use super::{Fault, Running, Need};
use crate::fields::{FaultCheck, show};
use crate::posture::Posture;
use crate::stack::topology::{NodeId, Role};
use crate::stack::{Stack, StackError};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use toml::Spanned;

/// The largest clock skew, either way.
const MAX_SKEW: Duration = Duration::from_secs(3600);

/// `kind = "clock_skew"`: its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `node` (required): the app whose clock is shifted (`us-app`, `eu-app`): only the
    /// apps' clocks are shifted. It must exist in the posture.
    node: Option<Spanned<String>>,
    /// `offset` (required): how far the app's wall clock is shifted, signed: `"-500ms"` puts
    /// it behind, `"+1.5s"` (or `"1.5s"`) ahead. Whole milliseconds, not 0, at most 1 hour
    /// either way. Monotonic time is left alone.
    offset: Option<Spanned<SignedDurationText>>,
}

/// A signed duration exactly as written, e.g. `"-500ms"` (behind), `"+1.5s"` or `"250ms"`
/// (ahead): an optional `+` or `-`, then humantime syntax. Only strings are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDurationText(pub String);

impl<'de> Deserialize<'de> for SignedDurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = SignedDurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a signed duration in quotes, such as "-500ms", "+1.5s" or "250ms""#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SignedDurationText, E> {
                Ok(SignedDurationText(v.to_string()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// Shifts an app's wall clock (libfaketime), changeable while it runs; monotonic time is left
/// alone so its timers keep working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockSkew {
    /// The node (an app).
    pub node: NodeId,
    /// Shift in milliseconds (negative: behind).
    pub offset_ms: i64,
}

impl Fault for ClockSkew {
    type Spec = Spec;

    fn validate(spec: Spec, cx: &mut FaultCheck<'_>) -> Option<ClockSkew> {
        let node = app_node(spec.node.as_ref(), cx);
        let offset_ms = offset(spec.offset.as_ref(), cx);
        Some(ClockSkew {
            node: node?,
            offset_ms: offset_ms?,
        })
    }

    async fn start(&self, stack: &Stack) -> Result<Running, StackError> {
        stack.set_clock_offset(&self.node, self.offset_ms).await?;
        Ok(Running::nothing())
    }

    async fn heal(&self, stack: &Stack) -> Result<Option<String>, StackError> {
        stack.set_clock_offset(&self.node, 0).await?;
        Ok(None)
    }

    fn describe(&self) -> String {
        format!(
            "clock skew {} on {}",
            crate::stack::clock::faketime_offset(self.offset_ms),
            self.node
        )
    }

    fn skewed_node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }

    fn needs(&self, _plan: &StackPlan) -> Vec<Need> {
        vec![Need::Clock(self.node.clone())]
    }
}

/// `node`: an app that exists in the posture.
fn app_node(n: Option<&Spanned<String>>, cx: &mut FaultCheck<'_>) -> Option<NodeId> {
    let n = cx.required(
        n,
        "node",
        "the app whose clock is shifted, such as \"us-app\"",
    )?;
    let posture = cx.posture();
    let shape = cx.shape().clone();
    let apps = |posture: Option<Posture>| {
        shape
            .nodes(posture.unwrap_or(Posture::ActivePassiveAsync))
            .into_iter()
            .filter(|n| n.role == Role::App)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let listing = |posture: Option<Posture>| match posture {
        Some(posture) => format!("apps in {posture}: {}", apps(Some(posture))),
        None => format!("apps: {}", apps(None)),
    };
    let Some(node) = NodeId::parse(n.get_ref().trim()) else {
        cx.report(
            n.span(),
            "node",
            format!(
                "unknown node \"{}\"; clock skew applies to apps ({})",
                n.get_ref(),
                listing(posture)
            ),
        );
        return None;
    };
    if node.role != Role::App {
        cx.report(
            n.span(),
            "node",
            format!(
                "\"{node}\" is not an app; clock skew applies to apps ({})",
                listing(posture)
            ),
        );
        return None;
    }
    if let Some(posture) = posture
        && !shape.nodes(posture).contains(&node)
    {
        cx.report(
            n.span(),
            "node",
            format!(
                "node \"{node}\" does not exist in {posture}; clock skew applies to apps ({})",
                listing(Some(posture))
            ),
        );
        return None;
    }
    Some(node)
}

/// `offset`: a signed duration, whole milliseconds, non-zero, within ±[`MAX_SKEW`].
fn offset(o: Option<&Spanned<SignedDurationText>>, cx: &mut FaultCheck<'_>) -> Option<i64> {
    let o = cx.required(
        o,
        "offset",
        "how far the app's clock is shifted, e.g. \"-500ms\" (behind) or \"+1.5s\" (ahead)",
    )?;
    let raw = o.get_ref().0.as_str();
    let text = raw.trim();
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let example = r#"write e.g. "-500ms", "+1.5s" or "250ms""#;
    let d = match humantime::parse_duration(magnitude.trim()) {
        Ok(d) => d,
        Err(e) => {
            cx.report(
                o.span(),
                "offset",
                format!("invalid offset \"{raw}\" ({e}); {example}"),
            );
            return None;
        }
    };
    if d.is_zero() {
        cx.report(
            o.span(),
            "offset",
            "must not be 0 (that is no skew); e.g. \"-500ms\" (behind) or \"+1.5s\" (ahead)",
        );
        return None;
    }
    if d > MAX_SKEW {
        cx.report(
            o.span(),
            "offset",
            format!(
                "{}{} is more than {} away; a clock skew is at most {} either way",
                if negative { "-" } else { "+" },
                show(d),
                show(MAX_SKEW),
                show(MAX_SKEW)
            ),
        );
        return None;
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        cx.report(
            o.span(),
            "offset",
            format!("\"{raw}\" is not a whole number of milliseconds"),
        );
        return None;
    }
    let ms = d.as_millis() as i64;
    Some(if negative { -ms } else { ms })
}
