//! Faults (the nemesis), as plug-ins: one file per kind, registered in `registry!` below.
//! The experiment says what ([`FaultSpec`]) and when; the schedule (`crate::schedule`) calls
//! [`start`], [`heal`], [`describe`] and [`hits_primary`].
//!
//! A kind's file owns everything about it: its keys in experiment files (its `Spec`, a serde
//! struct with `toml::Spanned` fields), their checks (through `experiment::check::FaultCheck`,
//! which places every problem at its file, line, column and `faults[i].<key>`), the validated
//! type (serialized in `experiment.json` as `{"kind": "<name>", …its fields}`), what it does
//! to a running stack, and what it needs of the stack ([`FaultSpec::skewed_node`]). The keys
//! every fault has (`kind`, `at`, `heal_at`, `duration`) are the experiment's.
//!
//! # Adding a kind
//! A new file here with a type implementing `Fault`, and one line in `registry!`'s
//! invocation: `"<kind name>" => <file>::<Type>,`. The line declares the module, re-exports
//! the type, adds the `FaultSpec` variant and the kind to validation.

use crate::fields::FaultCheck;
use crate::fields::LinkSelector;
use crate::stack::plan::StackPlan;
use crate::stack::topology::{LinkPurpose, NodeId, link_name};
use crate::stack::{Stack, StackError, StackLink};
use serde::de::DeserializeOwned;
use std::sync::LazyLock;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use toml::Spanned;
use toml::de::DeValue;

/// The keys every `[[faults]]` entry has, whatever its kind; the kind's own keys are read by
/// its file (`crate::fault`, [`crate::fault::KINDS`]).
pub const COMMON_FAULT_KEYS: [&str; 4] = ["kind", "at", "heal_at", "duration"];

/// One kind of fault, implemented by the type its file defines.
pub(crate) trait Fault: Sized {
    /// Its keys in a `[[faults]]` table besides `kind`, `at`, `heal_at` and `duration`: a
    /// struct with named `Option<toml::Spanned<…>>` fields and
    /// `#[serde(deny_unknown_fields)]`. Its field names, in order, are the kind's keys (a key
    /// of another kind is reported as "not a key of a … fault (its keys: …)").
    type Spec: DeserializeOwned;

