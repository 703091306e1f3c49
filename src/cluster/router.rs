//! Simple request routers used before (and beside) the EPP.

use rand::Rng;

use crate::engine::rng::StreamRng;

/// Picks a pod for each request.
#[derive(Debug)]
pub enum Router {
    /// Pods in turn.
    RoundRobin {
        /// Next pod index.
        next: usize,
    },
    /// Uniformly at random from the `router` RNG stream.
    Random {
        /// The stream.
        rng: StreamRng,
    },
}

impl Router {
    /// Index of the pod (among `n_pods` candidates) for the next request.
    pub fn pick(&mut self, n_pods: usize) -> usize {
        assert!(n_pods > 0, "no pods to route to");
        match self {
            Router::RoundRobin { next } => {
                let p = *next % n_pods;
                *next = (p + 1) % n_pods;
                p
            }
            Router::Random { rng } => rng.random_range(0..n_pods),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::RngStreams;

    #[test]
    fn round_robin_cycles_and_random_is_seeded() {
        let mut rr = Router::RoundRobin { next: 0 };
        let picks: Vec<_> = (0..5).map(|_| rr.pick(3)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1]);
        let mut a = Router::Random {
            rng: RngStreams::new(1).stream("router"),
        };
        let mut b = Router::Random {
            rng: RngStreams::new(1).stream("router"),
        };
        let pa: Vec<_> = (0..20).map(|_| a.pick(4)).collect();
        let pb: Vec<_> = (0..20).map(|_| b.pick(4)).collect();
        assert_eq!(pa, pb);
        // Seeded, yet spread: 20 draws reach every one of the 4 pods.
        assert!((0..4).all(|p| pa.contains(&p)), "{pa:?}");
    }
}
