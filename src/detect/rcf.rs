//! Random Cut Forest (Guha, Mishra, Roy & Schrijvers, "Robust Random Cut
//! Forest Based Anomaly Detection on Streams", ICML 2016), with shingling,
//! a sliding time-decay sample and per-feature attribution.
//!
//! # Model
//! The input is shingled: the point of time `t` is the concatenation of the
//! last `shingle` inputs (8 by default for a univariate series, 1 for
//! multivariate records). Each of `trees` random cut trees holds a sample of
//! up to `sample_size` points. A cut picks a dimension with probability
//! proportional to its (scaled) range in the node's bounding box and a value
//! uniformly in that range; insertion and deletion follow the paper
//! (insertion draws a cut in the box extended by the new point and splits
//! there if the cut separates the point, otherwise descends).
//!
//! # Sampling (time decay)
//! Until a tree's sample is full every point enters it; afterwards each point
//! enters each tree independently with probability `sample_rate`, and the
//! tree then forgets its *oldest* point. A tree's sample is therefore a random
//! thinning of roughly the last `sample_size / sample_rate` points (2,560 by
//! default, the memory of AWS RCF's default time decay `0.1 / sample_size`),
//! and an update touches only about `trees · sample_rate` trees. Forgetting
//! the oldest point bounds the age of the sample, so points live in a ring of
//! recent inputs (`window` steps) instead of a separate point store.
//!
//! # Scale
//! Cut probabilities and scores weigh each dimension's range by `1 / sd` of
//! its feature (running standard deviation, no look-ahead). Points are stored
//! raw (`f64`), so the trees stay valid as the scale estimate moves. Bounding
//! boxes are cached in `f32` rounded outward: always supersets of the exact
//! boxes, so routing and separation tests stay correct, at half the memory
//! traffic; they are derived data, rebuilt after a restore.
//!
//! # Score: expected collusive displacement
//! The raw score is the forest mean of the *expected* displacement (CoDisp)
//! of inserting the point, computed without inserting it: walking from the
//! root, at each node the point is separated from the node's box with
//! probability `p = gap / (range + gap)` (scaled sums over dimensions); if
//! separated there, its CoDisp is the larger of the node's mass (the points it
//! would displace) and the largest sibling-to-own mass ratio of the ancestors
//! above. A duplicate of a sampled point only gets the ancestors' ratio.
//! Typical points score a few units, isolated ones up to `sample_size`.
//!
//! # Attribution
//! Each separation term is split across dimensions in proportion to that
//! dimension's scaled gap (which side of the box the point left), then summed
//! over the shingle positions of each input feature and normalized.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::scaler::FeatureStats;
use super::{FeatureExplanation, OnlineDetector, SplitMix64};

/// Default trees: 50, AWS RCF's default.
pub const DEFAULT_TREES: u32 = 50;
/// Default sample per tree: 256, the paper's and AWS's default.
pub const DEFAULT_SAMPLE_SIZE: u32 = 256;
/// Default shingle for univariate input (issue 3; AWS's examples use 8).
pub const DEFAULT_UNIVARIATE_SHINGLE: u32 = 8;
/// Default probability that a point enters a full tree: 0.1, i.e. a memory
/// of `sample_size / 0.1` points, as AWS's default time decay.
pub const DEFAULT_SAMPLE_RATE: f64 = 0.1;
/// Ring length as a multiple of the expected memory `sample_size /
/// sample_rate`. A tree's oldest point is older than 1.5× that only if fewer
/// than `sample_size` of the last `1.5 · sample_size / rate` points were
/// accepted: about 8 standard deviations below the mean for 256, so forced
/// evictions are practically never needed (but are handled).
const RING_FACTOR: f64 = 1.5;
/// Dimensions up to which box refreshes compare on the stack.
const MAX_INLINE_DIMS: usize = 64;
/// Largest sample per tree (masses and parent indices are `u16`).
pub const MAX_SAMPLE: u32 = 32_768;
/// Largest number of dimensions of a shingled point (cut dimensions are `u16`).
pub const MAX_DIMS: usize = 65_535;
/// Null/child marker.
const NIL: u32 = u32::MAX;

/// Validated Random Cut Forest parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RcfParams {
    /// Number of trees.
    pub trees: u32,
    /// Points per tree.
    pub sample_size: u32,
    /// Inputs per shingle; 0 = automatic (8 for one feature, else 1).
    pub shingle: u32,
    /// Probability that a point enters a full tree.
    pub sample_rate: f64,
}

impl Default for RcfParams {
    fn default() -> Self {
        RcfParams {
            trees: DEFAULT_TREES,
            sample_size: DEFAULT_SAMPLE_SIZE,
            shingle: 0,
            sample_rate: DEFAULT_SAMPLE_RATE,
        }
    }
}

impl RcfParams {
    /// Checks ranges: `1..=1000` trees, sample `2..=32768`, shingle `0..=64`,
    /// rate in `(0, 1]`.
    pub fn validate(self) -> Result<Self, String> {
        if !(1..=1000).contains(&self.trees) {
            return Err(format!("rcf trees must be in 1..=1000, got {}", self.trees));
        }
        if !(2..=MAX_SAMPLE).contains(&self.sample_size) {
            return Err(format!(
                "rcf sample_size must be in 2..={MAX_SAMPLE}, got {}",
                self.sample_size
            ));
        }
        if self.shingle > 64 {
            return Err(format!(
                "rcf shingle must be in 0..=64, got {}",
                self.shingle
            ));
        }
        if !(self.sample_rate > 0.0 && self.sample_rate <= 1.0) {
            return Err(format!(
                "rcf sample_rate must be in (0, 1], got {}",
                self.sample_rate
            ));
        }
        Ok(self)
    }

