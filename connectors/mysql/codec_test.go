package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/datashift/datashift/connectors"
)

// Pure tests of the text codecs; the server tests cover them end to end.

func TestParseDatetimeMatchesTime(t *testing.T) {
	for _, s := range []string{"0001-01-01 00:00:00", "1969-12-31 23:59:59.999999", "1970-01-01 00:00:00",
		"2000-02-29 12:00:00.5", "2024-02-29 23:59:59.000001", "9999-12-31 23:59:59.999999", "1600-03-01"} {
		us, err := parseDatetime([]byte(s))
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		layout := "2006-01-02 15:04:05.999999"
		if len(s) == 10 {
			layout = "2006-01-02"
		}
		want, _ := time.Parse(layout, s)
		if us != want.UnixMicro() {
			t.Errorf("%s: %d, want %d", s, us, want.UnixMicro())
		}
		// And back: the writer's text is what the server would print.
		got := string(appendDatetime(nil, us, len(s) > 10))
		if strings.TrimRight(strings.TrimRight(got, "0"), ".") != strings.TrimRight(strings.TrimRight(s, "0"), ".") && got != s {
			t.Errorf("appendDatetime(%s) = %s", s, got)
		}
	}
	for _, bad := range []string{"0000-00-00", "0000-00-00 00:00:00", "2001-00-10", "2001-13-01", "20x1-01-01", "2001-01-01 25:00:00", "2001-01-01 00:00:00.1234567"} {
		if _, err := parseDatetime([]byte(bad)); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

func TestParseTimeOfDay(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"00:00:00":         0,
		"23:59:59.999999":  24*time.Hour - time.Microsecond,
		"-838:59:59":       -(838*time.Hour + 59*time.Minute + 59*time.Second),
		"100:00:00.5":      100*time.Hour + 500*time.Millisecond,
		"-00:00:01.000001": -(time.Second + time.Microsecond),
	} {
		us, err := parseTimeOfDay([]byte(s))
		if err != nil || time.Duration(us)*time.Microsecond != want {
			t.Errorf("%s: %d, %v; want %v", s, us, err, want)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	for _, c := range []struct {
		in          string
		prec, scale int32
		want        string
		ok          bool
	}{
		{"1.50", 10, 2, "1.50", true},
		{"-0.05", 3, 2, "-0.05", true},
		{"12345678901234567890123456789.123456789", 38, 9, "12345678901234567890123456789.123456789", true},
		{"-99999999999999999999999999999999999999", 38, 0, "-99999999999999999999999999999999999999", true},
		{"1.5", 10, 3, "1.500", true},
		{"1.505", 10, 2, "", false},  // would round
		{"1000.0", 4, 1, "", false},  // too many digits
		{"1e5", 10, 0, "", false},    // not a decimal
		{"", 10, 0, "", false},       // empty
		{"0.00", 2, 2, "0.00", true}, // zero at full scale
		{"+7", 1, 0, "7", true},      // explicit sign
		{"123.4500", 5, 2, "123.45", true},
	} {
		n, err := parseDecimal([]byte(c.in), c.prec, c.scale)
		if (err == nil) != c.ok {
			t.Errorf("parseDecimal(%q, %d, %d): err %v", c.in, c.prec, c.scale, err)
			continue
		}
		if c.ok {
			if got := connectors.DecimalString(n, c.scale); got != c.want {
				t.Errorf("parseDecimal(%q) = %s, want %s", c.in, got, c.want)
			}
			if got := string(appendDecimal(nil, n, c.scale)); got != c.want {
				t.Errorf("appendDecimal(%q) = %s, want %s", c.in, got, c.want)
			}
		}
	}
	big, _ := decimal128.FromString("-12345678901234567890123.45", 38, 2)
	if got := string(appendDecimal(nil, big, 2)); got != "-12345678901234567890123.45" {
		t.Errorf("appendDecimal beyond int64 = %s", got)
	}
}

func TestFitsNumeric(t *testing.T) {
	tiny := &column{kind: kInt, dataType: "tinyint", sqlType: "tinyint(4)"}
	utiny := &column{kind: kUint, dataType: "tinyint", sqlType: "tinyint(3) unsigned"}
	ubig := &column{kind: kUint, dataType: "bigint", sqlType: "bigint(20) unsigned"}
	big := &column{kind: kInt, dataType: "bigint", sqlType: "bigint(20)"}
	dec := &column{kind: kDecimal, precision: 5, scale: 2, sqlType: "decimal(5,2)"}
	for _, c := range []struct {
		t  *column
		v  string
		ok bool
	}{
		{tiny, "-128", true}, {tiny, "-129", false}, {tiny, "127", true}, {tiny, "128", false},
		{tiny, "-0", true}, {tiny, "5.0", true}, {tiny, "5.5", false}, {tiny, "x", false},
		{utiny, "255", true}, {utiny, "256", false}, {utiny, "-1", false},
		{ubig, "18446744073709551615", true}, {ubig, "18446744073709551616", false},
		{big, "-9223372036854775808", true}, {big, "-9223372036854775809", false}, {big, "9223372036854775808", false},
		{dec, "999.99", true}, {dec, "-999.99", true}, {dec, "1000", false}, {dec, "0.001", false},
		{dec, "0.0010", false}, {dec, "000123.10000", true},
	} {
		if err := fitsNumeric([]byte(c.v), c.t); (err == nil) != c.ok {
			t.Errorf("%s into %s: err %v, want ok=%v", c.v, c.t.sqlType, err, c.ok)
		}
	}
}

func TestTSVAndSQLEscaping(t *testing.T) {
	in := []byte("a\tb\nc\rd\\e\x00f'g\"h\x1ai")
	if got := string(appendTSV(nil, in)); got != `a\tb\nc\rd\\e\0f'g"h`+"\x1ai" {
		t.Errorf("TSV: %q", got)
	}
	if got := string(appendSQLString(nil, in)); got != `'a`+"\t"+`b\nc\rd\\e\0f\'g\"h\Zi'` {
		t.Errorf("SQL: %q", got)
	}
	if got := string(appendHexLiteral(nil, []byte{0, 0xff})); got != "X'00ff'" {
		t.Errorf("hex: %s", got)
	}
}

func TestRangeWhereShapes(t *testing.T) {
	a := &column{name: "a", kind: kInt}
	b := &column{name: "b", kind: kString, charset: "utf8mb4", collation: "utf8mb4_general_ci", dataType: "varchar"}
	cond, args, err := rangeWhere([]*column{a, b}, "", connectors.Range{After: connectors.Key{int64(1), "x"}, Hi: connectors.Key{int64(5), "y"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "`a` IS NOT NULL AND `b` IS NOT NULL AND " +
		"(`a` >= ? AND (`a` > ? OR (`a` = ? AND CAST(`b` AS BINARY) > ?))) AND " +
		"(`a` <= ? AND (`a` < ? OR (`a` = ? AND CAST(`b` AS BINARY) < ?)))"
	if cond != want || len(args) != 8 {
		t.Errorf("got %s %v\nwant %s", cond, args, want)
	}
	if _, _, err := rangeWhere(nil, "", connectors.Range{Lo: connectors.Key{int64(1)}}); err == nil {
		t.Error("a bounded range without key columns was accepted")
	}
	if cond, _, err := rangeWhere(nil, "", connectors.Range{}); cond != "" || err != nil {
		t.Errorf("no key, no bounds: %q %v", cond, err)
	}
	if _, _, err := rangeWhere([]*column{a}, "", connectors.Range{Pages: &connectors.PageRange{}}); err == nil {
		t.Error("a page range was accepted")
	}
	if _, _, err := rangeWhere([]*column{a}, "", connectors.Range{Lo: connectors.Key{int64(1), int64(2)}}); err == nil {
		t.Error("a bound with too many values was accepted")
	}
}
