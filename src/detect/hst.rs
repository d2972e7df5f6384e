//! Half-Space Trees (Tan, Ting & Liu, "Fast Anomaly Detection for Streaming
//! Data", IJCAI 2011), with streaming min–max scaling.
//!
//! # Model
//! Each of `trees` random trees of depth `depth` halves the unit cube: a node
//! picks a random feature and splits its current cell at a random point of the
//! cell's middle 70% (River's variant of the paper's mid-point split of a
//! random work range). A node's *reference mass* `r` is the number of points
//! of the reference that fall in its cell. The reference is the last
//! `references` complete windows of `window` points (the paper and River use
//! one window); it is replaced every `window` points.
//!
//! A point is min–max scaled with the running min/max of the points before it
//! (no look-ahead), then each tree is walked from the root: a tree's *mass
//! score* adds `r · 2^level` of every node on the path and stops after the
//! first node whose reference mass is below `size_limit · n` (`n` points in
//! the reference; Tan et al. and River use the same rule). Dense regions give
//! a large mass score. Trees are combined by the geometric mean of `1 + mass
//! score` (the mean of `log2`), not the paper's arithmetic mean: a tree's
//! mass is exponential in the depth its walk reaches, so the arithmetic mean
//! is decided by the one tree that happens to go deepest, while the geometric
//! mean lets every tree vote (ODDS AUC: cardio 0.82 → 0.86, satimage-2 0.94 →
//! 0.96 at 20 trees, depth 8). The raw score is `log2(n · 2^(depth+1)) − mean
//! log2(1 + mass score)`, clamped at 0: small for dense regions, close to
//! `depth + 1` for a point isolated right below the root. Until the first
//! window completes there is no reference and the raw score is 0 (as River's):
//! give keys a warm-up of at least `window` points.
//!
//! The reference points are counted in the coordinates the next window is
//! scored in: they are kept unscaled and min–max scaled with the running
//! min/max *at the swap*, not each with the min/max of its own arrival (with
//! growing ranges the two disagree; ODDS AUC: cardio 0.79 → 0.82, satimage-2
//! 0.90 → 0.94 at 20 × 8, River's shape).
//!
//! # Cost and memory
//! Each tree counts its own random quarter of the reference (a fresh sample
//! per tree and window, every sampled point weighing for four), as an
//! isolation forest subsamples per tree: the masses are unbiased estimates,
//! and over 12 seeds the ODDS AUCs of quarter, half and full samples agree
//! within 0.003 at 24 trees, while the rebuild touches a quarter of the
//! points. Only the part of a tree a score can reach is built: the sanitized
//! points of the last `references + 1` windows are kept in a ring, and when a
//! window completes each tree is rebuilt from its sample by partitioning it
//! recursively (branch-free, between two buffers), stopping at cells below
//! the size limit. Every built end node stores its path's
//! `log2(1 + mass score)`, so an update writes nothing in the trees and costs
//! `trees` branch-free walks of a fixed number of steps (eight trees
//! interleaved; an end node loops to itself) plus, amortized, the rebuild. A
//! node's feature and split come from a hash of the tree seed and the node's
//! heap position (and its ancestors' cuts), and a tree's sample from its seed
//! and the window count, so the trees need no storage: a snapshot holds the
//! ring (`(references + 1) · window · d` f64), and the built trees are rebuilt
//! from it after a restore.
//!
//! # Explanation
//! In each tree, the split that moved the point from a cell with enough
//! reference mass into one below the size limit (where the walk stops
//! scoring) is credited to its feature; credits are normalized over features.

use serde::{Deserialize, Serialize};

use super::scaler::FeatureStats;
use super::{FeatureExplanation, OnlineDetector, SplitMix64};