    /// Null-model threshold floor: an expected displacement of 2% of the
    /// sample (about 5 of 256), above typical points' few units; the
    /// empirical quantile decides above it.
    pub fn prior_threshold(self) -> f64 {
        0.02 * f64::from(self.sample_size)
    }

    fn shingle_for(self, d: usize) -> usize {
        match self.shingle {
            0 if d <= 1 => DEFAULT_UNIVARIATE_SHINGLE as usize,
            0 => 1,
            s => s as usize,
        }
    }
}

/// The largest `f32` not above `v`.
#[inline]
fn down(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) <= v || f == f32::NEG_INFINITY {
        f
    } else if f == 0.0 {
        -f32::from_bits(1)
    } else if f > 0.0 {
        f32::from_bits(f.to_bits() - 1)
    } else {
        f32::from_bits(f.to_bits() + 1)
    }
}

/// The smallest `f32` not below `v`.
#[inline]
fn up(v: f64) -> f32 {
    -down(-v)
}

/// `max(x, 0)` in the form that compiles to one vector instruction.
#[inline(always)]
fn pos(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Scaled range of the box `lo..hi` and scaled gap of `p` outside it (per
/// dimension into `g`), in `f32` with eight independent lanes so the loop
/// vectorizes (a serial sum would not).
#[inline]
fn box_gap(lo: &[f32], hi: &[f32], p: &[f32], w: &[f32], g: &mut [f32]) -> (f32, f32) {
    const L: usize = 8;
    let mut rs = [0.0f32; L];
    let mut gs = [0.0f32; L];
    let n = lo.len() / L * L;
    for ((((l, h), p), w), g) in lo[..n]
        .chunks_exact(L)
        .zip(hi[..n].chunks_exact(L))
        .zip(p[..n].chunks_exact(L))
        .zip(w[..n].chunks_exact(L))
        .zip(g[..n].chunks_exact_mut(L))
    {
        for k in 0..L {
            let gk = w[k] * (pos(l[k] - p[k]) + pos(p[k] - h[k]));
            g[k] = gk;
            gs[k] += gk;
            rs[k] += w[k] * (h[k] - l[k]);
        }
    }
    for j in n..lo.len() {
        let gj = w[j] * (pos(lo[j] - p[j]) + pos(p[j] - hi[j]));
        g[j] = gj;
        gs[0] += gj;
        rs[0] += w[j] * (hi[j] - lo[j]);
    }
    (rs.iter().sum(), gs.iter().sum())
}

/// Stores the `f64` box `lo..hi` rounded outward.
#[inline]
fn store_box(b: &mut [f32], lo: &[f64], hi: &[f64]) {
    let dims = lo.len();
    for j in 0..dims {
        b[j] = down(lo[j]);
        b[dims + j] = up(hi[j]);
    }
}

#[inline]
fn is_leaf(r: u32) -> bool {
    r & 1 == 1
}
#[inline]
fn ix(r: u32) -> usize {
    (r >> 1) as usize
}
#[inline]
fn leaf_ref(i: usize) -> u32 {
    ((i as u32) << 1) | 1
}
#[inline]
fn node_ref(i: usize) -> u32 {
    (i as u32) << 1
}

/// `u16` form of a parent index ([`NIL`] maps to `u16::MAX`): a tree has
/// fewer than [`MAX_SAMPLE`] internal nodes, so indices fit.
#[inline]
fn p16(p: u32) -> u16 {
    if p == NIL {
        u16::MAX
    } else {
        p as u16
    }
}

/// The parent index a [`p16`] value stands for.
#[inline]
fn unp16(p: u16) -> u32 {
    if p == u16::MAX {
        NIL
    } else {
        u32::from(p)
    }
}

/// Internal node: a cut and two children (tagged refs: low bit 1 = leaf).
/// 24 bytes: the walks are bound by memory traffic, so fields are narrow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Internal {
    cut: f64,
    left: u32,
    right: u32,
    parent: u16,
    dim: u16,
    /// Points in the left subtree (kept here so a walk reads both children's
    /// masses without touching the sibling).
    lmass: u16,
    /// Points in the right subtree.
    rmass: u16,
}

impl Internal {
    #[inline]
    fn mass(&self) -> u32 {
        u32::from(self.lmass) + u32::from(self.rmass)
    }

    #[inline]
    fn parent(&self) -> u32 {
        unp16(self.parent)
    }

    /// Adds `delta` to the side holding `child`.
    #[inline]
    fn add(&mut self, child: u32, delta: i16) {
        let m = if self.left == child {
            &mut self.lmass
        } else {
            &mut self.rmass
        };
        *m = m.wrapping_add_signed(delta);
    }
}

/// Leaf: one distinct point (its newest copy) and how many copies it holds.
/// `point` keeps the low 32 bits of the time: the ring's length is a power of
/// two, so they address the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Leaf {
    point: u32,
    mass: u16,
    parent: u16,
}

impl Leaf {
    #[inline]
    fn point(&self) -> u64 {
        u64::from(self.point)
    }

    #[inline]
    fn parent(&self) -> u32 {
        unp16(self.parent)
    }
}

