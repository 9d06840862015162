//! Arithmetic modulo the Mersenne prime p = 2⁶¹ − 1, for the detection vectors
//! (see [`crate::server`]): small elements keep vouchers small, and p is large
//! enough that an accidental linear dependency has probability about n/p.

/// The modulus 2⁶¹ − 1.
pub(crate) const P: u64 = (1 << 61) - 1;

/// `a + b mod p` for reduced inputs.
pub(crate) fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

/// `a − b mod p` for reduced inputs.
pub(crate) fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

/// `a · b mod p` for reduced inputs.
pub(crate) fn mul(a: u64, b: u64) -> u64 {
    let x = u128::from(a) * u128::from(b);
    let lo = (x as u64) & P;
    let hi = (x >> 61) as u64;
    add(lo, hi % P)
}

/// `a⁻¹ mod p` (Fermat); 0 for 0.
pub(crate) fn inv(a: u64) -> u64 {
    let (mut base, mut e, mut r) = (a, P - 2, 1u64);
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    r
}

/// A uniform element from a stream of 8-byte words (61 bits each; the one
/// value equal to p is skipped).
pub(crate) fn from_words(words: &mut impl Iterator<Item = u64>) -> u64 {
    for w in words.by_ref() {
        let v = w >> 3;
        if v < P {
            return v;
        }
    }
    0
}

/// The indices of the columns that take part in some linear dependency among
/// the given vectors (each of equal length): exactly the vectors that lie in
/// the span of the others.
pub(crate) fn dependent_columns(cols: &[Vec<u64>]) -> Vec<usize> {
    let n = cols.len();
    let Some(d) = cols.first().map(Vec::len) else {
        return Vec::new();
    };
    // Row-major copy of the d × n matrix whose columns are the vectors.
    let mut m: Vec<Vec<u64>> = (0..d)
        .map(|r| cols.iter().map(|c| c[r]).collect())
        .collect();
    let mut pivot_of_row: Vec<usize> = Vec::new();
    let mut row = 0;
    for col in 0..n {
        if row == d {
            break;
        }
        let Some(pr) = (row..d).find(|&r| m[r][col] != 0) else {
            continue;
        };
        m.swap(row, pr);
        let iv = inv(m[row][col]);
        for v in m[row].iter_mut() {
            *v = mul(*v, iv);
        }
        let pivot_row = m[row].clone();
        for (r, mr) in m.iter_mut().enumerate() {
            if r != row && mr[col] != 0 {
                let f = mr[col];
                for (v, &p) in mr.iter_mut().zip(&pivot_row) {
                    *v = sub(*v, mul(f, p));
                }
            }
        }
        pivot_of_row.push(col);
        row += 1;
    }
    let mut is_pivot = vec![false; n];
    for &c in &pivot_of_row {
        is_pivot[c] = true;
    }
    // The kernel is spanned by one vector per free column f: 1 at f and
    // −m[r][f] at the pivot column of row r. A column is in some dependency iff
    // it is free or some free column has a nonzero entry in its pivot row.
    let mut dependent = vec![false; n];
    for f in (0..n).filter(|&c| !is_pivot[c]) {
        dependent[f] = true;
        for (r, &pc) in pivot_of_row.iter().enumerate() {
            if m[r][f] != 0 {
                dependent[pc] = true;
            }
        }
    }
    (0..n).filter(|&i| dependent[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_laws() {
        let a = 0x1234_5678_9abc_def0 % P;
        let b = P - 3;
        assert_eq!(mul(a, inv(a)), 1);
        assert_eq!(add(b, 3), 0);
        assert_eq!(sub(0, 1), P - 1);
        assert_eq!(mul(P - 1, P - 1), 1);
    }

    #[test]
    fn dependencies_found_exactly() {
        let v = |x: [u64; 3]| x.to_vec();
        let a = v([1, 2, 3]);
        let b = v([4, 5, 6]);
        let c: Vec<u64> = a.iter().zip(&b).map(|(x, y)| add(mul(2, *x), *y)).collect();
        let e = v([0, 0, 7]);
        assert_eq!(
            dependent_columns(&[a.clone(), e.clone(), b.clone(), c]),
            vec![0, 2, 3]
        );
        assert!(dependent_columns(&[a, b, e]).is_empty());
    }
}