    /// Checks the keys (against the posture and the experiment's duration, through `cx`);
    /// None once a problem has been reported.
    fn validate(spec: Self::Spec, cx: &mut FaultCheck<'_>) -> Option<Self>;

    /// Starts the fault. What it leaves running (nothing for most kinds) is stopped before
    /// [`Fault::heal`], or when the schedule holding it is dropped.
    fn start(&self, stack: &Stack) -> impl Future<Output = Result<Running, StackError>> + Send;

    /// Undoes the fault. Returns a note when part of it is left undone on purpose (e.g. a
    /// deposed primary is not restarted).
    fn heal(
        &self,
        stack: &Stack,
    ) -> impl Future<Output = Result<Option<String>, StackError>> + Send;

    /// One line, e.g. "partition replication (black hole, both ways)".
    fn describe(&self) -> String;

    /// Whether the fault takes the current primary down or cuts the failover controller off
    /// from it (the controller watches from the standby region through the monitor link).
    fn hits_primary(&self, _stack: &Stack) -> bool {
        false
    }

    /// The node that must run under libfaketime for this fault (clock skew), if any.
    fn skewed_node(&self) -> Option<&NodeId> {
        None
    }

    /// What the fault needs of a stack built from `plan`: its links, node operations and
    /// clocks. A stack someone else runs (a target) must offer each, or the fault is refused
    /// before anything runs.
    fn needs(&self, plan: &StackPlan) -> Vec<Need>;
}

/// Something a fault needs of the stack it acts on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Toxics on this link (a proxy carrying it).
    Link(String),
    /// An operation on a node: `kill`, `restart`, `pause` or `resume`.
    NodeOp(NodeId, &'static str),
    /// Shifting the node's wall clock.
    Clock(NodeId),
}

/// The links a selector names in a stack built from `plan` (faults on links need each).
fn link_needs(plan: &StackPlan, selector: &LinkSelector) -> Vec<Need> {
    let names: Vec<String> = match selector {
        LinkSelector::Named(names) => names.clone(),
        _ => plan
            .links
            .iter()
            .filter(|l| selector.takes(l))
            .map(|l| l.name.clone())
            .collect(),
    };
    names.into_iter().map(Need::Link).collect()
}

/// The fault kinds: `"<kind name>" => <file>::<Type>,`, one line each, in the order error
/// messages and documentation list them.
macro_rules! registry {
    ($($name:literal => $module:ident :: $Type:ident,)*) => {
        $(pub mod $module;)*
        $(pub use $module::$Type;)*

        /// What a fault does: one variant per kind, holding its file's type. Serialized as
        /// `{"kind": "<kind name>", …the type's fields}`.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind")]
        pub enum FaultSpec {
            $(
                #[doc = concat!("`kind = \"", $name, "\"`: [`", stringify!($Type), "`].")]
                #[serde(rename = $name)]
                $Type($Type),
            )*
        }

        /// Every kind's name, as `kind = "…"` takes it.
        pub const KINDS: &[&str] = &[$($name),*];

        /// The keys kind `kind` takes besides the common ones, in order; None for an unknown
        /// kind.
        fn own_keys(kind: &str) -> Option<&'static [&'static str]> {
            match kind {
                $($name => Some(struct_keys::<<$Type as Fault>::Spec>()),)*
                _ => None,
            }
        }

        /// Reads the value of `key` (a key of some kind) as the first kind that takes it
        /// reads it: its type is checked, in file order with every other value of the file.
        fn read_key<'de, D: serde::Deserializer<'de>>(key: &str, value: D) -> Result<(), D::Error> {
            $(
                if own_keys($name).is_some_and(|keys| keys.contains(&key)) {
                    return <<$Type as Fault>::Spec as serde::Deserialize>::deserialize(
                        OneKey { key, value },
                    )
                    .map(drop);
                }
            )*
            <serde::de::IgnoredAny as serde::Deserialize>::deserialize(value).map(drop)
        }

        /// Checks fault `kind`'s own keys in its `[[faults]]` table; None once a problem has
        /// been reported (an unknown kind is the caller's to report).
        pub(crate) fn validate(
            kind: &str,
            table: Spanned<DeValue<'_>>,
            cx: &mut FaultCheck<'_>,
        ) -> Option<FaultSpec> {
            match kind {
                $($name => check::<$Type>(kind, table, cx).map(FaultSpec::$Type),)*
                _ => None,
            }
        }

        impl FaultSpec {
            /// The kind's name.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(FaultSpec::$Type(_) => $name,)*
                }
            }

            /// The node that must run under libfaketime for this fault (a clock skew's
            /// app), if any.
            pub fn skewed_node(&self) -> Option<&NodeId> {
                match self {
                    $(FaultSpec::$Type(f) => f.skewed_node(),)*
                }
            }
        }

        /// What a fault needs of a stack built from `plan` (see [`Need`]).
        pub fn needs(spec: &FaultSpec, plan: &StackPlan) -> Vec<Need> {
            match spec {
                $(FaultSpec::$Type(f) => f.needs(plan),)*
            }
        }

        /// Starts a fault; what it leaves running goes to [`heal`].
        pub async fn start(spec: &FaultSpec, stack: &Stack) -> Result<Running, StackError> {
            match spec {
                $(FaultSpec::$Type(f) => f.start(stack).await,)*
            }
        }

        /// Undoes a fault: stops what its start left running, then heals it. Returns a note
        /// when part of it could not be undone on purpose (e.g. a deposed primary is not
        /// restarted).
        pub async fn heal(
            spec: &FaultSpec,
            stack: &Stack,
            running: Running,
        ) -> Result<Option<String>, StackError> {
            let stopped = running.stop().await;
            let note = match spec {
                $(FaultSpec::$Type(f) => f.heal(stack).await?,)*
            };
            stopped.map(|()| note)
        }

        /// A one-line description, e.g. "partition replication (black hole, both ways)".
        pub fn describe(spec: &FaultSpec) -> String {
            match spec {
                $(FaultSpec::$Type(f) => f.describe(),)*
            }
        }

        /// Whether the fault takes the current primary down or cuts the failover controller
        /// off from it (the controller watches from the standby region through the monitor
        /// link).
        pub fn hits_primary(spec: &FaultSpec, stack: &Stack) -> bool {
            match spec {
                $(FaultSpec::$Type(f) => f.hits_primary(stack),)*
            }
        }
    };
}