/// Default number of trees: 24 (three groups of [`LANES`] walked together).
/// Trees only average out the randomness of the splits (standard error
/// `∝ 1/√trees`) and cost grows linearly; on the ODDS files 16 trees leave
/// cardio and mammography below River at seed 42, 24 clear every file.
pub const DEFAULT_TREES: u32 = 24;
/// Default tree depth: 12. Scoring stops at the first cell below the size
/// limit, so depth only refines dense cells; thyroid (values crowded near the
/// bottom of a long range) gains up to depth 12 (24 trees: 0.862 at 10, 0.867
/// at 11, 0.870 at 12), the other files move by less than 0.01.
pub const DEFAULT_DEPTH: u32 = 12;
/// Default window: 250 points, the paper's and River's setting.
pub const DEFAULT_WINDOW: u32 = 250;
/// Default reference length in windows: 2.
pub const DEFAULT_REFERENCES: u32 = 1;
/// Default size limit as a share of the reference (Tan et al.: 0.1).
pub const DEFAULT_SIZE_LIMIT: f64 = 0.1;
/// Share of a cell's range left out on each side when drawing a split
/// (River's `HalfSpaceTrees` uses 0.15).
const SPLIT_PADDING: f64 = 0.15;
/// Features that can be split on (node features are `u16`).
const MAX_FEATURES: usize = 1 << 16;
/// Depth limit that keeps heap positions inside `u64` and `2^depth` exact.
pub const MAX_DEPTH: u32 = 30;
/// "No children" / "no credit" marker (index 0 is a root, never a child).
const NONE: u32 = u32::MAX;
/// Upper bound on `(references + 1) · window` points kept.
const MAX_RING: u64 = 1 << 20;

/// Validated Half-Space Trees parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HstParams {
    /// Number of trees.
    pub trees: u32,
    /// Depth of every tree (the root is depth 0).
    pub depth: u32,
    /// Points per mass window (the reference is replaced every window).
    pub window: u32,
    /// Complete windows in the reference.
    pub references: u32,
    /// Scoring stops below this share of the reference in mass.
    pub size_limit: f64,
}

impl Default for HstParams {
    fn default() -> Self {
        HstParams {
            trees: DEFAULT_TREES,
            depth: DEFAULT_DEPTH,
            window: DEFAULT_WINDOW,
            references: DEFAULT_REFERENCES,
            size_limit: DEFAULT_SIZE_LIMIT,
        }
    }
}

impl HstParams {
    /// Checks ranges: `1..=1000` trees, depth `1..=MAX_DEPTH`, window
    /// `2..=65535`, `1..=16` reference windows, size limit in `[0, 1)`.
    pub fn validate(self) -> Result<Self, String> {
        if !(1..=1000).contains(&self.trees) {
            return Err(format!("hst trees must be in 1..=1000, got {}", self.trees));
        }
        if !(1..=MAX_DEPTH).contains(&self.depth) {
            return Err(format!(
                "hst depth must be in 1..={MAX_DEPTH}, got {}",
                self.depth
            ));
        }
        if !(2..=65_535).contains(&self.window) {
            return Err(format!(
                "hst window must be in 2..=65535, got {}",
                self.window
            ));
        }
        if !(1..=16).contains(&self.references)
            || u64::from(self.references + 1) * u64::from(self.window) > MAX_RING
        {
            return Err(format!(
                "hst references must be in 1..=16 with (references + 1) * window <= {MAX_RING}, got {}",
                self.references
            ));
        }
        if !(0.0..1.0).contains(&self.size_limit) {
            return Err(format!(
                "hst size_limit must be in [0, 1), got {}",
                self.size_limit
            ));
        }
        Ok(self)
    }

    /// Null-model threshold floor for the calibrator. The raw score lies in
    /// `[0, depth + 1]` and a point isolated right below the root scores about
    /// `depth + 1`; the floor flags mass scores within 8× of that (`- 3`),
    /// and the empirical quantile decides above it.
    pub fn prior_threshold(self) -> f64 {
        f64::from(self.depth + 1) - 3.0
    }

