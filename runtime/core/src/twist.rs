//! Symmetries ("twists") as permutations of the observation and of the actions.

use crate::fault::{at, Fault, FaultKind, R};

/// One symmetry: feature `i` of an observation becomes feature `obs[i]` of the twisted
/// one, and action `a` becomes action `act[a]`; `back` undoes `act`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Twist {
    pub obs: Vec<u32>,
    pub act: Vec<u32>,
    pub back: Vec<u32>,
}

impl Twist {
    /// A twist of an env with `obs_size` features and `num_actions` actions; both
    /// permutations are checked.
    pub fn new(obs: Vec<u32>, act: Vec<u32>, obs_size: usize, num_actions: usize) -> Result<Twist, String> {
        if !is_permutation(&obs, obs_size) || !is_permutation(&act, num_actions) {
            return Err(format!(
                "each twist must be a permutation of the {obs_size} observation features and of the \
                 {num_actions} actions"
            ));
        }
        let mut back = vec![0u32; act.len()];
        for (a, &b) in act.iter().enumerate() {
            back[b as usize] = a as u32;
        }
        Ok(Twist { obs, act, back })
    }

    /// Twist a dense observation `raw` into `out`.
    pub fn dense(&self, raw: &[f32], out: &mut [f32]) {
        for (i, &x) in raw.iter().enumerate() {
            out[self.obs[i] as usize] = x;
        }
    }

    /// Twist the indices of a sparse observation in place.
    pub fn sparse(&self, indices: &mut [u32]) {
        for x in indices {
            *x = self.obs[*x as usize];
        }
    }

    /// Twist a mask `raw` into `out`: `out[act[a]] = raw[a]`.
    pub fn mask(&self, raw: &[bool], out: &mut [bool]) {
        for (a, &m) in raw.iter().enumerate() {
            out[self.act[a] as usize] = m;
        }
    }
}

/// Whether `p` is a permutation of `0..n`.
pub fn is_permutation(p: &[u32], n: usize) -> bool {
    let mut seen = vec![false; n];
    p.len() == n && p.iter().all(|&x| (x as usize) < n && !std::mem::replace(&mut seen[x as usize], true))
}

/// Where a generated `twist` starts: every feature and action in its own place.
pub fn fill_identity(perm: &mut [u32]) {
    for (i, x) in perm.iter_mut().enumerate() {
        *x = i as u32;
    }
}

/// A generated `twist`'s last check: `obs` and `act` are both permutations. Otherwise a
/// fault carrying the first value that is out of range or hit twice, and the length.
pub fn check_permutations(obs: &[u32], act: &[u32]) -> R<()> {
    for perm in [obs, act] {
        let mut seen = vec![false; perm.len()];
        for &x in perm {
            let x = x as usize;
            if x >= seen.len() || std::mem::replace(&mut seen[x], true) {
                return Err(Fault::new(FaultKind::BadState, at(0, 0), x as i64, perm.len() as i64, 0));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twists_check_and_invert_their_permutations() {
        let t = Twist::new(vec![1, 0, 2], vec![2, 0, 1], 3, 3).unwrap();
        assert_eq!(t.back, vec![1, 2, 0]);
        let mut out = [0.0f32; 3];
        t.dense(&[1.0, 2.0, 3.0], &mut out);
        assert_eq!(out, [2.0, 1.0, 3.0]);
        let mut mask = [false; 3];
        t.mask(&[true, false, false], &mut mask);
        assert_eq!(mask, [false, false, true]);
        assert!(Twist::new(vec![0, 0, 2], vec![0, 1, 2], 3, 3).is_err());
        assert!(Twist::new(vec![0, 1], vec![0, 1, 2], 3, 3).is_err());
        assert!(!is_permutation(&[0, 3], 2));
    }

    #[test]
    fn generated_twists_start_from_the_identity_and_fault_on_a_clash() {
        let mut obs = [9u32; 4];
        fill_identity(&mut obs);
        assert_eq!(obs, [0, 1, 2, 3]);
        assert!(check_permutations(&obs, &[1, 0]).is_ok());
        let twice = check_permutations(&[0, 0, 2], &[0]).unwrap_err();
        assert_eq!((twice.kind, twice.a, twice.b), (FaultKind::BadState, 0, 3));
        let outside = check_permutations(&[0], &[1, 2]).unwrap_err();
        assert_eq!((outside.a, outside.b), (2, 2));
    }
}