/// Recent inputs: the point of time `t` is read from here.
struct Points<'a> {
    ring: &'a [f64],
    cap: u64,
    d: usize,
    shingle: usize,
}

impl Points<'_> {
    #[inline]
    fn get(&self, t: u64, out: &mut [f64]) {
        let first = t.wrapping_add(1).wrapping_sub(self.shingle as u64);
        let mut slot = (first % self.cap) as usize;
        let cap = self.cap as usize;
        let mut o = 0;
        for _ in 0..self.shingle {
            let src = &self.ring[slot * self.d..(slot + 1) * self.d];
            for &v in src {
                out[o] = v;
                o += 1;
            }
            slot += 1;
            if slot == cap {
                slot = 0;
            }
        }
    }
}

/// One random cut tree and its FIFO sample. Snapshots hold only the shape,
/// the cuts and the sampled times ([`TreeWire`]); leaves, masses, parents and
/// boxes are rebuilt from the ring on the first update after a restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "TreeWire", into = "TreeWire")]
struct Tree {
    root: u32,
    nodes: Vec<Internal>,
    leaves: Vec<Leaf>,
    free_nodes: Vec<u32>,
    free_leaves: Vec<u32>,
    /// Times of the sampled points, oldest first.
    queue: VecDeque<u64>,
    /// Bounding boxes of internal nodes (`lo` then `hi`, `2 · dims` values
    /// each), in `f32` rounded outward so they always contain their points
    /// (half the memory traffic of `f64`; a box is only ever a superset)
    /// each): derived from the points, rebuilt after a restore.
    #[serde(skip)]
    boxes: Cache,
    /// False after a restore until leaves, masses and boxes are rebuilt.
    #[serde(skip)]
    ready: bool,
}

/// The snapshot form of a [`Tree`]: about `9 · sample_size` bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TreeWire {
    /// Preorder shape: 0 = leaf, `dim + 1` = internal node cutting `dim`.
    shape: Vec<u32>,
    /// Cut values of the internal nodes, in preorder.
    cuts: Vec<f64>,
    /// Oldest sampled time.
    first: u64,
    /// Gaps between consecutive sampled times.
    gaps: Vec<u64>,
}

impl From<&Tree> for TreeWire {
    fn from(t: &Tree) -> TreeWire {
        let mut w = TreeWire {
            shape: Vec::with_capacity(t.leaves.len() * 2),
            cuts: Vec::with_capacity(t.nodes.len()),
            first: t.queue.front().copied().unwrap_or(0),
            gaps: t
                .queue
                .iter()
                .zip(t.queue.iter().skip(1))
                .map(|(a, b)| b - a)
                .collect(),
        };
        if t.root == NIL {
            return w;
        }
        let mut stack = vec![t.root];
        while let Some(r) = stack.pop() {
            if is_leaf(r) {
                w.shape.push(0);
            } else {
                let n = &t.nodes[ix(r)];
                w.shape.push(u32::from(n.dim) + 1);
                w.cuts.push(n.cut);
                stack.push(n.right);
                stack.push(n.left);
            }
        }
        w
    }
}

impl From<Tree> for TreeWire {
    fn from(t: Tree) -> TreeWire {
        TreeWire::from(&t)
    }
}

impl TryFrom<TreeWire> for Tree {
    type Error = String;

    fn try_from(w: TreeWire) -> Result<Tree, String> {
        let mut t = Tree::new(w.shape.len() / 2 + 1);
        t.ready = false;
        let mut queue_t = w.first;
        if !w.shape.is_empty() {
            t.queue.push_back(queue_t);
            for g in &w.gaps {
                queue_t = queue_t.checked_add(*g).ok_or("rcf: sample time overflow")?;
                t.queue.push_back(queue_t);
            }
        }
        // Pending child slots: (parent node, is left); NIL parent = root.
        let mut slots = vec![(NIL, true)];
        let mut cuts = w.cuts.iter();
        for &tag in &w.shape {
            let (parent, left) = slots.pop().ok_or("rcf: malformed tree shape")?;
            let r = if tag == 0 {
                t.leaves.push(Leaf {
                    point: 0,
                    mass: 0,
                    parent: p16(parent),
                });
                leaf_ref(t.leaves.len() - 1)
            } else {
                let cut = *cuts.next().ok_or("rcf: missing cut")?;
                let dim = u16::try_from(tag - 1).map_err(|_| "rcf: dimension out of range")?;
                t.nodes.push(Internal {
                    left: NIL,
                    right: NIL,
                    parent: p16(parent),
                    dim,
                    cut,
                    lmass: 0,
                    rmass: 0,
                });
                let i = t.nodes.len() - 1;
                slots.push((i as u32, false));
                slots.push((i as u32, true));
                node_ref(i)
            };
            if parent == NIL {
                t.root = r;
            } else if left {
                t.nodes[parent as usize].left = r;
            } else {
                t.nodes[parent as usize].right = r;
            }
        }
        if !slots.is_empty() && !w.shape.is_empty() {
            return Err("rcf: truncated tree shape".into());
        }
        if t.leaves.len() > t.queue.len() {
            return Err("rcf: more leaves than sampled points".into());
        }
        Ok(t)
    }
}

impl PartialEq for Tree {
    fn eq(&self, other: &Tree) -> bool {
        TreeWire::from(self) == TreeWire::from(other)
    }
}

