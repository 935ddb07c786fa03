//! [`Grid`]: a two-dimensional state array whose sizes depend on params, in one row-major
//! buffer. It indexes like a `Vec<Vec<T>>` (`grid[r][c]`, `grid[r]` is the row as a
//! slice, `len()` counts rows, `iter()` walks rows), so generated code reads the same, but
//! an element is one load at `r * cols + c`, and copying one grid over another of the same
//! shape (every search simulation copies the state) is one `memcpy` into the buffer it has.

use crate::fault::{At, Fault, FaultKind, R};
use crate::ops;

pub struct Grid<T> {
    cells: Vec<T>,
    rows: usize,
    cols: usize,
}

impl<T: Clone> Grid<T> {
    /// `rows` rows of `cols` copies of `value`; sizes that are negative or too large for
    /// one array are the same fault as for [`ops::filled`].
    pub fn filled(value: T, cols: i64, rows: i64, at: At) -> R<Grid<T>> {
        let row = ops::filled((), cols, at)?.len();
        let cells = ops::filled(value, (rows.max(0)).saturating_mul(cols.max(0)), at)?;
        let rows = ops::filled((), rows, at)?.len();
        Ok(Grid { cells, rows, cols: row })
    }

    /// The rows as separate vectors (a grid used as a value elsewhere: a fn argument, a
    /// local).
    pub fn to_rows(&self) -> Vec<Vec<T>> {
        self.iter().map(|row| row.to_vec()).collect()
    }

    /// Replace every element by those of `rows`, row by row; rows of another shape are a
    /// [`FaultKind::LengthMismatch`] at `at`.
    pub fn assign_rows(&mut self, rows: &[Vec<T>], at: At) -> R<()> {
        if rows.len() != self.rows {
            return Err(Fault::new(FaultKind::LengthMismatch, at, rows.len() as i64, self.rows as i64, 0));
        }
        for (r, row) in rows.iter().enumerate() {
            copy_row(&mut self[r], row, at)?;
        }
        Ok(())
    }
}

impl<T> Grid<T> {
    /// The number of rows.
    #[inline]
    pub fn len(&self) -> usize {
        self.rows
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Swap rows `i` and `j` (`shuffle` of a grid shuffles its rows).
    pub fn swap(&mut self, i: usize, j: usize) {
        assert!(i < self.rows && j < self.rows, "rows {i} and {j} of a grid of {} rows", self.rows);
        let (a, b) = (i.min(j), i.max(j));
        if a != b {
            let (low, high) = self.cells.split_at_mut(b * self.cols);
            low[a * self.cols..(a + 1) * self.cols].swap_with_slice(&mut high[..self.cols]);
        }
    }

    /// The rows, in order, as slices.
    pub fn iter(&self) -> Rows<'_, T> {
        Rows { rest: &self.cells, cols: self.cols, left: self.rows }
    }

    /// The rows, in order, as mutable slices.
    pub fn iter_mut(&mut self) -> RowsMut<'_, T> {
        RowsMut { rest: &mut self.cells, cols: self.cols, left: self.rows }
    }
}

/// `row` over `target`: rows of different lengths are a [`FaultKind::LengthMismatch`].
pub fn copy_row<T: Clone>(target: &mut [T], row: &[T], at: At) -> R<()> {
    if target.len() != row.len() {
        return Err(Fault::new(FaultKind::LengthMismatch, at, row.len() as i64, target.len() as i64, 0));
    }
    target.clone_from_slice(row);
    Ok(())
}

impl<T> std::ops::Index<usize> for Grid<T> {
    type Output = [T];

    #[inline]
    fn index(&self, r: usize) -> &[T] {
        debug_assert!(r < self.rows, "row {r} of a grid of {} rows", self.rows);
        &self.cells[r * self.cols..(r + 1) * self.cols]
    }
}

impl<T> std::ops::IndexMut<usize> for Grid<T> {
    #[inline]
    fn index_mut(&mut self, r: usize) -> &mut [T] {
        debug_assert!(r < self.rows, "row {r} of a grid of {} rows", self.rows);
        &mut self.cells[r * self.cols..(r + 1) * self.cols]
    }
}

/// `grid[(r, c)]`: one element, at one multiply and one bounds check (`grid[r][c]` takes
/// the row's slice first). The caller keeps `c` below the row length: generated code
/// proves or checks both indices against the declared sizes before it indexes.
impl<T> std::ops::Index<(usize, usize)> for Grid<T> {
    type Output = T;

    #[inline]
    fn index(&self, (r, c): (usize, usize)) -> &T {
        debug_assert!(r < self.rows && c < self.cols, "cell ({r}, {c}) of a {}x{} grid", self.rows, self.cols);
        &self.cells[r * self.cols + c]
    }
}

impl<T> std::ops::IndexMut<(usize, usize)> for Grid<T> {
    #[inline]
    fn index_mut(&mut self, (r, c): (usize, usize)) -> &mut T {
        debug_assert!(r < self.rows && c < self.cols, "cell ({r}, {c}) of a {}x{} grid", self.rows, self.cols);
        &mut self.cells[r * self.cols + c]
    }
}

