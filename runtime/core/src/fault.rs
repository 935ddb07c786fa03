//! Faults: run-time errors inside an environment, carrying the `.twl` position.
//!
//! A fault is a small `Copy` value, so raising one never allocates; the host turns it
//! into a readable message with [`Fault::describe`].

use std::fmt;

/// A position in the `.twl` source: line and column, both 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub line: u32,
    pub col: u32,
}

/// Shorthand used by generated code: `at(12, 5)`.
pub const fn at(line: u32, col: u32) -> At {
    At { line, col }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FaultKind {
    /// An index outside `0..len`: `a` is the index, `b` the length.
    IndexOutOfBounds,
    /// A value assigned to state outside its declared `lo..hi`: `a` value, `b` lo, `c` hi.
    OutOfRange,
    /// Integer arithmetic overflowed 64 bits.
    Overflow,
    /// Division or modulo by zero.
    DivisionByZero,
    /// `choice`, `min` or `max` over no values.
    Empty,
    /// A `while` loop ran past its `limit` (`a`).
    LoopLimit,
    /// An int raised to a negative power.
    NegativeExponent,
    /// A float that cannot become an int (NaN or infinite, or too large).
    BadConversion,
    /// A parameter value outside its declared range, or of the wrong type.
    BadParam,
    /// An action number outside the action space (`a` the action, `b` the count).
    BadAction,
    /// An action whose guard is false.
    IllegalAction,
    /// A state vector of the wrong length.
    BadState,
    /// A step on an episode that has ended, before `reset`.
    EpisodeOver,
    /// A Rust panic caught at the boundary (a bug in generated or runtime code).
    Panic,
    /// The host asked the work to stop (Ctrl-C).
    Interrupted,
    /// A loop of `a` iterations, more than the limit `b` of one loop.
    LoopTooLong,
    /// An array or batch of `a` elements (of `b` bytes each) cannot be allocated.
    TooLarge,
    /// A state value (`a` holds its f64 bits) that is not an int in `b..c`.
    BadStateValue,
    /// An array of `a` elements where one of `b` is expected.
    LengthMismatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub at: At,
    pub a: i64,
    pub b: i64,
    pub c: i64,
}

/// The result type of every fallible operation in generated code.
pub type R<T> = Result<T, Fault>;

impl Fault {
    pub const fn new(kind: FaultKind, at: At, a: i64, b: i64, c: i64) -> Fault {
        Fault { kind, at, a, b, c }
    }

    /// A sentence describing the fault, without the position.
    pub fn describe(&self) -> String {
        match self.kind {
            FaultKind::IndexOutOfBounds => {
                format!("index {} is out of bounds for length {}", self.a, self.b)
            }
            FaultKind::OutOfRange => format!(
                "the value {} is outside the declared range {}..{}",
                self.a, self.b, self.c
            ),
            FaultKind::Overflow => "integer arithmetic overflowed 64 bits".to_string(),
            FaultKind::DivisionByZero => "division by zero".to_string(),
            FaultKind::Empty => "`choice`, `min` or `max` over no values".to_string(),
            FaultKind::LoopLimit => format!("a `while` loop ran past its limit of {}", self.a),
            FaultKind::NegativeExponent => {
                format!("an int raised to the negative power {}", self.a)
            }
            FaultKind::BadConversion => "a float that is not a finite int-sized number was converted to int".to_string(),
            FaultKind::BadParam => format!("param #{} has an invalid value", self.a),
            FaultKind::Interrupted => "interrupted".to_string(),
            FaultKind::LengthMismatch => format!("an array of {} elements is used where one of {} is expected", self.a, self.b),
            FaultKind::BadStateValue => {
                let value = f64::from_bits(self.a as u64);
                let range = if self.c == i64::MAX { format!("{}..", self.b) } else { format!("{}..{}", self.b, self.c) };
                if self.b == 0 && self.c == 2 {
                    format!("the value {value} is not a bool (0 or 1)")
                } else {
                    format!("the value {value} is not an int in the declared range {range}")
                }
            }
            FaultKind::LoopTooLong => format!(
                "a loop of {} iterations is too long: one loop may run at most {} iterations",
                self.a, self.b
            ),
            FaultKind::TooLarge if self.a < 0 => format!("an array of negative size {}", self.a),
            FaultKind::TooLarge => format!(
                "{} elements of {} bytes each ({}) cannot be allocated",
                self.a, self.b, human_bytes(self.a as f64 * self.b as f64)
            ),
            FaultKind::BadAction => {
                format!("action {} is not in the action space 0..{}", self.a, self.b)
            }
            FaultKind::IllegalAction => format!("action {} is not legal in this state (masked out)", self.a),
            FaultKind::BadState => format!("a state of {} values was given, but {} are needed", self.a, self.b),
            FaultKind::EpisodeOver => "the episode is over; call reset() before stepping again".to_string(),
            FaultKind::Panic => "the environment panicked (a bug in twisterl; please report it)".to_string(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.line > 0 {
            write!(f, "line {}:{}: {}", self.at.line, self.at.col, self.describe())
        } else {
            write!(f, "{}", self.describe())
        }
    }
}

impl std::error::Error for Fault {}

impl FaultKind {
    /// The kind with number `n` (its position in the declaration), for the C ABI.
    pub fn from_u32(n: u32) -> FaultKind {
        use FaultKind::*;
        const ALL: [FaultKind; 19] = [
            IndexOutOfBounds, OutOfRange, Overflow, DivisionByZero, Empty, LoopLimit,
            NegativeExponent, BadConversion, BadParam, BadAction, IllegalAction, BadState,
            EpisodeOver, Panic, Interrupted, LoopTooLong, TooLarge, BadStateValue, LengthMismatch,
        ];
        ALL.get(n as usize).copied().unwrap_or(Panic)
    }
}

/// `bytes` as a short readable size: "312 B", "4.2 GB", "296 TB".
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{value:.0} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