/// Derived data left out of snapshots and of equality.
#[derive(Debug, Clone, Default)]
struct Cache(Vec<f32>);

impl PartialEq for Cache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Per-update buffers.
#[derive(Debug, Clone, Default)]
struct Scratch {
    clean: Vec<f64>,
    p: Vec<f64>,
    q: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    w: Vec<f64>,
    attr: Vec<f64>,
    feat: Vec<f64>,
    p32: Vec<f32>,
    w32: Vec<f32>,
    g32: Vec<f32>,
}

impl PartialEq for Scratch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Tree {
    fn new(sample: usize) -> Tree {
        Tree {
            root: NIL,
            nodes: Vec::with_capacity(sample),
            leaves: Vec::with_capacity(sample),
            free_nodes: Vec::new(),
            free_leaves: Vec::new(),
            queue: VecDeque::with_capacity(sample + 1),
            boxes: Cache::default(),
            ready: true,
        }
    }

    fn set_parent(&mut self, r: u32, parent: u32) {
        if is_leaf(r) {
            self.leaves[ix(r)].parent = p16(parent);
        } else {
            self.nodes[ix(r)].parent = p16(parent);
        }
    }

    fn replace_child(&mut self, parent: u32, old: u32, new: u32) {
        if parent == NIL {
            self.root = new;
        } else {
            let n = &mut self.nodes[parent as usize];
            if n.left == old {
                n.left = new;
            } else {
                n.right = new;
            }
        }
    }

    fn alloc_leaf(&mut self, leaf: Leaf) -> usize {
        if let Some(i) = self.free_leaves.pop() {
            self.leaves[i as usize] = leaf;
            i as usize
        } else {
            self.leaves.push(leaf);
            self.leaves.len() - 1
        }
    }

    fn alloc_node(&mut self, node: Internal, dims: usize) -> usize {
        if let Some(i) = self.free_nodes.pop() {
            self.nodes[i as usize] = node;
            i as usize
        } else {
            self.nodes.push(node);
            self.boxes.0.resize(self.nodes.len() * 2 * dims, 0.0);
            self.nodes.len() - 1
        }
    }

    /// Unions the box of `r` into `lo`/`hi`.
    fn union_into(
        &self,
        r: u32,
        dims: usize,
        pts: &Points,
        q: &mut [f64],
        lo: &mut [f64],
        hi: &mut [f64],
    ) {
        if is_leaf(r) {
            pts.get(self.leaves[ix(r)].point(), q);
            for j in 0..dims {
                lo[j] = lo[j].min(f64::from(down(q[j])));
                hi[j] = hi[j].max(f64::from(up(q[j])));
            }
        } else {
            let b = &self.boxes.0[ix(r) * 2 * dims..(ix(r) + 1) * 2 * dims];
            for j in 0..dims {
                lo[j] = lo[j].min(f64::from(b[j]));
                hi[j] = hi[j].max(f64::from(b[dims + j]));
            }
        }
    }

    /// Recomputes the box of internal node `n` from its children.
    /// Returns whether the box changed.
    fn refresh_box(&mut self, n: usize, dims: usize, pts: &Points, sc: &mut Scratch) -> bool {
        sc.lo.iter_mut().for_each(|v| *v = f64::INFINITY);
        sc.hi.iter_mut().for_each(|v| *v = f64::NEG_INFINITY);
        let (l, r) = (self.nodes[n].left, self.nodes[n].right);
        self.union_into(l, dims, pts, &mut sc.q, &mut sc.lo, &mut sc.hi);
        self.union_into(r, dims, pts, &mut sc.q, &mut sc.lo, &mut sc.hi);
        let b = &mut self.boxes.0[n * 2 * dims..(n + 1) * 2 * dims];
        let mut fresh = [0.0f32; 2 * MAX_INLINE_DIMS];
        if 2 * dims <= fresh.len() {
            let fresh = &mut fresh[..2 * dims];
            store_box(fresh, &sc.lo, &sc.hi);
            if fresh == b {
                return false;
            }
            b.copy_from_slice(fresh);
        } else {
            store_box(b, &sc.lo, &sc.hi);
        }
        true
    }

    /// Rebuilds leaves, masses and boxes from the shape and the sampled
    /// times (after a restore): each sampled point is routed to its leaf, which
    /// keeps the newest copy, exactly as live insertion does.
    fn restore_derived(&mut self, dims: usize, pts: &Points, sc: &mut Scratch) {
        let dims_ok = self
            .nodes
            .iter()
            .all(|n| (n.dim as usize) < dims && n.left != NIL && n.right != NIL);
        if !dims_ok {
            // A snapshot that does not fit this forest: start the tree over.
            *self = Tree::new(self.queue.capacity());
            return;
        }
        self.nodes.iter_mut().for_each(|n| {
            n.lmass = 0;
            n.rmass = 0;
        });
        self.leaves.iter_mut().for_each(|l| l.mass = 0);
        for k in 0..self.queue.len() {
            let t = self.queue[k];
            pts.get(t, &mut sc.p);
            let mut cur = self.root;
            while cur != NIL && !is_leaf(cur) {
                let node = &mut self.nodes[ix(cur)];
                cur = if sc.p[node.dim as usize] <= node.cut {
                    node.lmass += 1;
                    node.left
                } else {
                    node.rmass += 1;
                    node.right
                };
            }
            if cur != NIL {
                let leaf = &mut self.leaves[ix(cur)];
                leaf.mass += 1;
                leaf.point = t as u32;
            }
        }
        self.rebuild_boxes(dims, pts, sc);
        self.ready = true;
    }