    /// Points kept in the ring: the reference plus the window being filled.
    fn ring_points(self) -> usize {
        (self.references as usize + 1) * self.window as usize
    }
}

/// Order-preserving map of a non-NaN `f32` to a `u32`: `a < b` exactly when
/// `key(a) < key(b)` (-0.0 and 0.0 share a key), so walks compare integers.
/// Finite values get keys above 0, which marks terminal nodes.
#[inline]
fn key(x: f32) -> u32 {
    let b = (x + 0.0).to_bits();
    b ^ ((((b as i32) >> 31) as u32) | 0x8000_0000)
}

/// The built nodes of all trees, one array per field (a cache derived from
/// the ring, never serialized). Children come in pairs, the right one after
/// the left. A terminal node (the walk stops scoring there) loops to itself:
/// its split key is 0, below every point's key, so every point goes "right"
/// to the node itself; walks then need no data-dependent branch.
#[derive(Debug, Clone, Default)]
struct Nodes {
    /// Split feature.
    feature: Vec<u32>,
    /// Low 32 bits: [`key`] of the split value (scaled units), 0 for a
    /// terminal node; a point goes left when `key(x[feature])` is below it.
    /// High 32 bits: index of the right child (the left one is just before
    /// it). One load serves both.
    split_right: Vec<u64>,
    /// `log2(1 + mass score of the path from the root to this node)`, what a
    /// walk that ends here adds (meaningful for terminal nodes).
    log_mass: Vec<f64>,
    /// Feature credited when the walk ends here below the size limit, or
    /// `d` (a slot past the features) for none.
    credit: Vec<u32>,
}

impl Nodes {
    fn len(&self) -> usize {
        self.split_right.len()
    }

    fn clear(&mut self) {
        self.feature.clear();
        self.split_right.clear();
        self.log_mass.clear();
        self.credit.clear();
    }

    /// Appends a terminal node that scores nothing yet.
    #[inline]
    fn push_terminal(&mut self, none: u32) {
        let at = self.len() as u32;
        self.feature.push(0);
        self.split_right.push(u64::from(at) << 32);
        self.log_mass.push(0.0);
        self.credit.push(none);
    }

    /// Whether every walk from any node stays inside the arrays and reads a
    /// feature below `d` (checked after each rebuild; the walks rely on it).
    fn valid(&self, d: usize) -> bool {
        let len = self.len();
        self.feature.len() == len
            && self.log_mass.len() == len
            && self.credit.len() == len
            && (0..len).all(|k| {
                let (split, r) = (
                    self.split_right[k] as u32,
                    (self.split_right[k] >> 32) as usize,
                );
                // With a split key of 0 no point goes left.
                let reach = r < len && (split == 0 || r >= 1);
                reach && (self.feature[k] as usize) < d && (self.credit[k] as usize) <= d
            })
    }
}

