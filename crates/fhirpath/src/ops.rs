//! Non-logical binary operators.

use crate::ast::BinOp;
use crate::eval::{cmp_result, eval_err, singleton, temporal_item, Items, R};
use crate::value::{self, as_quantity, prim, temporal};
use crate::{Decimal, Error, Item};
use std::borrow::Cow;

/// `whole_seconds`: add only the integer part of a seconds quantity to a date/time,
/// as HL7's Java engine (Matchbox's) does; see `Environment::whole_seconds_in_date_arithmetic`.
pub(crate) fn binary<'a>(
    op: BinOp,
    a: Items<'a>,
    b: Items<'a>,
    whole_seconds: bool,
) -> R<Items<'a>> {
    let boolean = |b: Option<bool>| Ok(b.map(Item::Boolean).into_iter().collect());
    match op {
        BinOp::Union => {
            let mut all = a;
            all.extend(b);
            Ok(value::distinct(all))
        }
        BinOp::Eq | BinOp::Ne => {
            if a.is_empty() || b.is_empty() {
                return Ok(vec![]);
            }
            let eq = value::collections_equal(&a, &b);
            boolean(if op == BinOp::Eq { eq } else { eq.map(|x| !x) })
        }
        BinOp::Equiv => boolean(Some(value::collections_equivalent(&a, &b))),
        BinOp::NotEquiv => boolean(Some(!value::collections_equivalent(&a, &b))),
        BinOp::In | BinOp::Contains => {
            let (needle, hay) = if op == BinOp::In { (a, b) } else { (b, a) };
            let Some(n) = singleton(&needle)? else {
                return Ok(vec![]);
            };
            boolean(Some(value::contains_item(&hay, &n)))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let (Some(x), Some(y)) = (singleton(&a)?, singleton(&b)?) else {
                return Ok(vec![]);
            };
            let o = value::compare(&x, &y).map_err(Error::Eval)?;
            boolean(cmp_result(o, op))
        }
        BinOp::Concat => {
            let x = singleton(&a)?;
            let y = singleton(&b)?;
            let s = |i: Option<Item<'a>>| -> R<String> {
                match i.map(|i| prim(&i)) {
                    None => Ok(String::new()),
                    Some(Item::String(s)) => Ok(s.into_owned()),
                    Some(_) => eval_err("& needs strings"),
                }
            };
            let joined = s(x)? + &s(y)?;
            crate::eval::check_len(&joined)?;
            Ok(vec![Item::String(Cow::Owned(joined))])
        }
        _ => {
            let (Some(x), Some(y)) = (singleton(&a)?, singleton(&b)?) else {
                return Ok(vec![]);
            };
            let (x, y) = (prim(&x), prim(&y));
            // a string that holds a date (an element whose type the model does not
            // know) takes part in date arithmetic with a quantity
            let x = match (&x, &y) {
                (Item::String(s), Item::Quantity { .. })
                    if matches!(op, BinOp::Add | BinOp::Sub) =>
                {
                    match crate::temporal::Temporal::parse_date_time(s) {
                        Some(t) if !t.has_time && t.precision <= 3 => Item::Date(s.to_string()),
                        Some(_) => Item::DateTime(s.to_string()),
                        None => x,
                    }
                }
                _ => x,
            };
            arithmetic(op, &x, &y, whole_seconds).map(|o| o.into_iter().collect())
        }
    }
}

fn overflow() -> Error {
    Error::Eval("integer overflow".into())
}

