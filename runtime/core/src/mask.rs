//! Action masks: counting legal actions and finding the `k`-th, eight at a time.
//!
//! A mask is a `[bool]`, one byte per action, and games with big action families have
//! hundreds of actions of which a handful are legal. Every random playout step counts the
//! legal actions and walks to the one drawn, so both read the mask as 64-bit words: a
//! `bool` is one byte holding 0 or 1, so a word's set bits are its legal actions.

use crate::rng::Rng;

/// The mask's bytes (a `bool` has the layout of a `u8` holding 0 or 1).
#[inline]
fn bytes(mask: &[bool]) -> &[u8] {
    // SAFETY: `bool` has the size and alignment of `u8`, and every bool is a valid u8.
    unsafe { std::slice::from_raw_parts(mask.as_ptr() as *const u8, mask.len()) }
}

#[inline]
fn word(chunk: &[u8]) -> u64 {
    u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]))
}

/// How many actions of `mask` are legal.
#[inline]
pub fn count(mask: &[bool]) -> usize {
    let b = bytes(mask);
    let chunks = b.chunks_exact(8);
    let tail = chunks.remainder().iter().filter(|&&x| x != 0).count();
    chunks.map(|c| word(c).count_ones() as usize).sum::<usize>() + tail
}

/// The `k`-th legal action of `mask` (counting from 0), or `None` when fewer are legal.
#[inline]
pub fn nth(mask: &[bool], mut k: usize) -> Option<usize> {
    let b = bytes(mask);
    let mut start = 0;
    for c in b.chunks_exact(8) {
        let ones = word(c).count_ones() as usize;
        if k < ones {
            break;
        }
        k -= ones;
        start += 8;
    }
    b[start..].iter().enumerate().filter(|(_, &x)| x != 0).nth(k).map(|(i, _)| start + i)
}

/// A uniformly drawn legal action of `mask` (one `rng.below` draw), or `None` (and no
/// draw) when none is legal.
#[inline]
pub fn pick(mask: &[bool], rng: &mut Rng) -> Option<usize> {
    let n = count(mask);
    if n == 0 {
        return None;
    }
    nth(mask, rng.below(n as u64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_plain_scan() {
        let mut rng = Rng::new(7, 0);
        for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 200, 768] {
            for density in [0u64, 1, 3, 50, 100] {
                let mask: Vec<bool> = (0..len).map(|_| rng.below(100) < density).collect();
                let plain: Vec<usize> = mask.iter().enumerate().filter(|(_, &m)| m).map(|(i, _)| i).collect();
                assert_eq!(count(&mask), plain.len());
                for k in 0..plain.len() + 2 {
                    assert_eq!(nth(&mask, k), plain.get(k).copied(), "len {len} k {k}");
                }
            }
        }
    }
}
