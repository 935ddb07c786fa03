//! The search tree of Monte Carlo tree search: PUCT (AlphaZero) and UCT (pure MCTS).
//!
//! The tree knows nothing about environments: it stores, per node, the action that led
//! to it, the prior, the visits, the value sum, the reward of the step into it and whose
//! turn it is there. A driver replays a leaf's actions on a copy of the root env, then
//! calls [`Tree::expand`] and [`Tree::backup`] with what the env and the evaluator said.
//!
//! Values. `value_sum` of a node is from the point of view of the player who moved into
//! it (the parent's player to move), so a parent picks the child with the best mean
//! value for itself. A leaf's value is given from the point of view of the player to
//! move at the leaf; backing up, it is negated wherever the player changes (two-player
//! zero-sum games) and kept where it does not (single-player puzzles, or a player that
//! moves twice in a row). The reward of each step (for the player who moved) is added on
//! the way up, so in a puzzle a node's value is the return from its parent onwards.

use crate::rng::Rng;

/// No node: an unexpanded node's `first_child`.
const NONE: u32 = u32::MAX;

/// How children are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// AlphaZero's PUCT: `Q + c * P * sqrt(N) / (1 + n)`, unvisited children valued `fpu`.
    Puct { c_puct: f32, fpu: f32 },
    /// UCT (pure MCTS): unvisited children first (in random order), then
    /// `Q + c * sqrt(ln N / n)`.
    Uct { c: f32 },
}

/// What one replay of the env said on reaching a node of a path.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Step {
    /// The reward of the step into the node, for the player who made it.
    pub reward: f32,
    /// The player to move at the node.
    pub player: u32,
    /// The episode ended there.
    pub terminal: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Node {
    /// The action that led here (from the parent).
    pub action: u32,
    pub prior: f32,
    pub visits: u32,
    /// Leaves being evaluated below this node (virtual loss): each counts as a visit that lost.
    pub pending: u32,
    /// Sum of backed-up values, from the point of view of the player who moved into this node.
    pub value_sum: f64,
    /// The reward of the step into this node, for the player who made it.
    pub reward: f32,
    /// The player to move here; known once the node has been reached by the env.
    pub player: u32,
    pub first_child: u32,
    pub num_children: u32,
    /// The episode ended here (terminated or truncated).
    pub terminal: bool,
    /// The env has been replayed to this node (its reward, player and ending are known).
    pub reached: bool,
}

impl Node {
    fn new(action: u32, prior: f32) -> Node {
        Node { action, prior, visits: 0, pending: 0, value_sum: 0.0, reward: 0.0, player: 0, first_child: NONE,
               num_children: 0, terminal: false, reached: false }
    }

    pub fn expanded(&self) -> bool {
        self.first_child != NONE
    }

    /// Mean value for the player who moved here; `None` before any visit.
    pub fn q(&self) -> Option<f64> {
        (self.visits > 0).then(|| self.value_sum / self.visits as f64)
    }
}

/// What UCT needs of a visit count `n`: `1 / n`, `1 / sqrt(n)` and `sqrt(ln n)`.
#[derive(Clone, Copy, Debug)]
struct Scale {
    inv: f64,
    inv_sqrt: f64,
    sqrt_ln: f64,
}

impl Scale {
    fn of(n: u32) -> Scale {
        let n = n as f64;
        Scale { inv: 1.0 / n, inv_sqrt: 1.0 / n.sqrt(), sqrt_ln: n.ln().max(0.0).sqrt() }
    }
}

/// Counts below this come from a table (96 kB, made once per process).
const SCALES: usize = 1 << 12;

fn scales() -> &'static [Scale] {
    static TABLE: std::sync::OnceLock<Box<[Scale]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..SCALES as u32).map(Scale::of).collect())
}

#[inline(always)]
fn scale(table: &[Scale], n: u32) -> Scale {
    match table.get(n as usize) {
        Some(s) => *s,
        None => Scale::of(n),
    }
}

/// A search tree; node 0 is the root.
#[derive(Clone, Debug)]
pub struct Tree {
    pub nodes: Vec<Node>,
    pub rule: Rule,
}

impl Tree {
    pub fn new(rule: Rule) -> Tree {
        let mut root = Node::new(0, 1.0);
        root.reached = true;
        Tree { nodes: vec![root], rule }
    }

    /// Start over with an empty root.
    pub fn clear(&mut self) {
        self.nodes.truncate(1);
        let mut root = Node::new(0, 1.0);
        root.reached = true;
        self.nodes[0] = root;
    }

