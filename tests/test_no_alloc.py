"""The generated step path does not allocate: a Rust test with a counting allocator.

For each example, a test crate links the generated env, warms it up, then takes 20,000
random legal steps (with masks, observations and resets) and asserts that the global
allocator was not called once.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from twisterl.build import core_source_dir
from twisterl.codegen import write_crate
from twisterl.codegen.lower import type_name
from twisterl.dsl import check_file, ir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.stem for p in ROOT.joinpath("examples").glob("*.twl"))

TEST = """
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use twisterl_core::prelude::*;

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only this test's thread is counted: the test harness allocates on its own threads.
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn run(slot: &mut Slot<{ty}>, rng: &mut Rng, steps: usize, mask: &mut [bool], obs: &mut [f32],
       values: &mut [f64], lows: &[f64], highs: &[f64]) {
    let mut rewards = [0.0f64; 16];
    let rewards = &mut rewards[..<{ty} as Env>::PLAYERS];
    for _ in 0..steps {
        let out = if <{ty} as Env>::CONTINUOUS {
            for (k, v) in values.iter_mut().enumerate() {
                *v = rng.uniform(lows[k], highs[k]);
            }
            slot.step_values(values, lows, highs, rewards, true).unwrap()
        } else {
            slot.env.legal(mask).unwrap();
            let legal = mask.iter().filter(|&&m| m).count() as u64;
            if legal == 0 {
                slot.reset().unwrap();
                continue;
            }
            let mut k = rng.below(legal);
            let mut action = 0;
            for (a, &m) in mask.iter().enumerate() {
                if m {
                    if k == 0 { action = a; break; }
                    k -= 1;
                }
            }
            slot.step(action as i64, rewards, true).unwrap()
        };
        let _ = out;
        slot.env.observe_dense(obs).unwrap();
    }
}

#[test]
fn stepping_does_not_allocate() {
    let params: Vec<Param> = vec![{params}];
    let mut batch = Batch::<{ty}>::new(&params, 1, 7).unwrap();
    let (lows, highs) = (batch.lows.clone(), batch.highs.clone());
    let slot = batch.slot_mut(0);
    slot.env.set_difficulty(4);
    slot.reset().unwrap();
    let mut mask = vec![false; if <{ty} as Env>::CONTINUOUS { 0 } else { slot.env.num_actions() }];
    let mut obs = vec![0.0f32; slot.env.obs_size()];
    let mut values = vec![0.0f64; lows.len()];
    let mut rng = Rng::new(3, 0);
    run(slot, &mut rng, 200, &mut mask, &mut obs, &mut values, &lows, &highs);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    run(slot, &mut rng, 20_000, &mut mask, &mut obs, &mut values, &lows, &highs);
    COUNTING.with(|c| c.set(false));
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "the step path allocated {} times", after - before);
}
"""


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
@pytest.mark.parametrize("name", EXAMPLES)
def test_step_path_does_not_allocate(tmp_path_factory, name):
    env = check_file(ROOT / "examples" / f"{name}.twl").env
    crate = write_crate(env, tmp_path_factory.mktemp(name), core_source_dir())
    params = ", ".join(f"Param::float({float(p.default)!r})" if isinstance(p.type, ir.FloatType)
                       else f"Param::int({int(p.default)})" for p in env.params)
    (crate / "tests").mkdir()
    (crate / "tests" / "no_alloc.rs").write_text(
        f"use twl_{env.name.lower()}::{type_name(env.name)};\n"
        + TEST.replace("{ty}", type_name(env.name)).replace("{params}", params))
    target = tmp_path_factory.getbasetemp() / "alloc-target"
    proc = subprocess.run(["cargo", "test", "--quiet", "--release", "--manifest-path", str(crate / "Cargo.toml"),
                           "--target-dir", str(target)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
