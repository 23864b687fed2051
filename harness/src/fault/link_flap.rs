//! Link flap: links go down for `down`, then up for `up`, again and again from `at` until the
//! fault heals — the transient blips of a flaky route or a restarting middlebox. Each down is a
//! partition of the links (a black hole by default, or refuse); heal leaves them up.
//!
//! The flapping is a task that the fault's start leaves running ([`Running`]): the schedule
//! stops it before the heal, and dropping it stops it too, so it never outlives the fault or
//! the run. Every up brings the links fully up: a partition of the same links at the same
//! time is undone by it.

use crate::stack::plan::StackPlan;
use super::partition::PartitionMode;
use super::{Fault, Need, Running, cuts_monitor, describe_links, link_needs, select};
use crate::fields::LinkSelector;
use crate::fields::{FaultCheck, show};
use crate::fields::DurationText;
use crate::proxy::{self, Link};
use crate::stack::{Stack, StackError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use toml::Spanned;

/// `kind = "link_flap"`: its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `links`: link names; each must exist in the posture. Either this or `between`.
    links: Option<Spanned<Vec<Spanned<String>>>>,
    /// `between`: two distinct regions: every link between them, both ways.
    between: Option<Spanned<Vec<Spanned<String>>>>,
    /// `isolate`: a region: every link between it and any other (the witness included),
    /// both ways. Either this, `links` or `between`.
    isolate: Option<Spanned<String>>,
    /// `down` (required): how long the links stay down each time; more than 0.
    down: Option<Spanned<DurationText>>,
    /// `up` (required): how long they stay up between two downs; more than 0.
    up: Option<Spanned<DurationText>>,
    /// `mode`: how a down shows itself: `black_hole` (bytes vanish, connections stall;
    /// default) or `refuse` (connections are closed and refused).
    mode: Option<Spanned<String>>,
}

/// Takes links down for `down`, then up for `up`, repeatedly until healed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkFlap {
    /// The links.
    pub links: LinkSelector,
    /// How long each down lasts.
    #[serde(with = "humantime_serde")]
    pub down: Duration,
    /// How long each up lasts.
    #[serde(with = "humantime_serde")]
    pub up: Duration,
    /// Black hole or refuse, while down.
    pub mode: PartitionMode,
}

impl Fault for LinkFlap {
    type Spec = Spec;

    fn validate(spec: Spec, cx: &mut FaultCheck<'_>) -> Option<LinkFlap> {
        let links = cx.links(spec.links.as_ref(), spec.between.as_ref(), spec.isolate.as_ref());
        let down = cx.positive_duration(
            "down",
            spec.down.as_ref(),
            "how long the links stay down each time, e.g. \"2s\"",
        );
        let up = cx.positive_duration(
            "up",
            spec.up.as_ref(),
            "how long the links stay up between two downs, e.g. \"1s\"",
        );
        let mode = PartitionMode::check(spec.mode.as_ref(), cx);
        Some(LinkFlap {
            links: links?,
            down: down?,
            up: up?,
            mode: mode?,
        })
    }

    async fn start(&self, stack: &Stack) -> Result<Running, StackError> {
        let links = select(stack, &self.links)
            .into_iter()
            .map(|l| l.link.clone())
            .collect();
        flap(links, self.mode.both_ways(), self.down, self.up).await
    }

    async fn heal(&self, stack: &Stack) -> Result<Option<String>, StackError> {
        let links: Vec<Link> = select(stack, &self.links)
            .into_iter()
            .map(|l| l.link.clone())
            .collect();
        links_up(&links).await?;
        Ok(None)
    }

    fn describe(&self) -> String {
        format!(
            "link flap {} (down {} / up {}, {})",
            describe_links(&self.links),
            show(self.down),
            show(self.up),
            self.mode.name()
        )
    }

    fn hits_primary(&self, stack: &Stack) -> bool {
        cuts_monitor(stack, &self.links)
    }

    fn needs(&self, plan: &StackPlan) -> Vec<Need> {
        link_needs(plan, &self.links)
    }
}

/// Starts flapping `links`: cut (`how`) now, for `down`; then up for `up`; and again, on a
/// fixed beat (the windows do not drift with the time the fault proxy takes to answer), until
/// the returned task is stopped ([`Running::stop`], or dropped). Stopping leaves the links as
/// they are at that moment: [`links_up`] brings them up.
pub async fn flap(
    links: Vec<Link>,
    how: proxy::Partition,
    down: Duration,
    up: Duration,
) -> Result<Running, StackError> {
    let start = Instant::now();
    cut(&links, how).await?;
    Ok(Running::spawn(move |stop| async move {
        let mut cycle = start;
        loop {
            if !sleep_until(cycle + down, &stop).await {
                return Ok(());
            }
            links_up(&links).await?;
            tracing::debug!(links = links.len(), "link flap: up");
            cycle += down + up;
            if !sleep_until(cycle, &stop).await {
                return Ok(());
            }
            cut(&links, how).await?;
            tracing::debug!(links = links.len(), "link flap: down");
        }
    }))
}

/// Brings `links` up: their partition undone, each proxy enabled.
pub async fn links_up(links: &[Link]) -> Result<(), StackError> {
    for l in links {
        l.heal_partition().await?;
    }
    Ok(())
}

async fn cut(links: &[Link], how: proxy::Partition) -> Result<(), StackError> {
    for l in links {
        l.partition(how).await?;
    }
    Ok(())
}

