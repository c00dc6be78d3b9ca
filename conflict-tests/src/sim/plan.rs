//! The operation plan of one simulation run: every decision the simulation makes (which client
//! edits what, which frame is dropped, who goes offline, which server restarts) is a step here,
//! generated from the seed before anything runs. Replaying a plan makes the same decisions, and
//! a plan saved as JSON (`conflict-tests/regressions/`) replays without its generator.
//!
//! Steps name things by position, not by id: "the client's 3rd task in creation order", "org
//! member 2". Ids (UUIDs, automerge hashes) differ between runs; positions do not.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::SimConfig;

/// One run: its seed, its shape and its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub seed: u64,
    pub clients: usize,
    pub nodes: usize,
    pub faults: bool,
    pub steps: Vec<Step>,
}

/// What happens to one frame the simulated network carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    Deliver,
    Drop,
    Duplicate,
    /// Held back behind the frames queued after it (reordered).
    Delay,
}

/// A local edit on a client replica. `pick` selects one of the tasks the replica holds, in
/// the order the simulation first saw them (modulo their number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WriteOp {
    Create {
        title: String,
        status: String,
    },
    Title {
        pick: u32,
        title: String,
    },
    /// A text edit of the description: delete `delete` characters at `at`, insert `insert`.
    Text {
        pick: u32,
        at: u32,
        delete: u32,
        insert: String,
    },
    Status {
        pick: u32,
        status: String,
    },
    /// Assigns member `member` of the client's org (modulo the org's size).
    Assign {
        pick: u32,
        member: u32,
    },
    /// Makes the task depend on another task the replica holds (may create a cycle).
    Depend {
        pick: u32,
        on: u32,
    },
    ClearDependencies {
        pick: u32,
    },
    Move {
        pick: u32,
        column: String,
        position: String,
    },
    Delete {
        pick: u32,
    },
    Restore {
        pick: u32,
    },
}

/// An authorization change, made over HTTP by the org's owner. `doc` selects one of the org's
/// committed tasks in the order the simulation first saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AclOp {
    Share {
        doc: u32,
        member: u32,
        relation: String,
    },
    Unshare {
        doc: u32,
        member: u32,
        relation: String,
    },
    Role {
        member: u32,
        role: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    Write {
        client: usize,
        op: WriteOp,
    },
    Acl {
        org: usize,
        op: AclOp,
    },
    /// Carries queued frames between a client and its server, one fate per frame.
    Deliver {
        client: usize,
        up: bool,
        fates: Vec<Fate>,
    },
    /// The client loses its connection (a partition starts; frames in flight are lost).
    Disconnect {
        client: usize,
    },
    /// The client connects to a server node (a partition heals).
    Connect {
        client: usize,
        node: usize,
    },
    /// The client process dies and is reopened from its SQLite file.
    Kill {
        client: usize,
    },
    /// A server node restarts (its connections drop).
    Restart {
        node: usize,
    },
    /// The next push on a node fails just before its transaction commits (as when the database
    /// connection drops): nothing of it is stored, and the connection closes.
    FailCommit {
        node: usize,
    },
}

impl Step {
    /// Whether the step is an operation (an edit or an authorization change), as counted by
    /// `SIM_OPS`; the others are network and process events.
    pub fn is_operation(&self) -> bool {
        matches!(self, Step::Write { .. } | Step::Acl { .. })
    }
}

const STATUSES: [&str; 4] = ["todo", "in_progress", "done", "cancelled"];
const COLUMNS: [&str; 3] = ["backlog", "doing", "review"];
const RELATIONS: [&str; 3] = ["viewer", "editor", "owner"];
const ROLES: [&str; 3] = ["member", "guest", "admin"];
const WORDS: [&str; 8] = [
    "alpha",
    "budget",
    "call",
    "draft",
    "email",
    "follow-up",
    "invoice",
    "review",
];