/// Feature and split of the node at heap position `heap` (root 1, children
/// `2h`, `2h + 1`) of the tree with `seed`, whose cell is `cell` (per
/// feature, the bounds its ancestors' cuts leave): they come from a hash of
/// the seed and `heap`, the split lies in the middle 70% of the node's cell
/// along the feature.
fn make_split(seed: u64, heap: u64, cell: &[(f64, f64)]) -> (u16, f32) {
    let mut r = SplitMix64::new(seed ^ heap.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let feature = r.next_below(cell.len().clamp(1, MAX_FEATURES) as u64) as u16;
    let (lo, hi) = cell
        .get(usize::from(feature))
        .copied()
        .unwrap_or((0.0, 1.0));
    let u = SPLIT_PADDING + (1.0 - 2.0 * SPLIT_PADDING) * r.next_f64();
    (feature, (lo + u * (hi - lo)) as f32)
}

/// Each tree counts a random sample of about `1 / 2^SAMPLE_SHIFT` of the
/// reference (a fresh one per tree and window), each sampled point weighing
/// for `2^SAMPLE_SHIFT`: the masses are estimates of the reference's, and the
/// rebuild touches a quarter of the points. Over 12 seeds on the ODDS files
/// the mean AUC of 1/4, 1/2 and full samples agree within 0.003 at 24 trees.
const SAMPLE_SHIFT: u32 = 2;
/// References smaller than this are counted whole.
const SAMPLE_MIN: usize = 64;

/// Writes into `idx` the indices in `0..n` of the points tree `seed` counts
/// after `windows` completed windows: each with probability
/// `1 / 2^SAMPLE_SHIFT` (bits of a generator seeded by both), or all of them
/// when `n < SAMPLE_MIN`.
fn sample(seed: u64, windows: u64, n: usize, idx: &mut Vec<u32>) {
    idx.clear();
    if n < SAMPLE_MIN {
        idx.extend(0..n as u32);
        return;
    }
    let mut r = SplitMix64::new(seed ^ windows.wrapping_mul(0xD1B5_4A32_D192_ED03));
    for start in (0..n).step_by(64) {
        let mut bits = u64::MAX;
        for _ in 0..SAMPLE_SHIFT {
            bits &= r.next_u64();
        }
        if n - start < 64 {
            bits &= (1u64 << (n - start)) - 1;
        }
        // One step per sampled point (a quarter of the block).
        while bits != 0 {
            idx.push((start + bits.trailing_zeros() as usize) as u32);
            bits &= bits - 1;
        }
    }
}

/// The built trees (derived from the ring at every window swap and after a
/// restore; equal whenever the serialized state is).
#[derive(Debug, Clone, Default)]
struct Forest {
    /// Nodes of all trees.
    nodes: Nodes,
    /// Root index of each tree, padded to a multiple of [`LANES`] with a
    /// terminal node that scores nothing.
    roots: Vec<u32>,
    /// Deepest level built in each group of [`LANES`] trees.
    heights: Vec<u32>,
    /// Whether `nodes` reflects the current reference and passed
    /// [`Nodes::valid`].
    ready: bool,
    /// Points counted in the reference.
    n_ref: u64,
    /// Reference points scaled with the min–max of the swap, one column of
    /// `n_ref` values per feature (work space).
    scaled: Vec<f32>,
    /// Indices into a column of `scaled` (work space).
    idx: Vec<u32>,
    /// Partition work space.
    tmp: Vec<u32>,
}

impl PartialEq for Forest {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// What a rebuild needs besides the nodes.
struct Builder<'a> {
    seed: u64,
    d: usize,
    depth: u32,
    limit: f64,
    /// Feature-major reference: column `f` is `points[f * n..(f + 1) * n]`.
    points: &'a [f32],
    n: usize,
    nodes: &'a mut Nodes,
    /// Reference points each sampled point stands for.
    weight: f64,
    /// The last `(mass score, log2(1 + mass score))` computed.
    last_log: (f64, f64),
    height: u32,
    /// Per feature, the bounds of the current node's cell.
    cell: Vec<(f64, f64)>,
}

impl Builder<'_> {
    /// Fills `slot` (pushed as a terminal) with the node at `level`/`heap`
    /// holding the reference points `idx` (each `< n`), and recursively its
    /// children while it is dense enough; `spare` (as long as `idx`) is work
    /// space.
    fn fill(
        &mut self,
        slot: usize,
        idx: &mut [u32],
        spare: &mut [u32],
        level: u32,
        heap: u64,
        parent: (f64, u32),
    ) {
        let m = idx.len() as f64 * self.weight;
        let acc = parent.0 + m * f64::from(1u32 << level);
        let sparse = m < self.limit || m == 0.0;
        if sparse || level == self.depth {
            self.terminal(slot, level, acc, sparse, parent.1);
            return;
        }
        let (feature, split) = make_split(self.seed, heap, &self.cell);
        let f = usize::from(feature);
        let col = &self.points[f * self.n..(f + 1) * self.n];
        let len = idx.len();
        let c = self.nodes.len();
        self.nodes.push_terminal(self.d as u32);
        self.nodes.push_terminal(self.d as u32);
        self.nodes.feature[slot] = u32::from(feature);
        self.nodes.split_right[slot] = u64::from(key(split)) | (c as u64 + 1) << 32;
        let credit = u32::from(feature);
        if level + 1 == self.depth {
            // Both children end the walk: only their sizes matter.
            let left: usize = idx
                .iter()
                // Every index is below `n`, the length of `col`.
                .map(|&v| usize::from(col[v as usize] < split))
                .sum();
            let (ml, mr) = (left as f64 * self.weight, (len - left) as f64 * self.weight);
            let w = f64::from(1u32 << (level + 1));
            self.terminal(c, level + 1, acc + ml * w, ml < self.limit, credit);
            self.terminal(c + 1, level + 1, acc + mr * w, mr < self.limit, credit);
            return;
        }
        // Branch-free partition into `spare`: left points from the front,
        // right points from the back; every point is written to both ends,
        // and the copy that lands in the other side's slot is overwritten
        // later (or is the same point). The order inside a cell is
        // irrelevant: only sizes count.
        let spare = &mut spare[..len];
        let (mut left, mut right) = (0usize, len);
        for &v in idx.iter() {
            // SAFETY: `left` counts the left points read so far and
            // `len - right` the right ones, so `left < right <= len` before
            // each write; every index in `idx` is below `n`, the length of
            // `col` (the indices are a permutation of `0..n`).
            unsafe {
                let go = *col.get_unchecked(v as usize) < split;
                *spare.get_unchecked_mut(left) = v;
                *spare.get_unchecked_mut(right - 1) = v;
                left += usize::from(go);
                right -= usize::from(!go);
            }
        }
        let (l, r) = spare.split_at_mut(left);
        let (l2, r2) = idx.split_at_mut(left);
        // The children's cells: the cut bounds the feature on each side
        // (a split never leaves its cell, so min/max keep the nested bound).
        let (lo, hi) = self.cell[f];
        let cut = f64::from(split);
        self.cell[f] = (lo, hi.min(cut));
        self.fill(c, l, l2, level + 1, 2 * heap, (acc, credit));
        self.cell[f] = (lo.max(cut), hi);
        self.fill(c + 1, r, r2, level + 1, 2 * heap + 1, (acc, credit));
        self.cell[f] = (lo, hi);
    }

    /// Makes `slot` a terminal node at `level` whose path scores `acc`.
    fn terminal(&mut self, slot: usize, level: u32, acc: f64, sparse: bool, split_feature: u32) {
        self.height = self.height.max(level);
        // Empty cells repeat their parent's mass: reuse the last logarithm.
        if acc != self.last_log.0 {
            self.last_log = (acc, (1.0 + acc).log2());
        }
        self.nodes.log_mass[slot] = self.last_log.1;
        // Credit the split that moved the point from a dense cell into a
        // sparse one.
        self.nodes.credit[slot] = if sparse && split_feature != NONE {
            split_feature
        } else {
            self.d as u32
        };
    }
}

