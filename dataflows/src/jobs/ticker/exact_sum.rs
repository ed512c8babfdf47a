//! The exact average of the ticker job (ticker docs §3 "Average, exactly"): `AVG(price)` = S / n, where S is the
//! sum of the prices rounded once, to nearest with ties to even (as Python's `math.fsum`), and n their count,
//! so the result depends neither on arrival order, partitioning nor the number of workers. Flink adds in
//! arrival order and may differ in the last digit or two.
//!
//! # Representation
//! A *superaccumulator*: the exact sum of finite doubles as a two's-complement integer in units of 2⁻¹⁰⁷⁴ (the
//! smallest subnormal), [`LIMBS`] × 64 bits wide. Every finite double is an integer multiple of 2⁻¹⁰⁷⁴ below
//! 2²⁰⁹⁸, so 2⁶³ of them fit with room for the sign: adding is exact, and merging two accumulators is adding
//! their integers, which is associative and commutative. NaN and infinities are kept as flags (IEEE: any NaN, or
//! +∞ with −∞, gives NaN; otherwise an infinity wins).

use serde::{Deserialize, Serialize};

use crate::window::aggregate::Accumulator;

/// 64-bit limbs of the integer: 2176 bits, enough for 2⁶³ doubles of the largest magnitude.
pub const LIMBS: usize = 34;

/// The sum and count of the non-NULL prices of one (ticker, window).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactAverage {
    /// The exact sum of the finite values, little-endian two's-complement limbs in units of 2⁻¹⁰⁷⁴.
    limbs: Vec<u64>,
    /// Non-NULL values added (finite or not).
    count: u64,
    nan: bool,
    positive_infinity: bool,
    negative_infinity: bool,
}

impl Default for ExactAverage {
    fn default() -> Self {
        ExactAverage { limbs: vec![0; LIMBS], count: 0, nan: false, positive_infinity: false, negative_infinity: false }
    }
}

impl ExactAverage {
    /// The accumulator of one value (`None`: a NULL price, which `AVG` skips).
    pub fn of(value: Option<f64>) -> ExactAverage {
        let mut a = ExactAverage::default();
        if let Some(v) = value {
            a.add(v);
        }
        a
    }