fn arithmetic<'a>(
    op: BinOp,
    x: &Item<'a>,
    y: &Item<'a>,
    whole_seconds: bool,
) -> R<Option<Item<'a>>> {
    use Item::*;
    match (x, y) {
        (Integer(i), Integer(j)) => {
            let r = match op {
                BinOp::Add => Integer(i.checked_add(*j).ok_or_else(overflow)?),
                BinOp::Sub => Integer(i.checked_sub(*j).ok_or_else(overflow)?),
                BinOp::Mul => Integer(i.checked_mul(*j).ok_or_else(overflow)?),
                BinOp::Div => {
                    if *j == 0 {
                        return Ok(None);
                    }
                    return Ok(crate::Decimal::from_f64(*i as f64 / *j as f64).map(Decimal));
                }
                BinOp::IntDiv => match i.checked_div_euclid(*j) {
                    _ if *j == 0 => return Ok(None),
                    // truncated division, like FHIRPath.js
                    Some(_) => Integer(i.checked_div(*j).ok_or_else(overflow)?),
                    None => return Err(overflow()),
                },
                BinOp::Mod => {
                    if *j == 0 {
                        return Ok(None);
                    }
                    Integer(i.checked_rem(*j).ok_or_else(overflow)?)
                }
                _ => return eval_err("bad operator"),
            };
            Ok(Some(r))
        }
        (Integer(_) | Decimal(_), Integer(_) | Decimal(_)) => {
            let d = |i: &Item| match i {
                Integer(n) => crate::Decimal::from_i64(*n),
                Decimal(d) => d.clone(),
                _ => crate::Decimal::from_i64(0),
            };
            let (p, q) = (d(x), d(y));
            Ok(match op {
                BinOp::Add => p.add(&q).map(Decimal),
                BinOp::Sub => p.sub(&q).map(Decimal),
                BinOp::Mul => p.mul(&q).map(Decimal),
                BinOp::Div => {
                    if q.is_zero() {
                        None
                    } else {
                        crate::Decimal::from_f64(p.to_f64() / q.to_f64()).map(Decimal)
                    }
                }
                BinOp::IntDiv => {
                    if q.is_zero() {
                        None
                    } else {
                        let r = (p.to_f64() / q.to_f64()).trunc();
                        if r.abs() > 9.0e18 {
                            return Err(overflow());
                        }
                        Some(Integer(r as i64))
                    }
                }
                BinOp::Mod => {
                    if q.is_zero() {
                        None
                    } else {
                        let r = p.to_f64() % q.to_f64();
                        let scale = p.scale().max(q.scale());
                        crate::Decimal::from_f64(r)
                            .and_then(|d| d.round(scale))
                            .map(Decimal)
                    }
                }
                _ => return eval_err("bad operator"),
            })
        }
        (String(a), String(b)) if op == BinOp::Add => {
            let joined = format!("{a}{b}");
            crate::eval::check_len(&joined)?;
            Ok(Some(String(Cow::Owned(joined))))
        }
        (Date(_) | DateTime(_) | Time(_), _) if matches!(op, BinOp::Add | BinOp::Sub) => {
            let t = temporal(x).ok_or_else(|| Error::Eval("invalid date/time".into()))?;
            let (v, unit) = as_quantity(y)
                .ok_or_else(|| Error::Eval("date/time arithmetic needs a quantity".into()))?;
            let time_based = crate::units::CALENDAR_UNITS.contains(&unit.as_str())
                || matches!(unit.as_str(), "wk" | "d" | "h" | "min" | "s" | "ms");
            if !time_based {
                return eval_err(format!(
                    "date/time arithmetic needs a time-based unit, not '{unit}'"
                ));
            }
            let mut n = if op == BinOp::Sub {
                -v.to_f64()
            } else {
                v.to_f64()
            };
            if whole_seconds && matches!(unit.as_str(), "second" | "seconds" | "s") {
                n = n.trunc();
            }
            Ok(t.add(n, &unit).map(|r| temporal_item(x, &r)))
        }
        (Quantity { .. }, Quantity { .. })
        | (Quantity { .. }, Integer(_) | Decimal(_))
        | (Integer(_) | Decimal(_), Quantity { .. }) => quantity_arith(op, x, y),
        _ => eval_err(format!(
            "operator not defined for {} and {}",
            value::type_label(x),
            value::type_label(y)
        )),
    }
}

fn quantity_arith<'a>(op: BinOp, x: &Item<'a>, y: &Item<'a>) -> R<Option<Item<'a>>> {
    let num = |i: &Item| match i {
        Item::Integer(n) => Some(Decimal::from_i64(*n)),
        Item::Decimal(d) => Some(d.clone()),
        _ => None,
    };
    let q = |v: Option<Decimal>, unit: String| Ok(v.map(|value| Item::Quantity { value, unit }));
    match (as_quantity(x), as_quantity(y)) {
        (Some((a, u)), Some((b, w))) => match op {
            BinOp::Add | BinOp::Sub if u == w => q(
                if op == BinOp::Add {
                    a.add(&b)
                } else {
                    a.sub(&b)
                },
                u,
            ),
            BinOp::Add | BinOp::Sub => Ok(None),
            BinOp::Mul if u == "1" => q(a.mul(&b), w),
            BinOp::Mul if w == "1" => q(a.mul(&b), u),
            BinOp::Mul => q(a.mul(&b), format!("{u}.{w}")),
            BinOp::Div if b.is_zero() => Ok(None),
            BinOp::Div if u == w => q(Decimal::from_f64(a.to_f64() / b.to_f64()), "1".into()),
            BinOp::Div => q(
                Decimal::from_f64(a.to_f64() / b.to_f64()),
                format!("{u}/{w}"),
            ),
            _ => eval_err("operator not defined for quantities"),
        },
        (Some((a, u)), None) => {
            let b = num(y).unwrap_or_else(|| Decimal::from_i64(0));
            match op {
                BinOp::Mul => q(a.mul(&b), u),
                BinOp::Div if b.is_zero() => Ok(None),
                BinOp::Div => q(Decimal::from_f64(a.to_f64() / b.to_f64()), u),
                _ => eval_err("operator not defined for a quantity and a number"),
            }
        }
        (None, Some((b, u))) => {
            let a = num(x).unwrap_or_else(|| Decimal::from_i64(0));
            match op {
                BinOp::Mul => q(a.mul(&b), u),
                _ => eval_err("operator not defined for a number and a quantity"),
            }
        }
        _ => eval_err("operator not defined"),
    }
}
