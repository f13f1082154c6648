package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// The binary numeric format: int16 ndigits, int16 weight, uint16 sign, uint16
// dscale, then ndigits base-10000 digits, most significant first. Digit i is
// worth 10000^(weight-i).
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

var pow10u64 = [...]uint64{1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

var errNumericSpecial = errors.New("NaN or infinity has no decimal form")

// numericHeader reads the fixed part of a binary numeric.
func numericHeader(b []byte) (ndigits, weight int, sign uint16, dscale int, err error) {
	if len(b) < 8 {
		return 0, 0, 0, 0, fmt.Errorf("numeric of %d bytes", len(b))
	}
	ndigits = int(int16(binary.BigEndian.Uint16(b)))
	weight = int(int16(binary.BigEndian.Uint16(b[2:])))
	sign = binary.BigEndian.Uint16(b[4:])
	dscale = int(binary.BigEndian.Uint16(b[6:]))
	if ndigits < 0 || len(b) != 8+2*ndigits {
		return 0, 0, 0, 0, fmt.Errorf("numeric of %d bytes with %d digits", len(b), ndigits)
	}
	return ndigits, weight, sign, dscale, nil
}

// numericToDecimal converts a binary numeric to the coefficient of a decimal
// with the given scale (value × 10^scale), which must be exact.
func numericToDecimal(b []byte, scale int) (decimal128.Num, error) {
	ndigits, weight, sign, _, err := numericHeader(b)
	if err != nil {
		return decimal128.Num{}, err
	}
	if sign != numericPos && sign != numericNeg {
		return decimal128.Num{}, errNumericSpecial
	}
	if ndigits == 0 {
		return decimal128.Num{}, nil
	}
	// Exponent (power of ten) of the first digit's last decimal place.
	top := 4*weight + scale
	var n decimal128.Num
	if top+4 <= 19 { // every partial sum stays below 10^19 < 2^64
		var acc uint64
		for i := 0; i < ndigits; i++ {
			d := uint64(binary.BigEndian.Uint16(b[8+2*i:]))
			e := 4*(weight-i) + scale
			switch {
			case e >= 0:
				acc += d * pow10u64[e]
			case e > -4:
				if d%pow10u64[-e] != 0 {
					return decimal128.Num{}, fmt.Errorf("more than %d digits after the decimal point", scale)
				}
				acc += d / pow10u64[-e]
			default:
				if d != 0 {
					return decimal128.Num{}, fmt.Errorf("more than %d digits after the decimal point", scale)
				}
			}
		}
		n = decimal128.FromU64(acc)
	} else {
		if top > 38+3 {
			return decimal128.Num{}, errors.New("too many digits for a 38-digit decimal")
		}
		for i := 0; i < ndigits; i++ {
			d := uint64(binary.BigEndian.Uint16(b[8+2*i:]))
			e := 4*(weight-i) + scale
			switch {
			case e >= 0:
				if e > 38 {
					if d != 0 {
						return decimal128.Num{}, errors.New("too many digits for a 38-digit decimal")
					}
					continue
				}
				n = n.Add(decimal128.FromU64(d).Mul(decimal128.GetScaleMultiplier(e)))
			case e > -4:
				if d%pow10u64[-e] != 0 {
					return decimal128.Num{}, fmt.Errorf("more than %d digits after the decimal point", scale)
				}
				n = n.Add(decimal128.FromU64(d / pow10u64[-e]))
			default:
				if d != 0 {
					return decimal128.Num{}, fmt.Errorf("more than %d digits after the decimal point", scale)
				}
			}
		}
	}
	if sign == numericNeg {
		n = n.Negate()
	}
	return n, nil
}

// appendNumericText appends the text form PostgreSQL itself prints for a
// binary numeric: dscale digits after the point, NaN, Infinity, -Infinity.
func appendNumericText(dst, b []byte) ([]byte, error) {
	ndigits, weight, sign, dscale, err := numericHeader(b)
	if err != nil {
		return dst, err
	}
	switch sign {
	case numericNaN:
		return append(dst, "NaN"...), nil
	case numericPInf:
		return append(dst, "Infinity"...), nil
	case numericNInf:
		return append(dst, "-Infinity"...), nil
	case numericNeg:
		dst = append(dst, '-')
	}
	digit := func(i int) uint16 {
		if i < 0 || i >= ndigits {
			return 0
		}
		return binary.BigEndian.Uint16(b[8+2*i:])
	}
	if weight < 0 {
		dst = append(dst, '0')
	} else {
		dst = strconv.AppendUint(dst, uint64(digit(0)), 10)
		for i := 1; i <= weight; i++ {
			dst = append4(dst, digit(i))
		}
	}
	if dscale > 0 {
		dst = append(dst, '.')
		for i, left := weight+1, dscale; left > 0; i++ {
			var g [4]byte
			d := digit(i)
			g[0], g[1], g[2], g[3] = byte('0'+d/1000), byte('0'+d/100%10), byte('0'+d/10%10), byte('0'+d%10)
			n := min(left, 4)
			dst = append(dst, g[:n]...)
			left -= n
		}
	}
	return dst, nil
}

func append4(dst []byte, d uint16) []byte {
	return append(dst, byte('0'+d/1000), byte('0'+d/100%10), byte('0'+d/10%10), byte('0'+d%10))
}

// appendNumeric appends a binary numeric for the decimal [-]int.frac, given
// as ASCII digit strings, with display scale dscale. Leading zeros of int and
// trailing zeros of frac may be present.
func appendNumeric(dst []byte, neg bool, intDigits, fracDigits []byte, dscale int) []byte {
	for len(intDigits) > 0 && intDigits[0] == '0' {
		intDigits = intDigits[1:]
	}
	for len(fracDigits) > 0 && fracDigits[len(fracDigits)-1] == '0' {
		fracDigits = fracDigits[:len(fracDigits)-1]
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	intGroups := (len(intDigits) + 3) / 4
	weight := intGroups - 1
	ndigits := 0
	// Integer part: the first group takes the digits left over by fours.
	first := len(intDigits) - 4*(intGroups-1)
	pos := 0
	for g := 0; g < intGroups; g++ {
		n := 4
		if g == 0 {
			n = first
		}
		var d uint16
		for _, c := range intDigits[pos : pos+n] {
			d = d*10 + uint16(c-'0')
		}
		pos += n
		dst = binary.BigEndian.AppendUint16(dst, d)
		ndigits++
	}
	// Fraction: groups of four, the last padded with zeros on the right.
	leading := intGroups == 0
	for pos = 0; pos < len(fracDigits); pos += 4 {
		var d uint16
		for k := 0; k < 4; k++ {
			d *= 10
			if pos+k < len(fracDigits) {
				d += uint16(fracDigits[pos+k] - '0')
			}
		}
		if leading && d == 0 { // 0.0000123: skip zero groups, lower the weight
			weight--
			continue
		}
		leading = false
		dst = binary.BigEndian.AppendUint16(dst, d)
		ndigits++
	}
	// Trailing zero groups of the integer part (10000 → [1] weight 1).
	for ndigits > 0 && dst[len(dst)-2] == 0 && dst[len(dst)-1] == 0 {
		dst = dst[:len(dst)-2]
		ndigits--
	}
	sign := uint16(numericPos)
	if ndigits == 0 {
		weight = 0
	} else if neg {
		sign = numericNeg
	}
	binary.BigEndian.PutUint16(dst[start:], uint16(ndigits))
	binary.BigEndian.PutUint16(dst[start+2:], uint16(int16(weight)))
	binary.BigEndian.PutUint16(dst[start+4:], sign)
	binary.BigEndian.PutUint16(dst[start+6:], uint16(dscale))
	return dst
}

// appendNumericUint appends the binary numeric of ±c × 10^-scale (scale at
// most 16) with display scale dscale, computing the base-10000 digits with
// integer arithmetic.
func appendNumericUint(dst []byte, neg bool, c uint64, scale, dscale int) []byte {
	ip, fp := c/pow10u64[scale], c%pow10u64[scale]
	pad := (4 - scale%4) % 4
	nf := (scale + pad) / 4
	fp *= pow10u64[pad]  // < 10^19: fits
	var groups [9]uint16 // 5 integer groups hold 2^64, 4 fraction groups 16 digits
	var ig [5]uint16
	ni := 0
	for ; ip > 0; ni++ {
		ig[ni] = uint16(ip % 10000)
		ip /= 10000
	}
	n := 0
	for i := ni - 1; i >= 0; i-- {
		groups[n] = ig[i]
		n++
	}
	for i := nf - 1; i >= 0; i-- {
		groups[n] = uint16(fp / pow10u64[4*i] % 10000)
		n++
	}
	weight := ni - 1
	first := 0
	for first < n && groups[first] == 0 { // only with no integer part
		first++
		weight--
	}
	for n > first && groups[n-1] == 0 {
		n--
	}
	sign := uint16(numericPos)
	if n == first {
		weight = 0
	} else if neg {
		sign = numericNeg
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(n-first))
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(weight)))
	dst = binary.BigEndian.AppendUint16(dst, sign)
	dst = binary.BigEndian.AppendUint16(dst, uint16(dscale))
	for _, g := range groups[first:n] {
		dst = binary.BigEndian.AppendUint16(dst, g)
	}
	return dst
}