    /// Adds one value.
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        if x.is_nan() {
            self.nan = true;
            return;
        }
        if x.is_infinite() {
            if x > 0.0 {
                self.positive_infinity = true;
            } else {
                self.negative_infinity = true;
            }
            return;
        }
        let bits = x.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as u32;
        let fraction = bits & ((1 << 52) - 1);
        // x = mantissa × 2^(shift − 1074).
        let (mantissa, shift) = if biased == 0 { (fraction, 0) } else { (fraction | (1 << 52), biased - 1) };
        if mantissa == 0 {
            return;
        }
        let limb = (shift / 64) as usize;
        let wide = (mantissa as u128) << (shift % 64);
        let (low, high) = (wide as u64, (wide >> 64) as u64);
        if bits >> 63 == 0 {
            self.add_at(limb, low, high);
        } else {
            self.sub_at(limb, low, high);
        }
    }

    /// Adds `low + high × 2⁶⁴` at limb `at`, carrying upwards (wrapping at the top: two's complement).
    fn add_at(&mut self, at: usize, low: u64, high: u64) {
        let mut carry;
        (self.limbs[at], carry) = self.limbs[at].overflowing_add(low);
        let mut i = at + 1;
        let mut addend = high;
        while i < LIMBS && (carry || addend != 0) {
            let (s1, c1) = self.limbs[i].overflowing_add(addend);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            self.limbs[i] = s2;
            carry = c1 || c2;
            addend = 0;
            i += 1;
        }
    }

    /// Subtracts `low + high × 2⁶⁴` at limb `at`, borrowing upwards.
    fn sub_at(&mut self, at: usize, low: u64, high: u64) {
        let mut borrow;
        (self.limbs[at], borrow) = self.limbs[at].overflowing_sub(low);
        let mut i = at + 1;
        let mut subtrahend = high;
        while i < LIMBS && (borrow || subtrahend != 0) {
            let (d1, b1) = self.limbs[i].overflowing_sub(subtrahend);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            self.limbs[i] = d2;
            borrow = b1 || b2;
            subtrahend = 0;
            i += 1;
        }
    }

    /// Non-NULL values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum, rounded once to the nearest double (ties to even); ±∞ beyond the double range; NaN for a NaN or
    /// for +∞ with −∞.
    pub fn sum(&self) -> f64 {
        if self.nan || (self.positive_infinity && self.negative_infinity) {
            return f64::NAN;
        }
        if self.positive_infinity {
            return f64::INFINITY;
        }
        if self.negative_infinity {
            return f64::NEG_INFINITY;
        }
        let negative = self.limbs[LIMBS - 1] >> 63 == 1;
        let magnitude = if negative { negate(&self.limbs) } else { self.limbs.clone() };
        let Some(top) = highest_bit(&magnitude) else { return 0.0 };
        let value = if top < 53 {
            // Below 2⁵³ units of 2⁻¹⁰⁷⁴: exactly the double whose bits are the integer (subnormal, or the first
            // normal binade).
            f64::from_bits(magnitude[0])
        } else {
            let shift = top - 52;
            let mut mantissa = bits_at(&magnitude, shift, 53);
            let round = bit(&magnitude, shift - 1);
            let sticky = any_below(&magnitude, shift - 1);
            let mut top = top;
            if round && (sticky || mantissa & 1 == 1) {
                mantissa += 1;
                if mantissa == 1 << 53 {
                    mantissa >>= 1;
                    top += 1;
                }
            }
            // mantissa × 2^(top − 52 − 1074): biased exponent top − 51.
            let biased = top as u64 - 51;
            if biased >= 0x7ff {
                f64::INFINITY
            } else {
                f64::from_bits((biased << 52) | (mantissa & ((1 << 52) - 1)))
            }
        };
        if negative {
            -value
        } else {
            value
        }
    }

    /// `AVG`: the rounded [`Self::sum`] divided by the count in double arithmetic (Flink's `AVG(DOUBLE)`);
    /// `None` (NULL) when every value was NULL.
    pub fn average(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum() / self.count as f64)
    }
}

impl Accumulator for ExactAverage {
    /// A price; `None` for NULL.
    type Value = Option<f64>;

    fn of(value: Option<f64>) -> Self {
        ExactAverage::of(value)
    }

    #[inline]
    fn add(&mut self, value: Option<f64>) {
        if let Some(v) = value {
            ExactAverage::add(self, v);
        }
    }

    fn merge(&mut self, other: &Self) {
        let mut carry = false;
        for (a, b) in self.limbs.iter_mut().zip(&other.limbs) {
            let (s1, c1) = a.overflowing_add(*b);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *a = s2;
            carry = c1 || c2;
        }
        self.count += other.count;
        self.nan |= other.nan;
        self.positive_infinity |= other.positive_infinity;
        self.negative_infinity |= other.negative_infinity;
    }
}

fn negate(limbs: &[u64]) -> Vec<u64> {
    let mut out: Vec<u64> = limbs.iter().map(|l| !l).collect();
    for l in out.iter_mut() {
        let (s, c) = l.overflowing_add(1);
        *l = s;
        if !c {
            break;
        }
    }
    out
}

fn highest_bit(limbs: &[u64]) -> Option<u32> {
    limbs.iter().enumerate().rev().find(|(_, l)| **l != 0).map(|(i, l)| i as u32 * 64 + 63 - l.leading_zeros())
}

fn bit(limbs: &[u64], at: u32) -> bool {
    (limbs[(at / 64) as usize] >> (at % 64)) & 1 == 1
}

/// `len` (≤ 64) bits starting at bit `at`.
fn bits_at(limbs: &[u64], at: u32, len: u32) -> u64 {
    let (i, offset) = ((at / 64) as usize, at % 64);
    let mut v = limbs[i] >> offset;
    if offset > 0 && i + 1 < limbs.len() {
        v |= limbs[i + 1] << (64 - offset);
    }
    if len < 64 {
        v &= (1 << len) - 1;
    }
    v
}

