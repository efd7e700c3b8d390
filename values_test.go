package wsrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// The fast paths must agree with encoding/json on every input they take.

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "€", "𝄞", "<", "&"}
	for range 5000 {
		var sb strings.Builder
		for range r.IntN(40) {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := sb.String()
		out := appendString(nil, s)
		require.True(t, json.Valid(out), "%q -> %s", s, out)
		var back string
		require.NoError(t, json.Unmarshal(out, &back))
		require.Equal(t, s, back)
		// The scanner accepts what it wrote, and finds the same end.
		end, _, err := scanString(out, 0)
		require.NoError(t, err)
		require.Equal(t, len(out), end)
	}
}

// Long strings take the vectorised paths of scanString and appendString;
// they must agree with encoding/json on what is valid and what it means,
// wherever in the string the one odd byte sits.
func TestLongStringsMatchEncodingJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	odd := []string{"", "\"", "\\", "\n", "\x00", "\x1f", "é", "𝄞", "\xff", "\xc3", "\\\"", "\\u00e9", "\\x", "\\u12"}
	for range 4000 {
		n := longRun + r.IntN(3*longRun)
		b := []byte(strings.Repeat("y", n))
		o := odd[r.IntN(len(odd))]
		at := r.IntN(n + 1)
		tok := append([]byte{'"'}, append(append(b[:at:at], o...), b[at:]...)...)
		tok = append(tok, '"')
		// scanString accepts exactly the strings encoding/json does (which
		// also takes invalid UTF-8; wsrpc refuses it), and ends each at its
		// closing quote.
		valid := func(b []byte) bool { return json.Valid(b) && utf8.Valid(b) }
		for _, in := range [][]byte{tok, tok[:len(tok)-1]} {
			end, _, err := scanString(in, 0)
			if err == nil {
				require.True(t, valid(in[:end]), "%q", in[:end])
				if end < len(in) {
					require.False(t, valid(in), "%q", in)
				}
			} else {
				require.False(t, valid(in), "%q", in)
			}
		}

		s := string(tok[1 : len(tok)-1])
		if !utf8.ValidString(s) {
			continue
		}
		out := appendString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(out, &back), "%q -> %s", s, out)
		require.Equal(t, s, back)
	}
}