/// Trees walked together: their walks are independent chains of loads, so
/// interleaving them lets the CPU overlap their latencies.
const LANES: usize = 8;

/// Half-Space Trees detector state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HalfSpaceTrees {
    params: HstParams,
    stats: FeatureStats,
    /// One seed per tree.
    seeds: Vec<u64>,
    /// Sanitized points (`d` values each) of the last `references + 1`
    /// windows; point `t` of the stream at `t mod capacity`.
    ring: Vec<f64>,
    /// Points in the latest window so far.
    in_window: u32,
    /// Completed windows.
    windows: u64,
    /// Per-feature `(offset, scale)` of the min–max scaling at the last
    /// window swap. Saved with the state, so trees rebuilt after a restore
    /// are the trees of the uninterrupted run (the running min–max may have
    /// moved since the swap).
    swap_affine: Vec<(f64, f64)>,
    #[serde(skip)]
    forest: Box<Forest>,
    #[serde(skip)]
    scratch: Box<Scratch>,
}

/// Per-update buffers (not state).
#[derive(Debug, Clone, Default)]
struct Scratch {
    clean: Vec<f64>,
    /// [`key`]s of the scaled point.
    keys: Vec<u32>,
    credit: Vec<f64>,
}

impl PartialEq for Scratch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl HalfSpaceTrees {
    /// A fresh detector for `d` features; `params` must be validated.
    pub fn new(d: usize, params: HstParams, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let d = d.max(1);
        HalfSpaceTrees {
            params,
            stats: FeatureStats::new(d),
            seeds: (0..params.trees).map(|_| rng.next_u64()).collect(),
            ring: Vec::new(),
            in_window: 0,
            windows: 0,
            swap_affine: Vec::new(),
            forest: Box::default(),
            scratch: Box::default(),
        }
    }