// appendNumericSpecial appends NaN or ±Infinity.
func appendNumericSpecial(dst []byte, sign uint16) []byte {
	return append(dst, 0, 0, 0, 0, byte(sign>>8), byte(sign), 0, 0)
}

// splitDecimal parses decimal text ([+-]digits[.digits][e[+-]digits]) into a
// sign and ASCII digit strings, rewriting an exponent into plain digits in
// scratch. special is "NaN", "Infinity" or "-Infinity" for those inputs.
func splitDecimal(s []byte, scratch []byte) (neg bool, intDigits, fracDigits []byte, special string, err error) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	j := len(s)
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	s = s[i:j]
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	switch string(s) {
	case "NaN", "nan", "NAN":
		return false, nil, nil, "NaN", nil
	case "Infinity", "infinity", "inf", "Inf":
		if neg {
			return false, nil, nil, "-Infinity", nil
		}
		return false, nil, nil, "Infinity", nil
	}
	p := 0
	for p < len(s) && s[p] >= '0' && s[p] <= '9' {
		p++
	}
	intDigits = s[:p]
	if p < len(s) && s[p] == '.' {
		q := p + 1
		for q < len(s) && s[q] >= '0' && s[q] <= '9' {
			q++
		}
		fracDigits = s[p+1 : q]
		p = q
	}
	if len(intDigits)+len(fracDigits) == 0 {
		return false, nil, nil, "", errors.New("not a decimal number")
	}
	if p == len(s) {
		return neg, intDigits, fracDigits, "", nil
	}
	if s[p] != 'e' && s[p] != 'E' {
		return false, nil, nil, "", errors.New("not a decimal number")
	}
	exp, perr := strconv.Atoi(string(s[p+1:]))
	if perr != nil || exp > 1000 || exp < -1000 {
		return false, nil, nil, "", errors.New("not a decimal number")
	}
	// Move the point: all digits, then the new split position.
	all := append(append(scratch[:0], intDigits...), fracDigits...)
	point := len(intDigits) + exp
	for point < 0 {
		all = append([]byte{'0'}, all...)
		point++
	}
	for point > len(all) {
		all = append(all, '0')
	}
	return neg, all[:point], all[point:], "", nil
}