    pub fn root(&self) -> &Node {
        &self.nodes[0]
    }

    pub fn children(&self, n: u32) -> &[Node] {
        let node = &self.nodes[n as usize];
        if !node.expanded() {
            return &[];
        }
        &self.nodes[node.first_child as usize..(node.first_child + node.num_children) as usize]
    }

    /// Descend from the root to a node that is unexpanded or terminal, writing the node ids
    /// of the path (root first) into `path`. Each node of the path gets a pending visit
    /// (virtual loss) until [`Tree::backup`] or [`Tree::cancel`].
    pub fn select(&mut self, rng: &mut Rng, path: &mut Vec<u32>) {
        path.clear();
        let mut n = 0u32;
        loop {
            path.push(n);
            self.nodes[n as usize].pending += 1;
            let node = self.nodes[n as usize];
            if node.terminal || !node.expanded() {
                return;
            }
            n = self.pick_child(n, rng);
        }
    }

    fn pick_child(&self, n: u32, rng: &mut Rng) -> u32 {
        let node = &self.nodes[n as usize];
        let first = node.first_child;
        let kids = self.children(n);
        match self.rule {
            Rule::Puct { c_puct, fpu } => {
                let total = (node.visits + node.pending) as f64;
                let sqrt_n = total.max(1.0).sqrt();
                let mut best = (f64::NEG_INFINITY, 0u32);
                for (k, c) in kids.iter().enumerate() {
                    let n_c = (c.visits + c.pending) as f64;
                    // Pending visits count as losses (-1) for the player choosing.
                    let q = if n_c > 0.0 { (c.value_sum - c.pending as f64) / n_c } else { fpu as f64 };
                    let u = c_puct as f64 * c.prior as f64 * sqrt_n / (1.0 + n_c);
                    if q + u > best.0 {
                        best = (q + u, k as u32);
                    }
                }
                first + best.1
            }
            Rule::Uct { c } => {
                // One pass scores the visited children and counts the others; a node whose
                // children have all been tried (most of a search's) needs no second pass.
                // `c * sqrt(ln N / n)` is `c * sqrt(ln N) * n^-1/2`, with the per-count
                // factors from a table: no division, root or log per child.
                let table = scales();
                let explore = c as f64 * scale(table, (node.visits + node.pending).max(1)).sqrt_ln;
                let mut best = (f64::NEG_INFINITY, 0u32);
                let mut unvisited = 0u64;
                for (k, kid) in kids.iter().enumerate() {
                    let tried = kid.visits + kid.pending;
                    if tried == 0 {
                        unvisited += 1;
                        continue;
                    }
                    let s = scale(table, tried);
                    let score = (kid.value_sum - kid.pending as f64) * s.inv + explore * s.inv_sqrt;
                    if score > best.0 {
                        best = (score, k as u32);
                    }
                }
                if unvisited > 0 {
                    let mut pick = rng.below(unvisited);
                    for (k, kid) in kids.iter().enumerate() {
                        if kid.visits + kid.pending == 0 {
                            if pick == 0 {
                                return first + k as u32;
                            }
                            pick -= 1;
                        }
                    }
                }
                first + best.1
            }
        }
    }

    /// Record what the env said on reaching node `n`: the mover's reward, whether the
    /// episode ended, and whose turn it is now.
    pub fn reach(&mut self, n: u32, reward: f32, terminal: bool, player: u32) {
        let node = &mut self.nodes[n as usize];
        node.reward = reward;
        node.terminal = terminal;
        node.player = player;
        node.reached = true;
    }

    /// Give node `n` one child per legal action; `priors` (one per action, any scale) are
    /// normalised over the legal ones (uniform when they sum to zero). Returns the number
    /// of children; a node with no legal action stays a leaf.
    pub fn expand(&mut self, n: u32, legal: &[bool], priors: &[f32]) -> usize {
        if self.nodes[n as usize].expanded() {
            return self.nodes[n as usize].num_children as usize;
        }
        let count = legal.iter().filter(|&&m| m).count();
        if count == 0 {
            return 0;
        }
        let total: f64 = legal.iter().zip(priors).filter(|(&m, _)| m).map(|(_, &p)| p.max(0.0) as f64).sum();
        let first = self.nodes.len() as u32;
        for (a, (&m, &p)) in legal.iter().zip(priors).enumerate() {
            if m {
                let prior = if total > 0.0 { (p.max(0.0) as f64 / total) as f32 } else { 1.0 / count as f32 };
                self.nodes.push(Node::new(a as u32, prior));
            }
        }
        let node = &mut self.nodes[n as usize];
        node.first_child = first;
        node.num_children = count as u32;
        count
    }