/// By hand: `clone_from` reuses the buffer (the derived one would allocate a new grid).
impl<T: Clone> Clone for Grid<T> {
    fn clone(&self) -> Self {
        Grid { cells: self.cells.clone(), rows: self.rows, cols: self.cols }
    }

    fn clone_from(&mut self, source: &Self) {
        self.cells.clone_from(&source.cells);
        self.rows = source.rows;
        self.cols = source.cols;
    }
}

/// Printed as its rows, like the `Vec<Vec<T>>` it stands for.
impl<T: std::fmt::Debug> std::fmt::Debug for Grid<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: PartialEq> PartialEq for Grid<T> {
    fn eq(&self, other: &Self) -> bool {
        self.rows == other.rows && self.cols == other.cols && self.cells == other.cells
    }
}

/// The rows of a [`Grid`].
pub struct Rows<'a, T> {
    rest: &'a [T],
    cols: usize,
    left: usize,
}

impl<'a, T> Iterator for Rows<'a, T> {
    type Item = &'a [T];

    fn next(&mut self) -> Option<&'a [T]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (row, rest) = self.rest.split_at(self.cols);
        self.rest = rest;
        Some(row)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for Rows<'_, T> {}

/// The rows of a [`Grid`], mutable.
pub struct RowsMut<'a, T> {
    rest: &'a mut [T],
    cols: usize,
    left: usize,
}

impl<'a, T> Iterator for RowsMut<'a, T> {
    type Item = &'a mut [T];

    fn next(&mut self) -> Option<&'a mut [T]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (row, rest) = std::mem::take(&mut self.rest).split_at_mut(self.cols);
        self.rest = rest;
        Some(row)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for RowsMut<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::At;

    const AT: At = At { line: 1, col: 1 };

    #[test]
    fn a_cell_is_the_element_of_its_row() {
        let mut g = Grid::filled(0i64, 4, 3, AT).unwrap();
        for r in 0..3 {
            for c in 0..4 {
                g[(r, c)] = (10 * r + c) as i64;
            }
        }
        assert_eq!(g.to_rows(), vec![vec![0, 1, 2, 3], vec![10, 11, 12, 13], vec![20, 21, 22, 23]]);
        assert_eq!(g[(2, 3)], g[2][3]);
    }

    #[test]
    fn indexes_iterates_and_prints_like_nested_vectors() {
        let mut g = Grid::filled(0i64, 3, 2, AT).unwrap();
        g[1][2] = 7;
        g[0][0] = -1;
        assert_eq!(g.len(), 2);
        assert_eq!(&g[1], &[0, 0, 7]);
        assert_eq!((g[(1, 2)], g[(0, 0)], g[(1, 0)]), (7, -1, 0));
        assert_eq!(g.iter().map(|row| row.len()).sum::<usize>(), 6);
        assert_eq!(g.to_rows(), vec![vec![-1, 0, 0], vec![0, 0, 7]]);
        assert_eq!(format!("{g:?}"), format!("{:?}", g.to_rows()));
        for row in g.iter_mut() {
            row[1] = 5;
        }
        assert_eq!(g.to_rows(), vec![vec![-1, 5, 0], vec![0, 5, 7]]);
    }

    #[test]
    fn swapping_rows() {
        let mut g = Grid::filled(0i64, 2, 3, AT).unwrap();
        g.assign_rows(&[vec![1, 2], vec![3, 4], vec![5, 6]], AT).unwrap();
        g.swap(2, 0);
        g.swap(1, 1);
        assert_eq!(g.to_rows(), vec![vec![5, 6], vec![3, 4], vec![1, 2]]);
    }

    #[test]
    fn rows_of_no_columns_still_count() {
        let g = Grid::filled(false, 0, 4, AT).unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g.iter().count(), 4);
        assert!(g[3].is_empty());
    }

    #[test]
    fn copies_reuse_the_buffer_and_shapes_are_checked() {
        let a = Grid::filled(3u8, 4, 4, AT).unwrap();
        let mut b = Grid::filled(0u8, 4, 4, AT).unwrap();
        let buffer = b.cells.as_ptr();
        b.clone_from(&a);
        assert_eq!(b, a);
        assert_eq!(b.cells.as_ptr(), buffer);
        assert!(b.assign_rows(&[vec![1, 2, 3, 4]], AT).is_err());
        assert!(copy_row(&mut b[0], &[1, 2], AT).is_err());
        b.assign_rows(&vec![vec![1, 2, 3, 4]; 4], AT).unwrap();
        assert_eq!(&b[3], &[1, 2, 3, 4]);
    }

    #[test]
    fn negative_or_huge_sizes_fault() {
        assert!(Grid::filled(0i64, -1, 3, AT).is_err());
        assert!(Grid::filled(0i64, 3, -1, AT).is_err());
        assert!(Grid::filled(0i64, 1 << 20, 1 << 20, AT).is_err());
    }
}