registry! {
    "latency" => latency::Latency,
    "partition" => partition::Partition,
    "kill_node" => kill_node::KillNode,
    "kill_region" => kill_region::KillRegion,
    "pause_node" => pause_node::PauseNode,
    "clock_skew" => clock_skew::ClockSkew,
    "link_flap" => link_flap::LinkFlap,
}

/// Every key a `[[faults]]` entry may have: the common ones, then every kind's own, in
/// registry order (as serde lists the keys of a struct: an unknown key names them all).
pub(crate) fn keys() -> &'static [&'static str] {
    static KEYS: LazyLock<&'static [&'static str]> = LazyLock::new(|| {
        let mut keys: Vec<&'static str> = COMMON_FAULT_KEYS.to_vec();
        for key in KINDS.iter().filter_map(|k| own_keys(k)).flatten() {
            if !keys.contains(key) {
                keys.push(key);
            }
        }
        keys.leak()
    });
    &KEYS
}

/// The value of a fault's key of some kind, type-checked as that kind reads it (see
/// [`crate::experiment::spec::FaultEntry`]).
pub(crate) struct KeyType(pub &'static str);

impl<'de> serde::de::DeserializeSeed<'de> for KeyType {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, value: D) -> Result<(), D::Error> {
        read_key(self.0, value)
    }
}

/// A one-key table, `{key = value}`, to read one value as a field of a kind's spec.
struct OneKey<'k, D> {
    key: &'k str,
    value: D,
}

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for OneKey<'_, D> {
    type Error = D::Error;
    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_map(OneEntry {
            key: Some(self.key),
            value: Some(self.value),
        })
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct OneEntry<'k, D> {
    key: Option<&'k str>,
    value: Option<D>,
}

impl<'de, D: serde::Deserializer<'de>> serde::de::MapAccess<'de> for OneEntry<'_, D> {
    type Error = D::Error;
    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, D::Error> {
        use serde::de::IntoDeserializer;
        match self.key.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }
    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, D::Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(serde::de::Error::custom("a value without its key")),
        }
    }
}

/// Kind `F`'s keys read from its table: a key of another kind reported (at its value), the
/// others read as its spec and checked.
fn check<F: Fault>(kind: &str, table: Spanned<DeValue<'_>>, cx: &mut FaultCheck<'_>) -> Option<F> {
    let own = struct_keys::<F::Spec>();
    let span = table.span();
    let DeValue::Table(mut entries) = table.into_inner() else {
        // Not a table: refused with the whole file already.
        return None;
    };
    let keys = COMMON_FAULT_KEYS
        .iter()
        .chain(own)
        .copied()
        .collect::<Vec<_>>();
    let others: Vec<(String, std::ops::Range<usize>)> = entries
        .iter()
        .map(|(key, value)| (key.get_ref().to_string(), value.span()))
        .filter(|(key, _)| !keys.contains(&key.as_str()))
        .collect();
    for (key, span) in others {
        cx.report(
            span,
            &key,
            format!(
                "not a key of a {kind} fault (its keys: {})",
                keys.join(", ")
            ),
        );
        entries.remove(key.as_str());
    }
    for key in COMMON_FAULT_KEYS {
        entries.remove(key);
    }
    let spec = cx.read::<F::Spec>(Spanned::new(span, DeValue::Table(entries)))?;
    F::validate(spec, cx)
}

/// The keys a serde struct takes: the field names serde derive hands to `deserialize_struct`.
fn struct_keys<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Deserializer, Visitor};

    /// Not an error: the fields found (empty when `T` is not a struct with named fields).
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl std::fmt::Display for Fields {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fields {:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }
    struct Probe;
    impl<'de> Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

/// What a started fault keeps running until it heals: nothing for most kinds, a background
/// task for those that act over time (`link_flap`). Dropping it stops the task, so nothing
/// outlives the schedule that holds it.
#[derive(Debug, Default)]
pub struct Running(Option<Task>);

#[derive(Debug)]
struct Task {
    cancel: CancellationToken,
    handle: JoinHandle<Result<(), StackError>>,
}

impl Drop for Task {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.handle.abort();
    }
}