// skipValue trusts the scanner's validation and must find the same ends,
// most of all for strings whose quotes follow runs of backslashes.
func TestSkipValueMatchesScanValue(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	pieces := []string{"a", `\`, `"`, "é", " ", "[", "]", "{", "}", ","}
	str := func() string {
		var sb strings.Builder
		for range r.IntN(3 * longRun) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		return sb.String()
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch k := r.IntN(6); {
		case k == 0 && depth < 4:
			l := make([]any, r.IntN(4))
			for i := range l {
				l[i] = value(depth + 1)
			}
			return l
		case k == 1 && depth < 4:
			m := map[string]any{}
			for range r.IntN(4) {
				m[str()] = value(depth + 1)
			}
			return m
		case k == 2:
			return r.NormFloat64() * 1e6
		case k == 3:
			return []any{true, false, nil}[r.IntN(3)]
		default:
			return str()
		}
	}
	for range 3000 {
		var elems [][]byte
		arr := []byte{'['}
		for i := range 1 + r.IntN(4) {
			b, err := json.Marshal(value(0))
			require.NoError(t, err)
			if i > 0 {
				arr = append(arr, []string{",", " ,", ", ", " ,\n"}[r.IntN(4)]...)
			}
			elems = append(elems, b)
			arr = append(arr, b...)
		}
		arr = append(arr, ']')
		end, err := scanValue(arr, 0, 0)
		require.NoError(t, err)
		require.Equal(t, end, skipValue(arr, 0), "%s", arr)
		require.Equal(t, elems, splitArray(nil, arr), "%s", arr)
	}
}

func TestHasCtl(t *testing.T) {
	t.Parallel()
	for n := range 80 {
		for pos := -1; pos < n; pos++ {
			for _, c := range []byte{0, 0x1f, 0x20, 0x7f, 0x80, 0xff} {
				b := []byte(strings.Repeat("\x20", n))
				if pos >= 0 {
					b[pos] = c
				}
				require.Equal(t, pos >= 0 && c < 0x20, hasCtl(b), "byte %#x at %d of %d", c, pos, n)
			}
		}
	}
}

func TestPlainRun(t *testing.T) {
	t.Parallel()
	for _, special := range []byte{'"', '\\', 0, 0x1f, 0x80, 0xff} {
		for pos := range 40 {
			b := []byte(strings.Repeat("x", 40))
			b[pos] = special
			require.Equal(t, pos, plainRun(b, 0), "byte %#x at %d", special, pos)
			require.Equal(t, pos, plainRun(stringBytes(string(b)), 0))
		}
	}
	require.Equal(t, 40, plainRun([]byte(strings.Repeat("~", 40)), 0))
}

func TestAppendBasicMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	values := []any{
		[2]int{1, -2}, []int8{-128, 127}, []uint64{0, 1<<64 - 1}, [1]string{"a\"b<>é"},
		[]string{}, []string(nil), []bool{true, false}, []float64{0, 1.5, 1e21, 1e-7, -3.25e-10, 123456789},
		[]float32{1.1, 3e-7}, 3.0, float32(0.1), int16(-7), uint8(200), "x",
		[3]int8{-1, 0, 127}, []uint16{65535}, [2]int32{-1 << 31, 1<<31 - 1}, []uint32{1<<32 - 1},
		[2]float32{-0.5, 1e30}, [0]int{}, []int64{}, true, [2]bool{false, true}, uint(7), int64(-1 << 63),
	}
	for _, v := range values {
		got, ok := appendBasic(nil, v)
		require.True(t, ok, "%T", v)
		want, err := json.Marshal(v)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(got), "%T %v", v, v)
	}
	type named string
	for _, v := range []any{[]byte("x"), []named{"a"}, named("a"), struct{}{}, []any{1}} {
		_, ok := appendBasic(nil, v)
		require.False(t, ok, "%T has its own JSON rules", v)
	}
}

func TestBasicParamsDecode(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "strs", func(_ context.Context, p [3]string) (string, error) { return strings.Join(p[:], "|"), nil })
	Register(m, "ints", func(_ context.Context, p []int8) (int, error) { return len(p), nil })
	Register(m, "f", func(_ context.Context, p float64) (float64, error) { return p * 2, nil })
	Register(m, "b", func(_ context.Context, p []bool) (bool, error) { return p[0] && !p[1], nil })
	_, raw := rawPeer(t, &options{Methods: m})
	ok := map[string]string{
		`{"jsonrpc":"2.0","id":1,"method":"strs","params":["a","b\"c","é"]}`: `"a|b\"c|é"`,
		`{"jsonrpc":"2.0","id":1,"method":"strs","params":["a"]}`:            `"a||"`,
		`{"jsonrpc":"2.0","id":1,"method":"strs","params":["a",null,"c"]}`:   `"a||c"`,
		`{"jsonrpc":"2.0","id":1,"method":"ints","params":[1,-128,127]}`:     `3`,
		`{"jsonrpc":"2.0","id":1,"method":"f","params":[1.25e2]}`:            `250`,
		`{"jsonrpc":"2.0","id":1,"method":"b","params":[true,false]}`:        `true`,
	}
	for in, want := range ok {
		out := exchange(t, raw, in)
		require.JSONEq(t, `{"jsonrpc":"2.0","id":1,"result":`+want+`}`, out, in)
	}
	bad := []string{
		`{"jsonrpc":"2.0","id":1,"method":"strs","params":["a","b","c","d"]}`,
		`{"jsonrpc":"2.0","id":1,"method":"strs","params":[1]}`,
		`{"jsonrpc":"2.0","id":1,"method":"ints","params":[128]}`,
		`{"jsonrpc":"2.0","id":1,"method":"ints","params":[1.5]}`,
		`{"jsonrpc":"2.0","id":1,"method":"f","params":["1"]}`,
		`{"jsonrpc":"2.0","id":1,"method":"f","params":[1,2]}`,
		`{"jsonrpc":"2.0","id":1,"method":"b","params":[1]}`,
	}
	for _, in := range bad {
		out := exchange(t, raw, in)
		require.Contains(t, out, `"code":-32602`, in)
		require.NotContains(t, out, "int8", in)
		require.NotContains(t, out, "float64", in)
		require.True(t, utf8.ValidString(out))
	}
}

