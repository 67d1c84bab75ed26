use super::*;

#[test]
fn numbers_format_like_printf_g17() {
    assert_eq!(fmt_number(1.0), "1");
    assert_eq!(fmt_number(-3.0), "-3");
    assert_eq!(fmt_number(0.1), "0.10000000000000001");
    assert_eq!(fmt_number(100.5), "100.5");
    assert_eq!(fmt_number(9007199254740991.0), "9007199254740991");
    assert_eq!(fmt_number(1e20), "1e+20");
    assert_eq!(fmt_number(1.5e-7), "1.4999999999999999e-07");
    assert_eq!(fmt_number(0.0001), "0.0001");
    assert_eq!(fmt_number(f64::INFINITY), "inf");
}