impl Running {
    /// Nothing left running.
    pub fn nothing() -> Running {
        Running(None)
    }

    /// Runs `task` on the runtime until it ends or is told to stop (its token is cancelled):
    /// it should then return promptly, at a point where it has left nothing half done.
    pub fn spawn<F>(task: impl FnOnce(CancellationToken) -> F) -> Running
    where
        F: Future<Output = Result<(), StackError>> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(task(cancel.clone()));
        Running(Some(Task { cancel, handle }))
    }

    /// Tells the task to stop and waits until it has; its error, if it failed.
    pub async fn stop(mut self) -> Result<(), StackError> {
        let Some(mut task) = self.0.take() else {
            return Ok(());
        };
        task.cancel.cancel();
        match (&mut task.handle).await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(StackError::Task(format!("a fault's: {e}"))),
        }
    }
}

/// Link names or `a↔b`, for descriptions.
fn describe_links(selector: &LinkSelector) -> String {
    match selector {
        LinkSelector::Named(n) => n.join(", "),
        LinkSelector::Between(a, b) => format!("{a}↔{b}"),
        LinkSelector::Isolate(r) => format!("{r}↔everyone"),
    }
}

/// The stack's links a selector names (those that exist in this stack).
fn select<'a>(stack: &'a Stack, selector: &LinkSelector) -> Vec<&'a StackLink> {
    match selector {
        LinkSelector::Named(names) => names.iter().filter_map(|n| stack.link(n)).collect(),
        _ => stack.links().filter(|l| selector.takes(&l.spec)).collect(),
    }
}

/// Whether the selected links include one of the failover controller's links to the current
/// primary (from any of its vantage points).
fn cuts_monitor(stack: &Stack, selector: &LinkSelector) -> bool {
    let primary = stack.routing.snapshot().primary;
    let monitors: Vec<String> = stack
        .plan()
        .vantage_points()
        .iter()
        .map(|v| link_name(v, LinkPurpose::MonitorToDb, &primary))
        .collect();
    select(stack, selector)
        .iter()
        .any(|l| monitors.contains(&l.spec.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_its_serde_tag_and_has_its_keys() {
        for kind in KINDS {
            // The variant exists under that name: only its fields are missing.
            let e = serde_json::from_str::<FaultSpec>(&format!(r#"{{"kind":"{kind}"}}"#))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("missing field"), "{kind}: {e}");
            assert!(own_keys(kind).is_some_and(|k| !k.is_empty()), "{kind}");
        }
        assert_eq!(own_keys("disk_full"), None);
        let all = keys();
        assert_eq!(all[..4], COMMON_FAULT_KEYS);
        assert!(
            ["links", "region", "node", "offset", "rtt"]
                .iter()
                .all(|k| all.contains(k))
        );
    }

    #[tokio::test]
    async fn a_running_task_ends_when_stopped_or_dropped() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::time::Duration;
        let ticking = |ticks: Arc<AtomicU32>| {
            Running::spawn(move |stop| async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_millis(1)) => {
                            ticks.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        };
        let settle = || tokio::time::sleep(Duration::from_millis(30));
        for drop_it in [false, true] {
            let ticks = Arc::new(AtomicU32::new(0));
            let running = ticking(ticks.clone());
            settle().await;
            if drop_it {
                drop(running);
                settle().await;
            } else {
                running.stop().await.unwrap();
            }
            let stopped_at = ticks.load(Ordering::SeqCst);
            assert!(stopped_at > 0);
            settle().await;
            assert_eq!(
                ticks.load(Ordering::SeqCst),
                stopped_at,
                "dropped: {drop_it}"
            );
        }
        // What the task failed with is what stopping it returns.
        let failed = Running::spawn(|_| async { Err(StackError::Task("boom".into())) });
        settle().await;
        assert_eq!(
            failed.stop().await.unwrap_err().to_string(),
            "a background task failed: boom"
        );
        Running::nothing().stop().await.unwrap();
    }
}