    /// Built nodes over all trees (memory diagnostics).
    pub fn live_nodes(&self) -> usize {
        self.forest.nodes.len()
    }

    /// Whether the (possibly restored) state fits its parameters.
    fn consistent(&self) -> bool {
        let p = self.params;
        let ok = (1..=MAX_DEPTH).contains(&p.depth)
            && (2..=65_535).contains(&p.window)
            && (1..=16).contains(&p.references)
            && self.in_window < p.window
            && self.seeds.len() == p.trees as usize
            && p.trees > 0;
        if !ok {
            return false;
        }
        let seen = self
            .windows
            .saturating_mul(u64::from(p.window))
            .saturating_add(u64::from(self.in_window));
        let kept = seen.min(p.ring_points() as u64) as usize;
        self.ring.len() == kept * self.stats.dim()
            && (self.windows == 0 || self.swap_affine.len() == self.stats.dim())
    }

    /// The current reference as `(end, n)`: the `n` stream points before
    /// point `end`, the last `references` complete windows; none during the
    /// first window.
    fn reference(&self) -> (u64, u64) {
        let w = u64::from(self.params.window);
        let n = self.windows.min(u64::from(self.params.references)) * w;
        (self.windows * w, n)
    }

    /// Rebuilds every tree from the reference points in the ring.
    fn rebuild(&mut self) {
        let d = self.stats.dim();
        let cap = self.params.ring_points() as u64;
        let (end, n) = self.reference();
        let f = &mut *self.forest;
        // The reference is counted in the coordinates the next window is
        // scored in: the running min–max at the swap, not each point's own
        // (min–max scaling is affine per feature).
        let affine = &self.swap_affine;
        let nu = n as usize;
        f.scaled.clear();
        f.scaled.resize(nu * d, 0.0);
        for (j, t) in (end - n..end).enumerate() {
            let p = (t % cap) as usize * d;
            for (i, (&v, &(a, b))) in self.ring[p..p + d].iter().zip(affine).enumerate() {
                f.scaled[i * nu + j] = (a + b * v) as f32;
            }
        }
        f.n_ref = n;
        f.nodes.clear();
        f.roots.clear();
        f.heights.clear();
        f.tmp.clear();
        f.tmp.resize(nu, 0);
        let mut b = Builder {
            seed: 0,
            d,
            depth: self.params.depth,
            limit: self.params.size_limit * n as f64,
            points: &f.scaled,
            n: nu,
            nodes: &mut f.nodes,
            weight: 1.0,
            last_log: (0.0, 0.0),
            height: 0,
            cell: vec![(0.0, 1.0); d],
        };
        for (t, &seed) in self.seeds.iter().enumerate() {
            if t % LANES == 0 {
                b.height = 0;
            }
            let root = b.nodes.len();
            f.roots.push(root as u32);
            b.nodes.push_terminal(d as u32);
            b.seed = seed;
            sample(seed, self.windows, nu, &mut f.idx);
            // Each sampled point stands for `n / k` reference points.
            let k = f.idx.len();
            b.weight = n as f64 / k.max(1) as f64;
            b.fill(root, &mut f.idx, &mut f.tmp[..k], 0, 1, (0.0, NONE));
            if t % LANES == LANES - 1 || t + 1 == self.seeds.len() {
                f.heights.push(b.height);
            }
        }
        // A terminal sink that scores nothing pads the last group of walks
        // to `LANES` trees (adding +0.0 leaves the sum unchanged).
        let sink = f.nodes.len() as u32;
        f.nodes.push_terminal(d as u32);
        while f.roots.len() % LANES != 0 {
            f.roots.push(sink);
        }
        f.ready = f.nodes.valid(d) && f.roots.iter().all(|&r| (r as usize) < f.nodes.len());
    }
}