    /// Rebuilds every box bottom-up.
    fn rebuild_boxes(&mut self, dims: usize, pts: &Points, sc: &mut Scratch) {
        self.boxes.0.clear();
        self.boxes.0.resize(self.nodes.len() * 2 * dims, 0.0);
        if self.root == NIL || is_leaf(self.root) {
            return;
        }
        // Post-order without recursion: push (node, children done).
        let mut stack = vec![(ix(self.root), false)];
        while let Some((n, done)) = stack.pop() {
            if done {
                self.refresh_box(n, dims, pts, sc);
                continue;
            }
            stack.push((n, true));
            for c in [self.nodes[n].left, self.nodes[n].right] {
                if !is_leaf(c) {
                    stack.push((ix(c), false));
                }
            }
        }
    }

    /// Draws a cut in the box `lo..hi` with dimensions weighted by `w`.
    /// Returns `None` when the box is a single point.
    fn draw_cut(lo: &[f64], hi: &[f64], w: &[f64], rng: &mut SplitMix64) -> Option<(usize, f64)> {
        let weighted: f64 = (0..lo.len()).map(|j| w[j] * (hi[j] - lo[j])).sum();
        // If weighted ranges under- or overflowed (subnormal differences, a
        // huge scale ratio), fall back to unit weights for this cut: two
        // distinct f64 values always differ by a positive amount.
        let unit = !(weighted > 0.0 && weighted.is_finite());
        let weight = |j: usize| if unit { 1.0 } else { w[j] };
        let total = if unit {
            (0..lo.len()).map(|j| hi[j] - lo[j]).sum()
        } else {
            weighted
        };
        if !(total > 0.0 && total.is_finite()) {
            return None;
        }
        let mut r = rng.next_f64() * total;
        let mut last = 0;
        for j in 0..lo.len() {
            let span = weight(j) * (hi[j] - lo[j]);
            if span <= 0.0 {
                continue;
            }
            last = j;
            if r < span {
                let v = lo[j] + r / weight(j);
                return Some((j, if v < hi[j] { v } else { lo[j] }));
            }
            r -= span;
        }
        // Rounding ran past the end: cut the last dimension with a range.
        Some((last, lo[last]))
    }

    /// Inserts the point of time `t` with values `sc.p`.
    fn insert(
        &mut self,
        t: u64,
        dims: usize,
        pts: &Points,
        rng: &mut SplitMix64,
        sc: &mut Scratch,
    ) {
        let new_leaf = self.alloc_leaf(Leaf {
            point: t as u32,
            mass: 1,
            parent: u16::MAX,
        });
        let new_ref = leaf_ref(new_leaf);
        if self.root == NIL {
            self.root = new_ref;
            return;
        }
        let mut cur = self.root;
        let mut parent = NIL;
        loop {
            if is_leaf(cur) {
                let l = ix(cur);
                pts.get(self.leaves[l].point(), &mut sc.q);
                for j in 0..dims {
                    sc.lo[j] = sc.q[j].min(sc.p[j]);
                    sc.hi[j] = sc.q[j].max(sc.p[j]);
                }
                let cut = if sc.q == sc.p {
                    None
                } else {
                    Self::draw_cut(&sc.lo, &sc.hi, &sc.w, rng)
                };
                match cut {
                    None => {
                        // A duplicate: the leaf keeps its newest copy.
                        self.free_leaves.push(new_leaf as u32);
                        let leaf = &mut self.leaves[l];
                        leaf.mass += 1;
                        leaf.point = t as u32;
                    }
                    Some((dim, cut)) => {
                        let mass = self.leaves[l].mass;
                        self.split_at(cur, parent, new_ref, dim, cut, mass, dims, sc);
                    }
                }
                return;
            }
            let n = ix(cur);
            let b = &self.boxes.0[n * 2 * dims..(n + 1) * 2 * dims];
            for j in 0..dims {
                sc.lo[j] = f64::from(b[j]).min(sc.p[j]);
                sc.hi[j] = f64::from(b[dims + j]).max(sc.p[j]);
            }
            if let Some((dim, cut)) = Self::draw_cut(&sc.lo, &sc.hi, &sc.w, rng) {
                let (blo, bhi) = (f64::from(b[dim]), f64::from(b[dims + dim]));
                let p = sc.p[dim];
                let separates = (p < blo && cut < blo) || (p > bhi && cut >= bhi);
                if separates {
                    // At most `sample_size <= MAX_SAMPLE` points: fits.
                    let mass = self.nodes[n].mass() as u16;
                    self.split_at(cur, parent, new_ref, dim, cut, mass, dims, sc);
                    return;
                }
            }
            // Descend: this node gains the point (its box grows only where
            // the point lies outside).
            let b = &mut self.boxes.0[n * 2 * dims..(n + 1) * 2 * dims];
            let (blo, bhi) = b.split_at_mut(dims);
            for j in 0..dims {
                let p = sc.p[j];
                if p < f64::from(blo[j]) {
                    blo[j] = down(p);
                }
                if p > f64::from(bhi[j]) {
                    bhi[j] = up(p);
                }
            }
            let node = &mut self.nodes[n];
            parent = n as u32;
            cur = if sc.p[node.dim as usize] <= node.cut {
                node.lmass += 1;
                node.left
            } else {
                node.rmass += 1;
                node.right
            };
        }
    }