/// Generates the plan of a seed.
pub fn generate(config: &SimConfig, seed: u64) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clients = config.clients;
    let mut steps = Vec::new();
    let mut ops = 0;
    while ops < config.ops {
        let step = next_step(&mut rng, config);
        if step.is_operation() {
            ops += 1;
        }
        steps.push(step);
    }
    Plan {
        seed,
        clients,
        nodes: config.nodes,
        faults: config.faults,
        steps,
    }
}

fn next_step(rng: &mut ChaCha8Rng, config: &SimConfig) -> Step {
    let client = rng.random_range(0..config.clients);
    let roll = rng.random_range(0..1000u32);
    let faults = config.faults;
    match roll {
        0..400 => Step::Write {
            client,
            op: write_op(rng),
        },
        400..430 => Step::Acl {
            org: usize::from(rng.random_range(0..10u8) >= 7),
            op: acl_op(rng),
        },
        895..900 if faults => Step::FailCommit {
            node: rng.random_range(0..config.nodes),
        },
        430..900 => {
            let up = rng.random_bool(0.45);
            let count = rng.random_range(1..=4);
            let fates = (0..count)
                .map(|_| {
                    if !faults {
                        return Fate::Deliver;
                    }
                    match rng.random_range(0..100u32) {
                        0..6 => Fate::Drop,
                        6..12 => Fate::Duplicate,
                        12..18 => Fate::Delay,
                        _ => Fate::Deliver,
                    }
                })
                .collect();
            Step::Deliver { client, up, fates }
        }
        900..935 if faults => Step::Disconnect { client },
        900..980 => Step::Connect {
            client,
            node: rng.random_range(0..config.nodes),
        },
        980..993 if faults => Step::Kill { client },
        993..1000 if faults => Step::Restart {
            node: rng.random_range(0..config.nodes),
        },
        _ => Step::Deliver {
            client,
            up: false,
            fates: vec![Fate::Deliver],
        },
    }
}

fn write_op(rng: &mut ChaCha8Rng) -> WriteOp {
    let pick = rng.random::<u32>();
    let word = |rng: &mut ChaCha8Rng| WORDS[rng.random_range(0..WORDS.len())].to_owned();
    match rng.random_range(0..100u32) {
        0..22 => WriteOp::Create {
            title: format!("{} {}", word(rng), rng.random_range(0..100u32)),
            status: STATUSES[rng.random_range(0..2)].to_owned(),
        },
        22..34 => WriteOp::Title {
            pick,
            title: format!("{} {}", word(rng), word(rng)),
        },
        34..50 => WriteOp::Text {
            pick,
            at: rng.random_range(0..40),
            delete: rng.random_range(0..4),
            insert: format!("{} ", word(rng)),
        },
        50..64 => WriteOp::Status {
            pick,
            status: STATUSES[rng.random_range(0..STATUSES.len())].to_owned(),
        },
        64..71 => WriteOp::Assign {
            pick,
            member: rng.random_range(0..8),
        },
        71..79 => WriteOp::Depend {
            pick,
            on: rng.random(),
        },
        79..82 => WriteOp::ClearDependencies { pick },
        82..91 => WriteOp::Move {
            pick,
            column: COLUMNS[rng.random_range(0..COLUMNS.len())].to_owned(),
            position: format!("a{}", rng.random_range(0..10u32)),
        },
        91..97 => WriteOp::Delete { pick },
        _ => WriteOp::Restore { pick },
    }
}

fn acl_op(rng: &mut ChaCha8Rng) -> AclOp {
    let member = rng.random_range(0..8);
    match rng.random_range(0..10u32) {
        0..5 => AclOp::Share {
            doc: rng.random(),
            member,
            relation: RELATIONS[rng.random_range(0..RELATIONS.len())].to_owned(),
        },
        5..8 => AclOp::Unshare {
            doc: rng.random(),
            member,
            relation: RELATIONS[rng.random_range(0..RELATIONS.len())].to_owned(),
        },
        _ => AclOp::Role {
            member,
            role: ROLES[rng.random_range(0..ROLES.len())].to_owned(),
        },
    }
}
