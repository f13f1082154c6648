package sqlite

// Hand-written conversions between SQLite text and Arrow values for the hot
// paths. time.Parse/Format and math/big allocate on every value; these work
// on byte slices, allocate nothing, and accept exactly the layouts of
// TYPES.md plus the common ISO variants found in tables others made.

import (
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/datashift/datashift/connectors"
)

const (
	microsPerSecond = int64(1_000_000)
	microsPerDay    = 86_400 * microsPerSecond
)

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) (q, r int64) {
	q, r = a/b, a%b
	if r < 0 {
		q--
		r += b
	}
	return q, r
}

func appendDigits(b []byte, v int64, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for v > 0 || width > 0 {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	return append(b, tmp[i:]...)
}

// appendDate writes 'YYYY-MM-DD'; false for years outside 0000..9999, whose
// text would not sort chronologically.
func appendDate(b []byte, days int64) ([]byte, bool) {
	y, m, d := connectors.CivilFromDays(days)
	if y < 0 || y > 9999 {
		return b, false
	}
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, m, 2)
	b = append(b, '-')
	return appendDigits(b, d, 2), true
}

// appendClock writes 'HH:MM:SS.ffffff' for micros since midnight.
func appendClock(b []byte, us int64) []byte {
	s, frac := us/microsPerSecond, us%microsPerSecond
	b = appendDigits(b, s/3600, 2)
	b = append(b, ':')
	b = appendDigits(b, s/60%60, 2)
	b = append(b, ':')
	b = appendDigits(b, s%60, 2)
	b = append(b, '.')
	return appendDigits(b, frac, 6)
}

// appendTimestamp writes micros since the epoch as
// 'YYYY-MM-DD HH:MM:SS.ffffff' or, zoned, 'YYYY-MM-DDTHH:MM:SS.ffffffZ'
// (TIMESTAMP_TEXT, TIMESTAMPTZ_TEXT). Fixed width, so text order is time order.
func appendTimestamp(b []byte, us int64, zoned bool) ([]byte, bool) {
	days, rest := floorDiv(us, microsPerDay)
	b, ok := appendDate(b, days)
	if !ok {
		return b, false
	}
	if zoned {
		b = append(b, 'T')
	} else {
		b = append(b, ' ')
	}
	b = appendClock(b, rest)
	if zoned {
		b = append(b, 'Z')
	}
	return b, true
}

// digits parses n ASCII digits at b[i:].
func digits(b []byte, i, n int) (int64, bool) {
	if i+n > len(b) {
		return 0, false
	}
	var v int64
	for _, c := range b[i : i+n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parseDate parses 'YYYY-MM-DD' at the start of b and returns the days since
// the epoch and the number of bytes used.
func parseDate(b []byte) (days int64, n int, ok bool) {
	y, ok1 := digits(b, 0, 4)
	m, ok2 := digits(b, 5, 2)
	d, ok3 := digits(b, 8, 2)
	if !ok1 || !ok2 || !ok3 || b[4] != '-' || b[7] != '-' || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, 0, false
	}
	return connectors.DaysFromCivil(y, m, d), 10, true
}

// parseClock parses 'HH:MM[:SS[.fraction]]' at the start of b into micros
// since midnight. A fraction finer than microseconds must be zeros past the
// sixth digit: anything else would be lost.
func parseClock(b []byte) (us int64, n int, ok bool) {
	h, ok1 := digits(b, 0, 2)
	mi, ok2 := digits(b, 3, 2)
	if !ok1 || !ok2 || b[2] != ':' || h > 23 || mi > 59 {
		return 0, 0, false
	}
	n = 5
	var s int64
	if n < len(b) && b[n] == ':' {
		var ok3 bool
		if s, ok3 = digits(b, 6, 2); !ok3 || s > 59 {
			return 0, 0, false
		}
		n = 8
	}
	us = (h*3600 + mi*60 + s) * microsPerSecond
	if n < len(b) && b[n] == '.' {
		n++
		start := n
		scale := int64(100_000)
		for n < len(b) && b[n] >= '0' && b[n] <= '9' {
			dg := int64(b[n] - '0')
			if scale > 0 {
				us += dg * scale
				scale /= 10
			} else if dg != 0 {
				return 0, 0, false
			}
			n++
		}
		if n == start {
			return 0, 0, false
		}
	}
	return us, n, true
}

// parseTimestamp parses an ISO 8601 date or date-time: 'YYYY-MM-DD', then
// optionally a 'T' or ' ', a clock, and a zone ('Z', '±HH', '±HH:MM',
// '±HHMM'). It returns micros since the epoch of the wall clock converted to
// UTC when a zone is given, and whether one was.
func parseTimestamp(b []byte) (us int64, zoned, ok bool) {
	if len(b) < 10 {
		return 0, false, false
	}
	days, n, ok := parseDate(b)
	if !ok {
		return 0, false, false
	}
	us = days * microsPerDay
	if n == len(b) {
		return us, false, true
	}
	if b[n] != 'T' && b[n] != ' ' && b[n] != 't' {
		return 0, false, false
	}
	clock, m, ok := parseClock(b[n+1:])
	if !ok {
		return 0, false, false
	}
	us += clock
	n += 1 + m
	if n < len(b) && b[n] == ' ' {
		n++ // '2024-01-01 10:00:00 +02:00'
	}
	if n == len(b) {
		return us, false, true
	}
	switch b[n] {
	case 'Z', 'z':
		return us, true, n+1 == len(b)
	case '+', '-':
		sign := int64(1)
		if b[n] == '-' {
			sign = -1
		}
		z := b[n+1:]
		var hh, mm int64
		var ok1, ok2 bool
		switch len(z) {
		case 2:
			hh, ok1 = digits(z, 0, 2)
			ok2 = true
		case 4:
			hh, ok1 = digits(z, 0, 2)
			mm, ok2 = digits(z, 2, 2)
		case 5:
			hh, ok1 = digits(z, 0, 2)
			mm, ok2 = digits(z, 3, 2)
			ok2 = ok2 && z[2] == ':'
		}
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return 0, false, false
		}
		return us - sign*(hh*3600+mm*60)*microsPerSecond, true, true
	}
	return 0, false, false
}

