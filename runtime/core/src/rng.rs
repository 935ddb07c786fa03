//! Seeded random streams: xoshiro256++ seeded through SplitMix64.
//!
//! Each environment owns one stream, so results depend only on the seed and the actions,
//! never on threads or batch sizes.

#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a random stream is for. Streams of different purposes drawn from one seed are
/// independent, so that, say, random actions never replay an env's own reset draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// An env's own randomness (the same streams as [`Rng::new`]).
    Env,
    /// Random actions chosen for envs (random rollouts, `random_steps`).
    Actions,
    /// A policy's action sampling during collection.
    Sampling,
    /// Search: rollouts, noise, move choice.
    Search,
}

impl Rng {
    /// Stream `stream` of `seed` for `purpose`; `Purpose::Env` gives `Rng::new(seed, stream)`.
    pub fn for_purpose(seed: u64, purpose: Purpose, stream: u64) -> Rng {
        match purpose {
            Purpose::Env => Rng::new(seed, stream),
            other => {
                let mut x = seed ^ (other as u64).wrapping_mul(0xA076_1D64_78BD_642F);
                Rng::new(splitmix64(&mut x), stream)
            }
        }
    }

    /// The stream's whole state, to hand it across the plugin boundary.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// The stream whose state is `s` (from [`Rng::state`]).
    pub fn from_state(s: [u64; 4]) -> Rng {
        Rng { s }
    }

    /// A stream for `seed`; `stream` separates the envs of one batch.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut x = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let s = [splitmix64(&mut x), splitmix64(&mut x), splitmix64(&mut x), splitmix64(&mut x)];
        Rng { s }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = (self.s[0].wrapping_add(self.s[3])).rotate_left(23).wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A float in [0, 1) with 53 random bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `uniform(lo, hi)`: a float in [lo, hi).
    #[inline]
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// A standard normal draw (Box-Muller; one of the pair is used, so a draw always
    /// consumes two numbers from the stream).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // in (0, 1], so the log is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// An unbiased integer in 0..n (Lemire's method); n must be positive.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        let mut m = (self.next_u64() as u128) * (n as u128);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = (self.next_u64() as u128) * (n as u128);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// `randint(lo, hi)`: an int in [lo, hi); None when the range is empty.
    #[inline]
    pub fn randint(&mut self, lo: i64, hi: i64) -> Option<i64> {
        if hi <= lo {
            return None;
        }
        let span = (hi as i128 - lo as i128) as u64;
        Some((lo as i128 + self.below(span) as i128) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_draws_have_zero_mean_and_unit_variance() {
        let mut rng = Rng::new(3, 1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "{mean} {var}");
        assert!(xs.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let mut a = Rng::new(7, 0);
        let mut b = Rng::new(7, 0);
        let mut c = Rng::new(7, 1);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn ranges_are_respected_and_roughly_uniform() {
        let mut r = Rng::new(1, 2);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            let v = r.randint(-2, 3).unwrap();
            assert!((-2..3).contains(&v));
            counts[(v + 2) as usize] += 1;
            let f = r.uniform(-0.5, 0.5);
            assert!((-0.5..0.5).contains(&f));
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(r.randint(3, 3), None);
    }
}