impl OnlineDetector for HalfSpaceTrees {
    fn update(&mut self, x: &[f64], _threshold: f64, explain: &mut Vec<FeatureExplanation>) -> f64 {
        let d = self.stats.dim();
        if !self.consistent() {
            // A snapshot that does not fit its own parameters (corrupted or
            // foreign bytes): score nothing rather than index out of bounds.
            explain.clear();
            return 0.0;
        }
        if self.windows > 0 && !self.forest.ready {
            // Restored from a snapshot: the trees are derived state.
            self.rebuild();
        }
        let mut sc = std::mem::take(&mut self.scratch);
        self.stats.sanitize(x, &mut sc.clean);
        sc.credit.clear();
        sc.credit.resize(d + 1, 0.0);
        let cap = self.params.ring_points();
        let t = self.windows * u64::from(self.params.window) + u64::from(self.in_window);
        let pos = (t % cap as u64) as usize * d;
        if self.ring.len() < pos + d {
            self.ring.resize(pos + d, 0.0);
        }
        self.ring[pos..pos + d].copy_from_slice(&sc.clean);
        sc.keys.clear();
        sc.keys
            .extend((0..d).map(|i| key(self.stats.minmax(i, sc.clean[i]) as f32)));

        let raw = if self.windows == 0 || !self.forest.ready {
            0.0
        } else {
            let f = &*self.forest;
            let nodes = &f.nodes;
            let (feature, split_right) = (&nodes.feature[..], &nodes.split_right[..]);
            let keys = &sc.keys[..d];
            let mut log_mass = 0.0;
            for (roots, &height) in f.roots.chunks_exact(LANES).zip(&f.heights) {
                let mut at = [0u32; LANES];
                at.copy_from_slice(roots);
                // A fixed number of steps: an end node loops to itself, and
                // a data-dependent early exit costs more in mispredictions
                // than the steps it saves.
                for _ in 0..height {
                    for i in at.iter_mut() {
                        let k = *i as usize;
                        // SAFETY: `f.ready` holds only when `Nodes::valid(d)`
                        // passed: from a node below `len` a walk only reaches
                        // nodes below `len`, features are below `d` (the
                        // length of `keys`), and the roots are below `len`.
                        unsafe {
                            let x = *keys.get_unchecked(*feature.get_unchecked(k) as usize);
                            let sr = *split_right.get_unchecked(k);
                            let left = x < sr as u32;
                            *i = (sr >> 32) as u32 - u32::from(left);
                        }
                    }
                }
                for &i in at.iter() {
                    log_mass += nodes.log_mass[i as usize];
                    // Slot `d` collects the walks that credit nothing.
                    sc.credit[nodes.credit[i as usize] as usize] += 1.0;
                }
            }
            // Geometric mean of the trees' mass scores: each tree's mass is
            // exponential in the depth its walk reaches, so an arithmetic mean
            // is decided by the one tree that goes deepest.
            let mean_log = log_mass / f64::from(self.params.trees);
            let top = f.n_ref as f64 * (2.0f64).powi(self.params.depth as i32 + 1);
            (top.log2() - mean_log).max(0.0)
        };

        self.stats.explain(&sc.credit[..d], explain);
        self.stats.learn(&sc.clean);
        self.in_window += 1;
        if self.in_window >= self.params.window {
            self.in_window = 0;
            self.windows += 1;
            self.swap_affine = (0..d)
                .map(|i| {
                    let a = self.stats.minmax(i, 0.0);
                    (a, self.stats.minmax(i, 1.0) - a)
                })
                .collect();
            self.rebuild();
        }
        self.scratch = sc;
        if raw.is_finite() {
            raw
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::detect::raw_scores as run;

    fn blob(n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut r = SplitMix64::new(seed);
        (0..n)
            .map(|i| match i {
                // Two early corner points set the min-max range to [0, 1].
                0 => vec![0.0; 3],
                1 => vec![1.0; 3],
                _ => (0..3).map(|_| 0.2 + 0.02 * r.next_gaussian()).collect(),
            })
            .collect()
    }

    #[test]
    fn flags_an_obvious_outlier_and_explains_it() {
        let mut d = HalfSpaceTrees::new(3, HstParams::default(), 1);
        let normal = run(&mut d, &blob(1000, 2));
        let mut ex = Vec::new();
        // Inside every feature's range, but far from the data in feature 0.
        let out = d.update(&[0.8, 0.2, 0.2], 0.0, &mut ex);
        let mut tail = normal[500..].to_vec();
        tail.sort_by(f64::total_cmp);
        let p99 = tail[tail.len() * 99 / 100];
        assert!(out > p99, "outlier {out} vs p99 {p99}");
        let total: f64 = ex.iter().map(|e| e.contribution).sum();
        assert!((total - 1.0).abs() < 1e-9, "{ex:?}");
        assert!(ex[0].contribution > ex[1].contribution, "{ex:?}");
        assert!((ex[1].expected - 0.2).abs() < 0.01);
    }

    #[test]
    fn snapshot_restore_continue_identical_and_seeded() {
        let pts = blob(1500, 3);
        let mut a = HalfSpaceTrees::new(3, HstParams::default(), 9);
        let mut b = HalfSpaceTrees::new(3, HstParams::default(), 9);
        let sa = run(&mut a, &pts[..700]);
        assert_eq!(sa, run(&mut b, &pts[..700]));
        let bytes = postcard::to_stdvec(&b).unwrap();
        let mut b: HalfSpaceTrees = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(run(&mut a, &pts[700..]), run(&mut b, &pts[700..]));
        let mut c = HalfSpaceTrees::new(3, HstParams::default(), 10);
        assert_ne!(sa, run(&mut c, &pts[..700]));
    }

    #[test]
    fn memory_stays_bounded_and_input_is_sanitized() {
        let params = HstParams {
            trees: 4,
            depth: 15,
            ..HstParams::default()
        };
        let mut d = HalfSpaceTrees::new(2, params, 5);
        let mut r = SplitMix64::new(1);
        let mut ex = Vec::new();
        for i in 0..20_000 {
            let x = match i % 997 {
                0 => [f64::NAN, f64::INFINITY],
                1 => [f64::MAX, -f64::MAX],
                2 => [1e-310, 0.0],
                _ => [r.next_f64(), r.next_f64()],
            };
            let s = d.update(&x, 0.0, &mut ex);
            assert!(s.is_finite() && s >= 0.0);
            assert!(ex.iter().all(|e| e.contribution.is_finite()));
        }
        // Built nodes: at most two children per reference point and level.
        assert!(
            d.live_nodes() <= 4 * (2 * 250 * 15 + 1),
            "{}",
            d.live_nodes()
        );
        assert!(HstParams { depth: 0, ..params }.validate().is_err());
    }
}