    /// Puts a new internal node with box `sc.lo..sc.hi` above `cur` (which
    /// holds `mass` points), with the new leaf on the side of the cut where
    /// the new point `sc.p` falls.
    #[allow(clippy::too_many_arguments)]
    fn split_at(
        &mut self,
        cur: u32,
        parent: u32,
        new_ref: u32,
        dim: usize,
        cut: f64,
        mass: u16,
        dims: usize,
        sc: &Scratch,
    ) {
        let (left, right, lmass, rmass) = if sc.p[dim] <= cut {
            (new_ref, cur, 1, mass)
        } else {
            (cur, new_ref, mass, 1)
        };
        let n = self.alloc_node(
            Internal {
                left,
                right,
                parent: p16(parent),
                dim: dim as u16,
                cut,
                lmass,
                rmass,
            },
            dims,
        );
        let b = &mut self.boxes.0[n * 2 * dims..(n + 1) * 2 * dims];
        store_box(b, &sc.lo, &sc.hi);
        self.replace_child(parent, cur, node_ref(n));
        self.set_parent(cur, n as u32);
        self.set_parent(new_ref, n as u32);
    }

    /// Deletes one copy of the point of time `t`.
    fn delete(&mut self, t: u64, dims: usize, pts: &Points, sc: &mut Scratch) {
        pts.get(t, &mut sc.p);
        let mut cur = self.root;
        if cur == NIL {
            return;
        }
        while !is_leaf(cur) {
            let node = &self.nodes[ix(cur)];
            cur = if sc.p[node.dim as usize] <= node.cut {
                node.left
            } else {
                node.right
            };
        }
        let l = ix(cur);
        pts.get(self.leaves[l].point(), &mut sc.q);
        if sc.q != sc.p {
            // Invariant broken (cannot happen: every sampled point routes to
            // its own leaf); leave the tree as it is rather than panic.
            debug_assert!(false, "rcf: sampled point not found");
            return;
        }
        let parent = self.leaves[l].parent();
        if self.leaves[l].mass > 1 {
            self.leaves[l].mass -= 1;
            let (mut c, mut g) = (cur, parent);
            while g != NIL {
                self.nodes[g as usize].add(c, -1);
                c = node_ref(g as usize);
                g = self.nodes[g as usize].parent();
            }
            return;
        }
        self.free_leaves.push(l as u32);
        if parent == NIL {
            self.root = NIL;
            return;
        }
        let pn = self.nodes[parent as usize];
        let sibling = if pn.left == cur { pn.right } else { pn.left };
        self.replace_child(pn.parent(), node_ref(parent as usize), sibling);
        self.set_parent(sibling, pn.parent());
        self.free_nodes.push(parent);
        // Ancestors lose a point; their boxes shrink only up to the first
        // one whose box the removed point did not define.
        let (mut c, mut g) = (sibling, pn.parent());
        let mut shrinking = true;
        while g != NIL {
            self.nodes[g as usize].add(c, -1);
            if shrinking {
                shrinking = self.refresh_box(g as usize, dims, pts, sc);
            }
            c = node_ref(g as usize);
            g = self.nodes[g as usize].parent();
        }
    }

    /// One step of the expected-CoDisp walk of `sc.p` (see the module docs):
    /// processes the node at `w.cur`, adds per-dimension attribution to
    /// `sc.attr`, and returns true when the walk is over.
    #[inline]
    fn step(&self, w: &mut ScoreWalk, dims: usize, pts: &Points, sc: &mut Scratch) -> bool {
        let cur = w.cur;
        if is_leaf(cur) {
            let leaf = &self.leaves[ix(cur)];
            pts.get(leaf.point(), &mut sc.q);
            let mut gap = 0.0;
            for j in 0..dims {
                sc.q[j] = sc.w[j] * (sc.p[j] - sc.q[j]).abs();
                gap += sc.q[j];
            }
            if gap > 0.0 {
                let c = w.survive * f64::from(leaf.mass).max(w.ratio);
                w.e += c;
                let k = c / gap;
                for j in 0..dims {
                    sc.attr[j] += k * sc.q[j];
                }
            } else {
                w.e += w.survive * w.ratio;
            }
            return true;
        }
        let n = ix(cur);
        let node = &self.nodes[n];
        let b = &self.boxes.0[n * 2 * dims..(n + 1) * 2 * dims];
        let (lo, hi) = b.split_at(dims);
        let (range, gap) = box_gap(lo, hi, &sc.p32, &sc.w32, &mut sc.g32);
        let (range, gap) = (f64::from(range), f64::from(gap));
        if gap > 0.0 {
            // An infinite gap (values beyond f32) separates for sure.
            let prob = if gap.is_finite() && range.is_finite() {
                gap / (range + gap)
            } else if gap.is_infinite() {
                1.0
            } else {
                0.0
            };
            let c = w.survive * prob * f64::from(node.mass()).max(w.ratio);
            w.e += c;
            let k = if gap.is_finite() { c / gap } else { 0.0 };
            for (a, g) in sc.attr.iter_mut().zip(&sc.g32) {
                *a += k * f64::from(*g);
            }
            w.survive *= 1.0 - prob;
            if w.survive < 1e-12 {
                return true;
            }
        }
        let (child, cm, sm) = if sc.p[node.dim as usize] <= node.cut {
            (node.left, node.lmass, node.rmass)
        } else {
            (node.right, node.rmass, node.lmass)
        };
        w.ratio = w.ratio.max(f64::from(sm) / (f64::from(cm) + 1.0));
        w.cur = child;
        false
    }
}

