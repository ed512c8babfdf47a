//! Java's `Double.toString(double)` (Java 19 and later, Raffaello Giulietti's shortest-decimal specification), the
//! text Flink's CSV format writes for a `DOUBLE` (ticker docs §3).
//!
//! Digits: the shortest decimal that rounds back to the double, the closest one if several (what `ryu`
//! produces); when that is a single digit, the closest decimal of one or two digits instead (Java's rule: 4.9E-324,
//! where the shortest form is 5E-324). Layout: plain with at least one fractional digit when
//! 10⁻³ ≤ |x| < 10⁷ (`42.0`, `0.001`, `0.15000000000000002`), otherwise `d.dddE<exponent>` with at least one
//! fractional digit and no `+` (`1.0E-4`, `1.23456785E7`); `NaN`, `Infinity`, `-Infinity`, `0.0`, `-0.0`.

/// Appends Java's `Double.toString(x)` to `out`.
pub fn write(x: f64, out: &mut String) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    let a = x.abs();
    if a == 0.0 {
        out.push_str("0.0");
        return;
    }
    let (mut digits, mut point) = decimal(ryu::Buffer::new().format_finite(a));
    if digits.len() == 1 {
        // Java picks the closest decimal of length 1 or 2: the correct rounding to two digits.
        (digits, point) = decimal(&format!("{a:.1e}"));
    }
    // a = 0.DIGITS × 10^point.
    if (1e-3..1e7).contains(&a) {
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point as usize >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if digits.len() > 1 { &digits[1..] } else { "0" });
        out.push('E');
        out.push_str(itoa::Buffer::new().format(point - 1));
    }
}

/// `x` as Java's `Double.toString` writes it.
pub fn to_string(x: f64) -> String {
    let mut s = String::new();
    write(x, &mut s);
    s
}

/// The significant digits (no leading or trailing zeros) and the decimal point position of a positive number
/// written by `ryu` or Rust's `{:e}`: value = 0.DIGITS × 10^point.
fn decimal(text: &str) -> (String, i32) {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().expect("an exponent")),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut all: String = format!("{int}{frac}");
    let mut point = int.len() as i32 + exponent;
    let leading = all.len() - all.trim_start_matches('0').len();
    all.drain(..leading);
    point -= leading as i32;
    let trimmed = all.trim_end_matches('0').len();
    all.truncate(trimmed);
    (all, point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn javas_layout() {
        for (x, java) in [
            (42.0, "42.0"),
            (42.125, "42.125"),
            (50.41122807017543, "50.41122807017543"),
            (0.001, "0.001"),
            (0.15000000000000002, "0.15000000000000002"),
            (1.0e-4, "1.0E-4"),
            (1.0e7, "1.0E7"),
            (9_999_999.0, "9999999.0"),
            (1.23456785e7, "1.23456785E7"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-42.5, "-42.5"),
            (100.0, "100.0"),
            (1e21, "1.0E21"),
            (1.5e-10, "1.5E-10"),
            (f64::MAX, "1.7976931348623157E308"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
            (5e-324, "4.9E-324"),
            (2e-323, "2.0E-323"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (123456.789, "123456.789"),
            (0.5, "0.5"),
        ] {
            assert_eq!(to_string(x), java, "{x:e}");
        }
    }

    #[test]
    fn the_text_reads_back_as_the_same_double() {
        let mut bits = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let x = f64::from_bits(bits);
            if x.is_finite() {
                let text = to_string(x);
                assert_eq!(text.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{text}");
            }
        }
    }
}