// Decimal text, exact, into and out of decimal128. 38 digits fit in 127 bits.

var pow10 = func() (p [39]decimal128.Num) {
	p[0] = decimal128.FromU64(1)
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1].Mul(decimal128.FromU64(10))
	}
	return p
}()

// parseDecimal parses decimal text ('-12.340', '+.5', '7') into a decimal128
// of the given precision and scale. Fractional digits beyond scale must be
// zeros; reason says why a text is refused.
func parseDecimal(b []byte, prec, scale int32) (n decimal128.Num, reason string) {
	i := 0
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	var hi, lo uint64
	intDigits, fracDigits, sig := 0, 0, 0
	seen := false
	mul10add := func(d uint64) {
		h1, l1 := bits.Mul64(lo, 10)
		var c uint64
		lo, c = bits.Add64(l1, d, 0)
		hi = hi*10 + h1 + c
	}
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		seen = true
		intDigits++
		if sig > 0 || b[i] != '0' {
			sig++
			if sig > 38 {
				return n, "more than 38 digits"
			}
			mul10add(uint64(b[i] - '0'))
		}
	}
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			seen = true
			if int32(fracDigits) >= scale {
				if b[i] != '0' {
					return n, "more fractional digits than the column's scale"
				}
				continue
			}
			fracDigits++
			if sig > 0 || b[i] != '0' {
				sig++
				if sig > 38 {
					return n, "more than 38 digits"
				}
			}
			mul10add(uint64(b[i] - '0'))
		}
	}
	if !seen || i != len(b) {
		return n, "not a decimal number"
	}
	for ; int32(fracDigits) < scale; fracDigits++ {
		mul10add(0)
	}
	n = decimal128.New(int64(hi), lo)
	if prec < 38 && !n.Less(pow10[prec]) {
		return decimal128.Num{}, "more digits than the column's precision"
	}
	if neg {
		n = n.Negate()
	}
	return n, ""
}

// appendDecimal writes n with scale fractional digits.
func appendDecimal(b []byte, n decimal128.Num, scale int32) []byte {
	if n.Sign() < 0 {
		b = append(b, '-')
		n = n.Negate()
	}
	hi, lo := uint64(n.HighBits()), n.LowBits()
	var tmp [48]byte
	i := len(tmp)
	// Divide by 10^19 twice at most, then print the remainders.
	const e19 = uint64(10_000_000_000_000_000_000)
	var chunks [3]uint64
	nc := 0
	for {
		hq := hi / e19
		hr := hi % e19
		lq, r := bits.Div64(hr, lo, e19)
		chunks[nc] = r
		nc++
		hi, lo = hq, lq
		if hi == 0 && lo == 0 {
			break
		}
	}
	for c := 0; c < nc; c++ {
		v := chunks[c]
		for k := 0; k < 19; k++ {
			if c == nc-1 && v == 0 && k > 0 {
				break
			}
			i--
			tmp[i] = byte('0' + v%10)
			v /= 10
		}
	}
	return connectors.AppendScaled(b, tmp[i:], scale)
}

// validNumeric reports whether b is a decimal number as SQL writes one:
// optional sign, digits with an optional point, optional exponent.
func validNumeric(b []byte) bool {
	i := 0
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		i++
	}
	seen := false
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		seen = true
	}
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			seen = true
		}
	}
	if !seen {
		return false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		if i == start {
			return false
		}
	}
	return i == len(b)
}

// parseInt parses a base-10 int64 from bytes.
func parseInt(b []byte) (int64, bool) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		i++
	}
	if i == len(b) {
		return 0, false
	}
	var u uint64
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (1<<63)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
		if u > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(u), true // -(1<<63) wraps to itself: MinInt64
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

// parseUUIDText parses the 36-character form (any case) or 32 hex digits.
func parseUUIDText(b []byte, u *[16]byte) bool {
	j := 0
	for i := 0; i < len(b); {
		if b[i] == '-' && len(b) == 36 && (i == 8 || i == 13 || i == 18 || i == 23) {
			i++
			continue
		}
		if j == 16 || i+1 >= len(b) {
			return false
		}
		h, l := hexVal[b[i]], hexVal[b[i+1]]
		if h == 0xff || l == 0xff {
			return false
		}
		u[j] = h<<4 | l
		j++
		i += 2
	}
	return j == 16 && (len(b) == 32 || len(b) == 36)
}

// appendUUID writes the canonical lowercase form.
func appendUUID(b []byte, u []byte) []byte {
	const hexd = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexd[c>>4], hexd[c&0xf])
	}
	return b
}