/// Where one tree's scoring walk is.
#[derive(Debug, Clone, Copy)]
struct ScoreWalk {
    cur: u32,
    survive: f64,
    ratio: f64,
    e: f64,
}

/// Random Cut Forest detector state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomCutForest {
    params: RcfParams,
    shingle: u32,
    stats: FeatureStats,
    /// Last `cap` inputs, `d` values each, at slot `t % cap`.
    ring: Vec<f64>,
    cap: u64,
    /// Inputs seen (the time of the next one).
    t: u64,
    trees: Vec<Tree>,
    rng: SplitMix64,
    #[serde(skip)]
    scratch: Box<Scratch>,
}

impl RandomCutForest {
    /// A fresh forest for `d` features; `params` must be validated.
    /// Node fields are 16-bit: at most [`MAX_DIMS`] dimensions are used (the
    /// shingle shrinks first; features beyond 65,535 are ignored) and the
    /// sample is at most [`MAX_SAMPLE`].
    pub fn new(d: usize, mut params: RcfParams, seed: u64) -> Self {
        params.sample_size = params.sample_size.clamp(2, MAX_SAMPLE);
        let d = d.clamp(1, MAX_DIMS);
        let shingle = params.shingle_for(d).min(MAX_DIMS / d).max(1);
        let memory = f64::from(params.sample_size) / params.sample_rate.clamp(1e-6, 1.0);
        // A power of two, so a leaf's 32-bit time addresses the right slot.
        let cap = ((RING_FACTOR * memory).ceil() as u64)
            .max(2 * u64::from(params.sample_size))
            .saturating_add(shingle as u64)
            .next_power_of_two();
        RandomCutForest {
            params,
            shingle: shingle as u32,
            stats: FeatureStats::new(d),
            ring: vec![0.0; cap as usize * d],
            cap,
            t: 0,
            trees: (0..params.trees)
                .map(|_| Tree::new(params.sample_size as usize))
                .collect(),
            rng: SplitMix64::new(seed),
            scratch: Box::default(),
        }
    }

    /// Dimensions of a shingled point.
    fn dims(&self) -> usize {
        self.shingle as usize * self.stats.dim()
    }
}

