//! The simulation's scale knobs, read from environment variables so that CI runs a budget and
//! a soak runs the same code longer (docs/testing.md).

/// Scale and shape of a simulation run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Client replicas per run (`SIM_CLIENTS`, default 8), spread over two orgs.
    pub clients: usize,
    /// Operations (edits and authorization changes) per run (`SIM_OPS`, default 300); network
    /// and process events come on top.
    pub ops: usize,
    /// Server processes on the one database (`SIM_NODES`, default 2).
    pub nodes: usize,
    /// Frame faults, partitions, client kills and server restarts (`SIM_FAULTS`, default on;
    /// `SIM_FAULTS=0` turns them off).
    pub faults: bool,
    /// Runs per test (`SIM_SEEDS`, default 200), seeds `SIM_SEED_BASE..` (default 1).
    pub seeds: u64,
    pub seed_base: u64,
    /// Runs at a time (`SIM_PARALLEL`, default 2: one per core of the CI machine).
    pub parallel: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            clients: 8,
            ops: 300,
            nodes: 2,
            faults: true,
            seeds: 200,
            seed_base: 1,
            parallel: 2,
        }
    }
}

impl SimConfig {
    /// The defaults, overridden by whichever `SIM_*` variables are set.
    pub fn from_env() -> Self {
        let d = Self::default();
        let num = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        let size = |name: &str, default: usize| {
            usize::try_from(num(name, default as u64)).unwrap_or(default)
        };
        Self {
            clients: size("SIM_CLIENTS", d.clients).max(2),
            ops: size("SIM_OPS", d.ops),
            nodes: size("SIM_NODES", d.nodes).max(1),
            faults: std::env::var("SIM_FAULTS").map_or(true, |v| v != "0" && v != "false"),
            seeds: num("SIM_SEEDS", d.seeds),
            seed_base: num("SIM_SEED_BASE", d.seed_base),
            parallel: size("SIM_PARALLEL", d.parallel).max(1),
        }
    }
}
