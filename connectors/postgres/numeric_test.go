package postgres

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// decimalText writes c × 10^-scale with exactly scale digits after the point.
func decimalText(neg bool, c uint64, scale int) string {
	d := strconv.FormatUint(c, 10)
	for len(d) <= scale {
		d = "0" + d
	}
	s := d
	if scale > 0 {
		s = d[:len(d)-scale] + "." + d[len(d)-scale:]
	}
	if neg && c != 0 {
		s = "-" + s
	}
	return s
}

// The integer fast path and the digit-string path produce the same bytes,
// and decoding gives back the exact text.
func TestNumericEncodings(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []uint64{0, 1, 9, 10, 9999, 10000, 10001, 99990000, 1e8, 1e16, 1e19, 18446744073709551615, 123456789012345678}
	for i := 0; i < 5000; i++ {
		values = append(values, r.Uint64()>>r.IntN(64))
	}
	for _, c := range values {
		for scale := 0; scale <= 16; scale++ {
			neg := c%3 == 0
			text := decimalText(neg, c, scale)
			fast := appendNumericUint(nil, neg, c, scale, scale)
			negS, intD, fracD, _, err := splitDecimal([]byte(text), nil)
			if err != nil {
				t.Fatal(err)
			}
			slow := appendNumeric(nil, negS, intD, fracD, scale)
			if !bytes.Equal(fast, slow) {
				t.Fatalf("%s: fast %x, slow %x", text, fast, slow)
			}
			back, err := appendNumericText(nil, fast)
			if err != nil || string(back) != text {
				t.Fatalf("%s decodes as %s, %v", text, back, err)
			}
			if scale <= 18 && c < 1e18 {
				n, err := numericToDecimal(fast, scale)
				want := decimal128.FromU64(c)
				if neg && c != 0 {
					want = want.Negate()
				}
				if err != nil || n != want {
					t.Fatalf("%s to decimal(%d): %v, %v", text, scale, n, err)
				}
			}
		}
	}
}

func TestSplitDecimal(t *testing.T) {
	for in, want := range map[string]string{
		"1.50": "+1|50", "-0.001": "-0|001", "12e3": "+12000|", "1.5E-3": "+|0015", " 42 ": "+42|",
		"+7": "+7|", ".5": "+|5", "NaN": "NaN", "-Infinity": "-Infinity", "1e": "error", "abc": "error", "": "error",
	} {
		neg, i, f, special, err := splitDecimal([]byte(in), nil)
		got := special
		switch {
		case err != nil:
			got = "error"
		case special == "":
			got = map[bool]string{true: "-", false: "+"}[neg] + string(i) + "|" + string(f)
		}
		if got != want {
			t.Errorf("splitDecimal(%q) = %s, want %s", in, got, want)
		}
	}
}