// TestLargeResultsHandedOver exercises results of handOverMin bytes and
// more, which the reader hands to the call in its own buffer instead of
// copying: concurrent single calls, and a batch (which copies).
func TestLargeResultsHandedOver(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "big", func(_ context.Context, p [2]int) (string, error) {
		return strings.Repeat(string(rune('a'+p[0]%26)), p[1]), nil
	})
	a, _ := pipePair(t, nil, &options{Methods: m})
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 50 {
				n := handOverMin/2 + (g*131+i*977)%(4*handOverMin)
				s, err := Call[string](context.Background(), a, "big", [2]int{g + i, n})
				if err == nil && s != strings.Repeat(string(rune('a'+(g+i)%26)), n) {
					err = fmt.Errorf("call %d/%d: wrong result of %d bytes", g, i, len(s))
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-done)
	}
	var r1, r2 string
	require.NoError(t, a.Batch(context.Background(), func(b *Batch) {
		b.Call("big", [2]int{1, 3 * handOverMin}, &r1)
		b.Call("big", [2]int{2, 10}, &r2)
	}))
	require.Equal(t, strings.Repeat("b", 3*handOverMin), r1)
	require.Equal(t, "cccccccccc", r2)
}

// The typed decoders trust params the scanner validated. Params a
// middleware put in their place are validated again: broken JSON gets
// -32602, never a panic or a wrong value.
func TestRewrittenParamsAreValidated(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	m.Use(func(next Handler) Handler {
		return func(ctx context.Context, req *Request) (any, error) {
			switch string(req.Params) {
			case `["cut"]`:
				req.Params = json.RawMessage(`["abc`)
			case `["swap"]`:
				req.Params = json.RawMessage(`["x\"y", "z"]`)
			}
			return next(ctx, req)
		}
	})
	Register(m, "strs", func(_ context.Context, p [2]string) (string, error) { return p[0] + "|" + p[1], nil })
	_, raw := rawPeer(t, &options{Methods: m})
	out := exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"strs","params":["cut"]}`)
	require.Contains(t, out, `"code":-32602`)
	out = exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"strs","params":["swap"]}`)
	require.JSONEq(t, `{"jsonrpc":"2.0","id":1,"result":"x\"y|z"}`, out)
}

// Strings longer than a chunk are checked a chunk at a time: an odd byte
// or a multi-byte rune on either side of a chunk's end must be found or
// kept whole, in scanString and in appendValidString alike.
func TestStringsAcrossChunks(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	odd := []string{"\"", "\\", "\n", "\x00", "é", "€", "𝄞", "\xff", "\xc3", "\xe2\x82", "\\u00e9"}
	for range 300 {
		n := stringChunk*(1+r.IntN(2)) + r.IntN(2*longRun) - longRun
		b := []byte(strings.Repeat("y", n))
		o := odd[r.IntN(len(odd))]
		// Near a chunk's end, where chunkEnd moves back over a rune.
		at := min(n, max(0, stringChunk*(1+r.IntN(2))-4+r.IntN(8)))
		s := string(append(append(b[:at:at], o...), b[at:]...))

		out, ok := appendValidString(nil, s)
		require.Equal(t, utf8.ValidString(s), ok, "odd %q at %d", o, at)
		if ok {
			want, err := json.Marshal(s)
			require.NoError(t, err)
			var back, wantBack string
			require.NoError(t, json.Unmarshal(out, &back))
			require.NoError(t, json.Unmarshal(want, &wantBack))
			require.Equal(t, wantBack, back, "odd %q at %d", o, at)
		}

		tok := []byte(`"` + s + `"`)
		end, _, err := scanString(tok, 0)
		if json.Valid(tok) && utf8.Valid(tok) {
			require.NoError(t, err, "odd %q at %d", o, at)
			require.Equal(t, len(tok), end)
		} else if err == nil {
			require.Less(t, end, len(tok), "odd %q at %d: accepted whole", o, at)
		}
	}
}