impl OnlineDetector for RandomCutForest {
    fn update(&mut self, x: &[f64], _threshold: f64, explain: &mut Vec<FeatureExplanation>) -> f64 {
        let d = self.stats.dim();
        let dims = self.dims();
        let s = self.shingle as usize;
        let mut sc = std::mem::take(&mut self.scratch);
        for v in [
            &mut sc.p,
            &mut sc.q,
            &mut sc.lo,
            &mut sc.hi,
            &mut sc.w,
            &mut sc.attr,
        ] {
            v.clear();
            v.resize(dims, 0.0);
        }
        self.stats.sanitize(x, &mut sc.clean);
        // Scale weights from the statistics before this point.
        for j in 0..d {
            let sd = self.stats.sd(j);
            let w = if sd > 0.0 && sd.is_finite() {
                1.0 / sd
            } else {
                1.0
            };
            for k in 0..s {
                sc.w[k * d + j] = w;
            }
        }
        let t = self.t;
        let pts_ring = &mut self.ring;
        // Forget points whose oldest input is about to be overwritten.
        if t >= self.cap {
            let oldest_kept = t - self.cap + s as u64; // first point time still readable after the write
            let pts = Points {
                ring: pts_ring,
                cap: self.cap,
                d,
                shingle: s,
            };
            for tree in &mut self.trees {
                if !tree.ready {
                    tree.restore_derived(dims, &pts, &mut sc);
                }
                while tree.queue.front().is_some_and(|&f| f < oldest_kept) {
                    if let Some(f) = tree.queue.pop_front() {
                        tree.delete(f, dims, &pts, &mut sc);
                    }
                }
            }
        }
        let slot = (t % self.cap) as usize * d;
        pts_ring[slot..slot + d].copy_from_slice(&sc.clean);
        let pts = Points {
            ring: &self.ring,
            cap: self.cap,
            d,
            shingle: s,
        };
        let mut raw = 0.0;
        if t + 1 >= s as u64 {
            for tree in &mut self.trees {
                if !tree.ready {
                    tree.restore_derived(dims, &pts, &mut sc);
                }
            }
            pts.get(t, &mut sc.p);
            sc.p32.clear();
            sc.p32.extend(sc.p.iter().map(|&v| v as f32));
            sc.w32.clear();
            sc.w32.extend(sc.w.iter().map(|&v| v as f32));
            sc.g32.clear();
            sc.g32.resize(dims, 0.0);
            let mut total = 0.0;
            for tree in self.trees.iter().filter(|t| t.root != NIL) {
                let mut w = ScoreWalk {
                    cur: tree.root,
                    survive: 1.0,
                    ratio: 0.0,
                    e: 0.0,
                };
                while !tree.step(&mut w, dims, &pts, &mut sc) {}
                total += w.e;
            }
            raw = total / self.trees.len().max(1) as f64;
            let full = self.params.sample_size as usize;
            for tree in &mut self.trees {
                let accept =
                    tree.queue.len() < full || self.rng.next_f64() < self.params.sample_rate;
                if !accept {
                    continue;
                }
                if tree.queue.len() >= full {
                    if let Some(f) = tree.queue.pop_front() {
                        tree.delete(f, dims, &pts, &mut sc);
                    }
                }
                pts.get(t, &mut sc.p);
                tree.insert(t, dims, &pts, &mut self.rng, &mut sc);
                tree.queue.push_back(t);
            }
        }
        sc.feat.clear();
        sc.feat.resize(d, 0.0);
        for (k, a) in sc.attr.iter().enumerate() {
            sc.feat[k % d] += a;
        }
        self.stats.explain(&sc.feat, explain);
        self.stats.learn(&sc.clean);
        self.t += 1;
        self.scratch = sc;
        if raw.is_finite() {
            raw.max(0.0)
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
            .map(|_| {
                vec![
                    r.next_gaussian(),
                    10.0 + 5.0 * r.next_gaussian(),
                    r.next_f64(),
                ]
            })
            .collect()
    }

    fn small() -> RcfParams {
        RcfParams {
            trees: 20,
            sample_size: 64,
            sample_rate: 0.2,
            ..RcfParams::default()
        }
    }

    #[test]
    fn flags_an_obvious_outlier_and_attributes_it() {
        let mut d = RandomCutForest::new(3, RcfParams::default(), 1);
        let normal = run(&mut d, &blob(1500, 2));
        let mut ex = Vec::new();
        let out = d.update(&[8.0, 10.0, 0.5], 0.0, &mut ex);
        let mut tail = normal[500..].to_vec();
        tail.sort_by(f64::total_cmp);
        let max = tail[tail.len() - 1];
        assert!(out > max, "outlier {out} vs max normal {max}");
        let total: f64 = ex.iter().map(|e| e.contribution).sum();
        assert!((total - 1.0).abs() < 1e-9, "{ex:?}");
        assert!(ex[0].contribution > 0.8, "{ex:?}");
    }

    #[test]
    fn shingled_univariate_catches_a_broken_pattern() {
        let mut d = RandomCutForest::new(1, RcfParams::default(), 3);
        let series: Vec<Vec<f64>> = (0..3000)
            .map(|i| vec![(i as f64 * std::f64::consts::TAU / 25.0).sin()])
            .collect();
        let normal = run(&mut d, &series);
        let max = normal[1000..].iter().cloned().fold(0.0, f64::max);
        // A value inside the normal range but out of phase.
        let mut ex = Vec::new();
        let out = d.update(&[-0.9], 0.0, &mut ex);
        let _ = d.update(&[0.9], 0.0, &mut ex);
        assert!(out > 2.0 * max, "break {out} vs max normal {max}");
    }

    #[test]
    fn snapshot_restore_continue_identical_and_seeded() {
        let pts = blob(4000, 3);
        let mut a = RandomCutForest::new(3, small(), 9);
        let mut b = RandomCutForest::new(3, small(), 9);
        let sa = run(&mut a, &pts[..1200]);
        assert_eq!(sa, run(&mut b, &pts[..1200]));
        let bytes = postcard::to_stdvec(&b).unwrap();
        let mut b: RandomCutForest = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(run(&mut a, &pts[1200..]), run(&mut b, &pts[1200..]));
        let mut c = RandomCutForest::new(3, small(), 10);
        assert_ne!(sa, run(&mut c, &pts[..1200]));
        // Early snapshots: empty trees, single leaves, a shingle not yet full.
        for cut in [0, 1, 2, 5, 70] {
            let params = RcfParams {
                shingle: 4,
                ..small()
            };
            let mut a = RandomCutForest::new(3, params, 4);
            let mut b = a.clone();
            run(&mut a, &pts[..cut]);
            run(&mut b, &pts[..cut]);
            let mut b: RandomCutForest =
                postcard::from_bytes(&postcard::to_stdvec(&b).unwrap()).unwrap();
            assert_eq!(
                run(&mut a, &pts[cut..400]),
                run(&mut b, &pts[cut..400]),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn survives_hostile_input_and_ring_wraparound() {
        let mut d = RandomCutForest::new(2, small(), 5);
        let mut r = SplitMix64::new(1);
        let mut ex = Vec::new();
        for i in 0..6000 {
            let x = match i % 331 {
                0 => [f64::NAN, f64::INFINITY],
                1 => [f64::MAX, -f64::MAX],
                2 => [1e-310, 0.0],
                3..=5 => [1.0, 1.0],
                _ => [r.next_f64(), (r.next_f64() * 4.0).floor()],
            };
            let s = d.update(&x, 0.0, &mut ex);
            for tree in &d.trees {
                if tree.root != NIL && !is_leaf(tree.root) {
                    assert_eq!(
                        tree.nodes[ix(tree.root)].mass() as usize,
                        tree.queue.len(),
                        "at {i} {x:?}"
                    );
                }
            }
            assert!(s.is_finite() && s >= 0.0, "{s}");
            assert!(ex.iter().all(|e| e.contribution.is_finite()));
        }
        for tree in &d.trees {
            assert_eq!(tree.queue.len(), 64);
            if !is_leaf(tree.root) {
                assert_eq!(tree.nodes[ix(tree.root)].mass(), 64);
            }
        }
        assert!(RcfParams {
            sample_rate: 0.0,
            ..small()
        }
        .validate()
        .is_err());
    }
}