    /// Back up `value`, the leaf's value for the player to move there (ignored at a
    /// terminal leaf, whose future is worth nothing), along `path` from [`Tree::select`],
    /// removing its pending visits. Rewards, players and the ending are the nodes' own
    /// (what the env said when last replayed to them).
    pub fn backup(&mut self, path: &[u32], value: f64) {
        let steps: Vec<Step> = path.iter().map(|&n| {
            let node = &self.nodes[n as usize];
            Step { reward: node.reward, player: node.player, terminal: node.terminal }
        }).collect();
        self.backup_sampled(path, &steps, value);
    }

    /// [`Tree::backup`] with what one replay of `path` said at each of its nodes: with
    /// chance in the env, the same actions lead to different rewards, turns and endings,
    /// and each simulation backs up its own (open-loop search).
    pub fn backup_sampled(&mut self, path: &[u32], steps: &[Step], value: f64) {
        let leaf = steps.last().copied().unwrap_or_default();
        // `g`: the value from the node below, for `g_player`.
        let mut g = if leaf.terminal { 0.0 } else { value };
        let mut g_player = leaf.player;
        for k in (0..path.len()).rev() {
            let id = path[k] as usize;
            self.nodes[id].pending = self.nodes[id].pending.saturating_sub(1);
            self.nodes[id].visits += 1;
            if k == 0 {
                break;
            }
            let mover = steps[k - 1].player;
            let v = steps[k].reward as f64 + if g_player == mover { g } else { -g };
            self.nodes[id].value_sum += v;
            g = v;
            g_player = mover;
        }
    }

    /// Remove the pending visits of a path that will not be backed up.
    pub fn cancel(&mut self, path: &[u32]) {
        for &id in path {
            let node = &mut self.nodes[id as usize];
            node.pending = node.pending.saturating_sub(1);
        }
    }

    /// Mix Dirichlet(`alpha`) noise into the root's priors: `(1 - frac) P + frac * eta`.
    pub fn add_root_noise(&mut self, alpha: f32, frac: f32, rng: &mut Rng) {
        let root = self.nodes[0];
        if !root.expanded() || frac <= 0.0 {
            return;
        }
        let range = root.first_child as usize..(root.first_child + root.num_children) as usize;
        let noise = dirichlet(alpha as f64, range.len(), rng);
        for (node, eta) in self.nodes[range].iter_mut().zip(noise) {
            node.prior = (1.0 - frac) * node.prior + frac * eta as f32;
        }
    }

    /// Visit counts of the root's children, per action (zero for illegal actions).
    pub fn root_visits(&self, num_actions: usize, out: &mut [f32]) {
        out[..num_actions].iter_mut().for_each(|v| *v = 0.0);
        for c in self.children(0) {
            out[c.action as usize] = c.visits as f32;
        }
    }

    /// The root's value for its player to move: the visit-weighted mean of its children's
    /// values (each from the root player's point of view), or `None` before any visit.
    pub fn root_value(&self) -> Option<f64> {
        let (mut sum, mut n) = (0.0, 0u64);
        for c in self.children(0) {
            sum += c.value_sum;
            n += c.visits as u64;
        }
        (n > 0).then(|| sum / n as f64)
    }

    /// An action from the root's visit counts: the most visited (ties to the higher prior,
    /// then the lower action) when `temperature` is 0, else drawn with probability
    /// proportional to `visits^(1/temperature)`. `None` when the root has no children.
    pub fn choose(&self, temperature: f32, rng: &mut Rng) -> Option<u32> {
        let kids = self.children(0);
        if kids.is_empty() {
            return None;
        }
        let max = kids.iter().map(|c| c.visits).max().unwrap_or(0);
        if temperature <= 0.0 || max == 0 {
            let best = kids.iter().filter(|c| c.visits == max)
                .fold(None::<&Node>, |b, c| match b { Some(b) if b.prior >= c.prior => Some(b), _ => Some(c) });
            return best.map(|c| c.action);
        }
        let weights: Vec<f64> =
            kids.iter().map(|c| (c.visits as f64 / max as f64).powf(1.0 / temperature as f64)).collect();
        let total: f64 = weights.iter().sum();
        let mut u = rng.next_f64() * total;
        for (c, w) in kids.iter().zip(&weights) {
            u -= w;
            if u < 0.0 && *w > 0.0 {
                return Some(c.action);
            }
        }
        kids.iter().rev().find(|c| c.visits > 0).map(|c| c.action)
    }
}