/// Sleeps until `at`; false when told to stop first.
async fn sleep_until(at: Instant, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep_until(at) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{FaultSpec, matrix, parse};
    use std::path::Path;

    const AP: &str = "posture = \"active-passive-async\"\nduration = \"20s\"\n";

    fn err(text: &str) -> String {
        match parse(text, Path::new("x.toml")) {
            Ok(e) => panic!("accepted: {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn entry(keys: &str) -> String {
        format!("{AP}[[faults]]\nkind = \"link_flap\"\nat = \"1s\"\n{keys}")
    }

    #[test]
    fn loads_into_its_json_shape_and_describes_itself() {
        let e = parse(
            &entry("links = [\"eu-monitor-to-us-db\"]\ndown = \"2s\"\nup = \"1s\"\nduration = \"9s\"\n"),
            Path::new("x.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let f = &e.faults[0];
        assert_eq!(
            (f.at, f.heal_at),
            (Duration::from_secs(1), Some(Duration::from_secs(10)))
        );
        let FaultSpec::LinkFlap(flap) = &f.fault else {
            panic!("{:?}", f.fault);
        };
        assert_eq!(
            *flap,
            LinkFlap {
                links: LinkSelector::Named(vec!["eu-monitor-to-us-db".into()]),
                down: Duration::from_secs(2),
                up: Duration::from_secs(1),
                mode: PartitionMode::BlackHole,
            }
        );
        assert_eq!(
            flap.describe(),
            "link flap eu-monitor-to-us-db (down 2s / up 1s, black hole)"
        );
        let json = serde_json::to_string(&f.fault).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"link_flap","links":{"named":["eu-monitor-to-us-db"]},"down":"2s","up":"1s","mode":"black_hole"}"#
        );
        assert_eq!(serde_json::from_str::<FaultSpec>(&json).unwrap(), f.fault);
        // `between` and `refuse`, as a partition takes them.
        let e = parse(
            &entry(
                "between = [\"us\", \"eu\"]\ndown = \"500ms\"\nup = \"1.5s\"\nmode = \"refuse\"\n",
            ),
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(
            crate::fault::describe(&e.faults[0].fault),
            "link flap us↔eu (down 500ms / up 1s 500ms, refuse)"
        );
    }

    #[test]
    fn problems_name_the_file_line_column_and_field() {
        let links = "links = [\"replication\"]\n";
        assert_eq!(
            err(&entry(&format!("{links}up = \"1s\"\n"))),
            "x.toml:3:1: faults[0].down: required: how long the links stay down each time, \
             e.g. \"2s\""
        );
        assert_eq!(
            err(&entry(&format!("{links}down = \"2s\"\n"))),
            "x.toml:3:1: faults[0].up: required: how long the links stay up between two \
             downs, e.g. \"1s\""
        );
        assert_eq!(
            err(&entry(&format!("{links}down = \"0s\"\nup = \"1s\"\n"))),
            "x.toml:7:8: faults[0].down: must be more than 0"
        );
        assert_eq!(
            err(&entry(&format!("{links}down = \"2s\"\nup = \"1x\"\n"))),
            format!(
                "x.toml:8:6: faults[0].up: invalid duration \"1x\" ({}); write e.g. \"80ms\", \
                 \"1.5s\" or \"2m\"",
                humantime_error("1x")
            )
        );
        assert_eq!(
            err(&entry(&format!("{links}down = 2\nup = \"1s\"\n"))),
            "x.toml:7:8: faults[0].down: invalid type: integer `2`, expected a duration in \
             quotes, such as \"80ms\", \"1.5s\" or \"2m\""
        );
        assert_eq!(
            err(&entry(&format!(
                "{links}down = \"2s\"\nup = \"1s\"\nmode = \"drop\"\n"
            ))),
            "x.toml:9:8: faults[0].mode: unknown partition mode \"drop\"; one of black_hole, \
             refuse"
        );
        assert_eq!(
            err(&entry(&format!(
                "{links}down = \"2s\"\nup = \"1s\"\ndirection = \"us->eu\"\n"
            ))),
            "x.toml:9:13: faults[0].direction: not a key of a link_flap fault (its keys: kind, \
             at, heal_at, duration, links, between, isolate, down, up, mode)"
        );
        assert_eq!(
            err(&entry("down = \"2s\"\nup = \"1s\"\n")),
            "x.toml:3:1: faults[0].links: required: links = [link names], between = \
             [\"us\", \"eu\"] or isolate = \"eu\""
        );
        assert_eq!(
            err(
                "posture = \"single-region\"\nduration = \"20s\"\n[[faults]]\nkind = \
                 \"link_flap\"\nat = \"1s\"\nlinks = [\"eu-monitor-to-us-db\"]\ndown = \"1s\"\n\
                 up = \"1s\"\n"
            ),
            "x.toml:6:10: faults[0].links[0]: link \"eu-monitor-to-us-db\" does not exist in \
             single-region (there is no failover controller); links in single-region: \
             eu-users-to-us-app"
        );
        // In a matrix, at its place in the matrix file, named after the cell.
        let m = matrix::parse(
            "postures = [\"active-passive-async\"]\n[base]\nduration = \"10s\"\n\n[[scenarios]]\n\
             name = \"blips\"\n[[scenarios.faults]]\nkind = \"link_flap\"\nbetween = [\"us\", \
             \"eu\"]\ndown = \"1s\"\nup = \"-1s\"\nat = \"2s\"\n",
            Path::new("m.toml"),
        )
        .unwrap_err();
        assert_eq!(
            m.to_string(),
            format!(
                "m.toml:11:6: scenarios[0] (blips): faults[0].up: invalid duration \"-1s\" ({}); \
                 write e.g. \"80ms\", \"1.5s\" or \"2m\"",
                humantime_error("-1s")
            )
        );
    }

    /// humantime's own words for why `text` is not a duration.
    fn humantime_error(text: &str) -> String {
        humantime::parse_duration(text).unwrap_err().to_string()
    }
}
