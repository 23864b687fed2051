//! Partition: cuts links. A black hole drops bytes (connections stall; both ways or one way);
//! refuse takes the link down (connections closed, new ones refused).

use crate::experiment::{CutDirection, PartitionMode};
use crate::proxy::{Direction, Partition, Stream};
use crate::stack::{StackError, StackLink};

pub(super) async fn start(
    links: &[&StackLink],
    mode: PartitionMode,
    direction: &CutDirection,
) -> Result<(), StackError> {
    for l in links {
        let how = match (mode, direction) {
            (PartitionMode::Refuse, _) => Partition::Refuse,
            (PartitionMode::BlackHole, CutDirection::Both) => Partition::BlackHole(Direction::Both),
            (PartitionMode::BlackHole, CutDirection::OneWay { from, .. }) => {
                // A link's client side is `spec.from`: bytes it sends travel upstream.
                let stream = if l.spec.from == *from {
                    Stream::Upstream
                } else {
                    Stream::Downstream
                };
                Partition::BlackHole(Direction::Only(stream))
            }
        };
        l.link.partition(how).await?;
    }
    Ok(())
}

pub(super) async fn heal(links: &[&StackLink]) -> Result<(), StackError> {
    for l in links {
        l.link.heal_partition().await?;
    }
    Ok(())
}

pub(super) fn mode_name(mode: PartitionMode) -> &'static str {
    match mode {
        PartitionMode::BlackHole => "black hole",
        PartitionMode::Refuse => "refuse",
    }
}

pub(super) fn direction_name(d: &CutDirection) -> String {
    match d {
        CutDirection::Both => "both ways".into(),
        CutDirection::OneWay { from, to } => format!("{from}→{to} only"),
    }
}