/// A draw from Gamma(`shape`, 1) (Marsaglia and Tsang; shapes below 1 are boosted).
pub fn gamma(shape: f64, rng: &mut Rng) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.next_f64(); // in (0, 1]
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - rng.next_f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A draw from a symmetric Dirichlet(`alpha`) over `n` categories.
pub fn dirichlet(alpha: f64, n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut xs: Vec<f64> = (0..n).map(|_| gamma(alpha, rng)).collect();
    let total: f64 = xs.iter().sum();
    if total > 0.0 {
        xs.iter_mut().for_each(|x| *x /= total);
    } else if n > 0 {
        xs.iter_mut().for_each(|x| *x = 1.0 / n as f64);
    }
    xs
}

/// The masked softmax of `logits` into `out` (zero for illegal actions).
pub fn masked_softmax(logits: &[f32], legal: &[bool], out: &mut [f32]) {
    let max = logits.iter().zip(legal).filter(|(_, &m)| m).map(|(&l, _)| l).fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0f64;
    for ((o, &l), &m) in out.iter_mut().zip(logits).zip(legal) {
        *o = if m && max.is_finite() { ((l - max) as f64).exp() as f32 } else { 0.0 };
        total += *o as f64;
    }
    if total > 0.0 {
        out.iter_mut().for_each(|o| *o = (*o as f64 / total) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn puct() -> Tree {
        Tree::new(Rule::Puct { c_puct: 1.5, fpu: 0.0 })
    }

    #[test]
    fn expansion_keeps_only_legal_actions_and_normalises_priors() {
        let mut t = puct();
        let n = t.expand(0, &[true, false, true, true], &[1.0, 5.0, 1.0, 2.0]);
        assert_eq!(n, 3);
        let kids = t.children(0);
        assert_eq!(kids.iter().map(|c| c.action).collect::<Vec<_>>(), vec![0, 2, 3]);
        assert!((kids.iter().map(|c| c.prior).sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((kids[2].prior - 0.5).abs() < 1e-6);
        let mut t = puct();
        assert_eq!(t.expand(0, &[false, false], &[1.0, 1.0]), 0);
        assert!(!t.root().expanded());
    }

    #[test]
    fn values_change_sign_when_the_player_changes() {
        // Root: player 0 to move. Child (action 1): player 1 to move, valued +1 for player 1.
        let mut t = puct();
        t.expand(0, &[true, true], &[0.5, 0.5]);
        let mut rng = Rng::new(0, 0);
        let mut path = Vec::new();
        t.select(&mut rng, &mut path);
        let leaf = *path.last().unwrap();
        t.reach(leaf, 0.0, false, 1);
        t.backup(&path, 1.0);
        assert_eq!(t.nodes[leaf as usize].q(), Some(-1.0), "good for player 1 is bad for player 0");
        // Same player again (a puzzle, or a second move in a row): no negation, rewards add.
        let mut t = puct();
        t.expand(0, &[true], &[1.0]);
        t.select(&mut rng, &mut path);
        let leaf = *path.last().unwrap();
        t.reach(leaf, -0.25, false, 0);
        t.backup(&path, 1.0);
        assert_eq!(t.nodes[leaf as usize].q(), Some(0.75));
        assert_eq!(t.root_value(), Some(0.75));
    }

    #[test]
    fn terminal_leaves_are_worth_their_reward_only() {
        let mut t = puct();
        t.expand(0, &[true], &[1.0]);
        let mut rng = Rng::new(0, 0);
        let mut path = Vec::new();
        t.select(&mut rng, &mut path);
        let leaf = *path.last().unwrap();
        t.reach(leaf, 1.0, true, 1);
        t.backup(&path, -5.0);
        assert_eq!(t.nodes[leaf as usize].q(), Some(1.0));
        // Selecting again stops at the terminal node.
        t.select(&mut rng, &mut path);
        assert_eq!(*path.last().unwrap(), leaf);
        t.backup(&path, 0.0);
        assert_eq!(t.nodes[leaf as usize].visits, 2);
        assert_eq!(t.root().visits, 2);
    }

    #[test]
    fn puct_prefers_prior_then_value_and_virtual_loss_spreads_leaves() {
        let mut t = puct();
        t.expand(0, &[true, true, true], &[0.1, 0.8, 0.1]);
        let mut rng = Rng::new(0, 0);
        let mut p1 = Vec::new();
        t.select(&mut rng, &mut p1);
        assert_eq!(t.nodes[p1[1] as usize].action, 1);
        let mut p2 = Vec::new();
        t.select(&mut rng, &mut p2);
        assert_ne!(p1[1], p2[1], "a pending leaf is not picked twice at once");
        t.cancel(&p2);
        t.reach(p1[1], 0.0, false, 1);
        t.backup(&p1, 1.0); // good for player 1: bad for the root's player
        t.select(&mut rng, &mut p2);
        assert_ne!(t.nodes[p2[1] as usize].action, 1);
        assert!(t.nodes.iter().all(|n| n.pending <= 1));
    }

    #[test]
    fn uct_tries_every_child_before_repeating() {
        let mut t = Tree::new(Rule::Uct { c: 2.0 });
        t.expand(0, &[true; 5], &[1.0; 5]);
        let mut rng = Rng::new(3, 0);
        let mut seen = std::collections::HashSet::new();
        let mut path = Vec::new();
        for _ in 0..5 {
            t.select(&mut rng, &mut path);
            seen.insert(path[1]);
            t.reach(path[1], 0.0, false, 1);
            t.backup(&path, 0.0);
        }
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn uct_picks_the_best_score_inside_and_beyond_the_count_table() {
        let formula = |value_sum: f64, n: u32, parent: u32| {
            value_sum / n as f64 + 2.0 * ((parent as f64).ln() / n as f64).sqrt()
        };
        for &base in &[1u32, 7, 1000, SCALES as u32 - 3, 3 * SCALES as u32] {
            let mut t = Tree::new(Rule::Uct { c: 2.0 });
            t.expand(0, &[true; 6], &[1.0; 6]);
            let mut rng = Rng::new(base as u64, 0);
            let mut total = 0;
            for k in 0..6u32 {
                let kid = &mut t.nodes[1 + k as usize];
                kid.visits = base + k * (base / 3 + 1);
                kid.value_sum = kid.visits as f64 * (rng.next_f64() * 2.0 - 1.0);
                total += kid.visits;
            }
            t.nodes[0].visits = total;
            let want = (1..7)
                .max_by(|&a, &b| {
                    let (x, y) = (&t.nodes[a], &t.nodes[b]);
                    formula(x.value_sum, x.visits, total).total_cmp(&formula(y.value_sum, y.visits, total))
                })
                .unwrap();
            let mut path = Vec::new();
            t.select(&mut rng, &mut path);
            assert_eq!(path, vec![0, want as u32], "counts from {base}");
        }
        for n in [1u32, 2, 3, 100, SCALES as u32 - 1, SCALES as u32, u32::MAX] {
            let (a, b) = (scale(scales(), n), Scale::of(n));
            assert_eq!((a.inv, a.inv_sqrt, a.sqrt_ln), (b.inv, b.inv_sqrt, b.sqrt_ln));
        }
    }

    #[test]
    fn choose_follows_the_visits_and_the_temperature() {
        let mut t = puct();
        t.expand(0, &[true, true, true], &[1.0, 1.0, 1.0]);
        let first = t.root().first_child as usize;
        t.nodes[first].visits = 1;
        t.nodes[first + 1].visits = 9;
        let mut rng = Rng::new(1, 0);
        assert_eq!(t.choose(0.0, &mut rng), Some(1));
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[t.choose(1.0, &mut rng).unwrap() as usize] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((counts[1] as f64 / 10_000.0 - 0.9).abs() < 0.02, "{counts:?}");
    }

    #[test]
    fn dirichlet_draws_sum_to_one_and_have_the_right_mean() {
        let mut rng = Rng::new(5, 0);
        let mut mean = [0.0f64; 4];
        for _ in 0..20_000 {
            let d = dirichlet(0.3, 4, &mut rng);
            assert!((d.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert!(d.iter().all(|&x| x >= 0.0));
            for (m, x) in mean.iter_mut().zip(&d) {
                *m += x / 20_000.0;
            }
        }
        assert!(mean.iter().all(|m| (m - 0.25).abs() < 0.01), "{mean:?}");
        let g: f64 = (0..50_000).map(|_| gamma(2.5, &mut rng)).sum::<f64>() / 50_000.0;
        assert!((g - 2.5).abs() < 0.05, "{g}");
    }

    #[test]
    fn masked_softmax_ignores_illegal_actions() {
        let mut out = [0.0f32; 3];
        masked_softmax(&[0.0, 100.0, 0.0], &[true, false, true], &mut out);
        assert_eq!(out, [0.5, 0.0, 0.5]);
    }
}