/// Whether any bit below bit `at` is set.
fn any_below(limbs: &[u64], at: u32) -> bool {
    let (i, offset) = ((at / 64) as usize, at % 64);
    limbs[..i].iter().any(|l| *l != 0) || (offset > 0 && limbs[i] & ((1 << offset) - 1) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_of(values: &[f64]) -> f64 {
        let mut a = ExactAverage::default();
        for v in values {
            a.add(*v);
        }
        a.sum()
    }

    #[test]
    fn sums_are_exact_and_rounded_once() {
        assert_eq!(sum_of(&[0.1; 10]), 1.0); // a sequential sum gives 0.9999999999999999
        assert_eq!(sum_of(&[1e308, 1e308, -1e308]), 1e308); // no intermediate overflow
        assert_eq!(sum_of(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum_of(&[]), 0.0);
        assert_eq!(sum_of(&[5e-324, 5e-324]), 1e-323);
        assert_eq!(sum_of(&[-0.0]), 0.0);
        assert_eq!(sum_of(&[1.0, 2f64.powi(-53)]), 1.0, "a tie rounds to even");
        assert_eq!(sum_of(&[1.0, 2f64.powi(-53), 2f64.powi(-80)]), 1.0 + f64::EPSILON, "above the tie rounds up");
        assert_eq!(sum_of(&[1.0 + f64::EPSILON, 2f64.powi(-53)]), 1.0 + 2.0 * f64::EPSILON, "a tie to even, upwards");
        assert_eq!(sum_of(&[-1.5, 0.25]), -1.25);
        assert_eq!(sum_of(&[f64::MAX, f64::MAX]), f64::INFINITY);
        assert_eq!(sum_of(&[-f64::MAX, -f64::MAX]), f64::NEG_INFINITY);
        assert_eq!(sum_of(&[f64::MAX, f64::MAX, -f64::MAX]), f64::MAX);
        // The largest finite sum that still rounds down to MAX: MAX + half an ulp − tiny.
        let half_ulp = 2f64.powi(970);
        assert_eq!(sum_of(&[f64::MAX, half_ulp * 0.5]), f64::MAX);
        assert_eq!(sum_of(&[f64::MAX, half_ulp]), f64::INFINITY, "MAX + half an ulp is a tie, to even: infinity");
    }

    #[test]
    fn special_values() {
        assert!(sum_of(&[1.0, f64::NAN]).is_nan());
        assert!(sum_of(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert_eq!(sum_of(&[f64::INFINITY, -1e308]), f64::INFINITY);
        assert_eq!(sum_of(&[f64::NEG_INFINITY, 1.0]), f64::NEG_INFINITY);
        assert_eq!(ExactAverage::of(None).average(), None);
        let mut a = ExactAverage::of(None);
        a.merge(&ExactAverage::of(Some(3.0)));
        Accumulator::add(&mut a, None);
        a.merge(&ExactAverage::of(Some(4.5)));
        assert_eq!(a.average(), Some(3.75));
    }

    #[test]
    fn order_and_grouping_do_not_matter() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..200 {
            let n = 1 + (next() % 60) as usize;
            let values: Vec<f64> = (0..n)
                .map(|_| {
                    let v = f64::from_bits(next());
                    if v.is_finite() { v } else { (next() % 10_000) as f64 / 100.0 }
                })
                .collect();
            let whole = sum_of(&values);
            let mut reversed = values.clone();
            reversed.reverse();
            assert_eq!(sum_of(&reversed).to_bits(), whole.to_bits());
            let cut = (next() % n as u64) as usize;
            let mut left = ExactAverage::default();
            values[..cut].iter().for_each(|v| left.add(*v));
            let mut right = ExactAverage::default();
            values[cut..].iter().for_each(|v| right.add(*v));
            right.merge(&left);
            assert_eq!(right.sum().to_bits(), whole.to_bits());
        }
    }

    #[test]
    fn cents_average_like_fsum() {
        // fsum([42.17, 13.05, 99.99]) / 3 in Python: 51.73666666666667.
        let mut a = ExactAverage::default();
        for v in [42.17, 13.05, 99.99] {
            a.add(v);
        }
        assert_eq!(a.average(), Some(51.73666666666667));
    }
}
