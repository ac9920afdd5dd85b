package search

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalize folds s for string search: Unicode decomposition with the
// combining marks removed (accents), lower case, and runs of white space
// collapsed to one space.
func normalize(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || (c >= 'A' && c <= 'Z') || c == '\t' || c == '\n' || c == '\r' || (c == ' ' && (i == 0 || s[i-1] == ' ' || i == len(s)-1)) {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := true // drop leading space
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		space = false
		switch r {
		case 'ß':
			b.WriteString("ss")
		case 'æ', 'Æ':
			b.WriteString("ae")
		case 'ø', 'Ø':
			b.WriteByte('o')
		case 'œ', 'Œ':
			b.WriteString("oe")
		case 'ł', 'Ł':
			b.WriteByte('l')
		case 'đ', 'Đ':
			b.WriteByte('d')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return strings.TrimSuffix(b.String(), " ")
}

// Sentinels for open date bounds. BSON dates have millisecond precision and
// FerretDB stores them as JSON, so the bounds stay within years 1..9999.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999000000, time.UTC)
)

// dateRange is a half-open instant range [lo, hi).
type dateRange struct{ lo, hi time.Time }

// parseDate parses a FHIR date, dateTime or instant (and the search forms
// without seconds) into the range it denotes: 2024 is the whole year,
// 2024-03-01T10:00:00Z one second. A value without a time zone is taken as
// UTC. Bounds are truncated to milliseconds (the lower down, the upper up).
func parseDate(s string) (dateRange, bool) {
	var zero dateRange
	n := len(s)
	if n < 4 {
		return zero, false
	}
	num := func(from, to int) (int, bool) {
		if to > len(s) {
			return 0, false
		}
		v := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok || year == 0 {
		return zero, false
	}
	if n == 4 {
		lo := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		return dateRange{lo, lo.AddDate(1, 0, 0)}, true
	}
	if s[4] != '-' {
		return zero, false
	}
	month, ok := num(5, 7)
	if !ok || month < 1 || month > 12 {
		return zero, false
	}
	if n == 7 {
		lo := time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return dateRange{lo, lo.AddDate(0, 1, 0)}, true
	}
	if n < 10 || s[7] != '-' {
		return zero, false
	}
	day, ok := num(8, 10)
	if !ok || day < 1 || day > daysIn(year, month) {
		return zero, false
	}
	if n == 10 {
		lo := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		return dateRange{lo, lo.AddDate(0, 0, 1)}, true
	}
	if s[10] != 'T' || n < 16 || s[13] != ':' {
		return zero, false
	}
	hour, ok1 := num(11, 13)
	min, ok2 := num(14, 16)
	if !ok1 || !ok2 || hour > 23 || min > 59 {
		return zero, false
	}
	i := 16
	sec, nanos := 0, 0
	step := time.Minute
	if i < n && s[i] == ':' {
		v, ok := num(i+1, i+3)
		if !ok || v > 59 {
			return zero, false
		}
		sec = v
		i += 3
		step = time.Second
		if i < n && s[i] == '.' {
			j := i + 1
			for j < n && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			digits := j - i - 1
			if digits == 0 || digits > 9 {
				return zero, false
			}
			f, _ := num(i+1, j)
			for k := digits; k < 9; k++ {
				f *= 10
			}
			nanos = f
			step = time.Duration(math.Pow10(9 - digits))
			i = j
		}
	}
	loc := time.UTC
	switch {
	case i == n:
	case s[i] == 'Z' && i+1 == n:
	case (s[i] == '+' || s[i] == '-') && n == i+6 && s[i+3] == ':':
		h, ok1 := num(i+1, i+3)
		m, ok2 := num(i+4, i+6)
		if !ok1 || !ok2 || h > 14 || m > 59 {
			return zero, false
		}
		off := h*3600 + m*60
		if s[i] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return zero, false
	}
	lo := time.Date(year, time.Month(month), day, hour, min, sec, nanos, loc).UTC()
	hi := lo.Add(step)
	lo = lo.Truncate(time.Millisecond)
	if t := hi.Truncate(time.Millisecond); !t.Equal(hi) {
		hi = t.Add(time.Millisecond)
	}
	return dateRange{clampTime(lo), clampTime(hi)}, true
}

func clampTime(t time.Time) time.Time {
	if t.Before(minTime) {
		return minTime
	}
	if t.After(maxTime) {
		return maxTime
	}
	return t
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// number is a parsed decimal with its implicit precision range [lo, hi).
type number struct {
	v, lo, hi float64
}

// parseNumber parses a FHIR decimal (search form: also exponents), giving
// the range its precision implies: 100 is [99.5, 100.5), 1.50 [1.495,
// 1.505), 1e2 [50, 150).
func parseNumber(s string) (number, bool) {
	if s == "" || len(s) > 64 {
		return number{}, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return number{}, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return number{}, false
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return number{}, false
		}
		exp = e
		// Exponent forms count significant digits of the mantissa.
	}
	decimals := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		decimals = len(mant) - i - 1
	}
	lo, hi := precisionBounds(s, exp-decimals)
	return number{v: v, lo: lo, hi: hi}, true
}

// precisionBounds returns s ± 0.5×10^scale, computed exactly and then
// rounded to the nearest float64, so that a bound equals the float64 of
// the decimal it stands for (5.4 gives 5.35, not 5.3500000000000005, and
// a stored 5.35 lies in [5.35, 5.45)).
func precisionBounds(s string, scale int) (float64, float64) {
	v, _ := strconv.ParseFloat(s, 64)
	if scale < -400 || scale > 400 {
		// Beyond float64's range the bounds round to v or overflow
		// anyway; avoid big powers of ten for absurd exponents.
		half := 0.5 * math.Pow10(scale)
		return v - half, v + half
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		half := 0.5 * math.Pow10(scale)
		return v - half, v + half
	}
	half := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(scale))), nil))
	if scale < 0 {
		half.Inv(half)
	}
	half.Quo(half, big.NewRat(2, 1))
	lo, _ := new(big.Rat).Sub(r, half).Float64()
	hi, _ := new(big.Rat).Add(r, half).Float64()
	return lo, hi
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}