// TestBasicDecoderMatchesEncodingJSON checks the in-place decoder of basic
// params against encoding/json, value by value, for every width: the same
// values where encoding/json succeeds, an error where it fails.
func TestBasicDecoderMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	tokens := []string{
		"0", "-0", "1", "-1", "127", "128", "-128", "-129", "255", "256", "32767", "32768", "-32769",
		"65535", "65536", "2147483647", "2147483648", "-2147483649", "4294967295", "4294967296",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"18446744073709551615", "18446744073709551616", "123456789012345678", "1234567890123456789",
		"1.5", "1e2", "-2.5e-3", "3.4e38", "3.5e38", "1e400", "true", "false", "null", `"x"`, `"a\"b\u00e9"`,
	}
	check := func(t *testing.T, typ reflect.Type, params string) {
		d := newBasicDecoder(typ)
		if d == nil && typ.Elem().Kind() == reflect.Uint8 {
			return // bytes are not basic lists: encoding/json's rules
		}
		require.NotNil(t, d, typ)
		got := reflect.New(typ)
		err := d.decode([]byte(params), got.UnsafePointer())
		want := reflect.New(typ)
		var wantErr error
		if typ.Kind() == reflect.Array || typ.Kind() == reflect.Slice {
			wantErr = json.Unmarshal([]byte(params), want.Interface())
		} else {
			var one [1]json.RawMessage
			require.NoError(t, json.Unmarshal([]byte(params), &one))
			wantErr = json.Unmarshal(one[0], want.Interface())
		}
		if wantErr != nil {
			require.Error(t, err, "%v %s", typ, params)
			return
		}
		require.NoError(t, err, "%v %s", typ, params)
		require.Equal(t, want.Elem().Interface(), got.Elem().Interface(), "%v %s", typ, params)
	}
	for _, typ := range []reflect.Type{
		reflect.TypeFor[int](), reflect.TypeFor[int8](), reflect.TypeFor[int16](), reflect.TypeFor[int32](), reflect.TypeFor[int64](),
		reflect.TypeFor[uint](), reflect.TypeFor[uint8](), reflect.TypeFor[uint16](), reflect.TypeFor[uint32](), reflect.TypeFor[uint64](),
		reflect.TypeFor[float32](), reflect.TypeFor[float64](), reflect.TypeFor[bool](), reflect.TypeFor[string](),
	} {
		for _, tok := range tokens {
			check(t, typ, "["+tok+"]")
			check(t, reflect.ArrayOf(3, typ), "[null,"+tok+"]")
			check(t, reflect.SliceOf(typ), "["+tok+","+tok+"]")
			check(t, reflect.ArrayOf(2, typ), "[ "+tok+" ,\n"+tok+"\t]")
		}
	}
}

// TestAppendIntMatchesStrconv: the short paths for small numbers write what
// strconv writes, on both sides of every boundary.
func TestAppendIntMatchesStrconv(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{0, 1, 9, 10, 11, 99, 100, 101, 12345, -1, -9, -10, -99, -100, math.MaxInt64, math.MinInt64} {
		require.Equal(t, strconv.AppendInt([]byte("x"), n, 10), appendInt([]byte("x"), n), n)
		if n >= 0 {
			require.Equal(t, strconv.AppendUint(nil, uint64(n), 10), appendUint(nil, uint64(n)), n)
		}
	}
	require.Equal(t, "18446744073709551615", string(appendUint(nil, math.MaxUint64)))
}
