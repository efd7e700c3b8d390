package wsrpc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"
)

// This file holds the fast paths for params and results made of basic
// values (strings, numbers, booleans, and arrays or slices of them): they
// are encoded and decoded here directly instead of through encoding/json,
// which would validate and scan the bytes the envelope scanner has already
// validated once. Everything else goes through encoding/json (or the Codec).

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainRun returns the index of the first byte at or after i that needs a
// second look inside a JSON string: a quote, a backslash, a control
// character or a non-ASCII byte. It checks sixteen bytes per step.
func plainRun(b []byte, i int) int {
	for ; i+16 <= len(b); i += 16 {
		if special(binary.LittleEndian.Uint64(b[i:]))|special(binary.LittleEndian.Uint64(b[i+8:])) != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return i
		}
	}
	return i
}

// longRun is the length of plain string from which scanning switches from
// plainRun to the runtime's vectorised byte search (bytes.IndexByte), whose
// set-up costs more than plainRun on short strings.
const longRun = 64

// stringChunk is how much of a long string is checked (and, when encoded,
// copied) at a time: every pass over a chunk runs while it is still in the
// CPU's cache, where passes over a whole string of a MiB would each read
// it from memory again.
const stringChunk = 16 << 10

// chunkEnd returns the end of the chunk of b starting at i: stringChunk
// bytes on, moved back to the start of a UTF-8 sequence so that a chunk
// of valid text is valid on its own.
func chunkEnd(b []byte, i int) int {
	end := min(i+stringChunk, len(b))
	for k := 0; k < utf8.UTFMax-1 && end < len(b) && end > i+1 && b[end]&0xc0 == 0x80; k++ {
		end--
	}
	return end
}

// plainText reports whether b is text a JSON string holds as it is,
// quotes and backslashes aside: no control character, and valid UTF-8.
// ASCII, the common case, takes one pass.
func plainText(b []byte) bool {
	return plainASCII(b) || !hasCtl(b) && utf8.Valid(b)
}

// plainASCII reports whether every byte of b is from 0x20 to 0x7f.
func plainASCII(b []byte) bool {
	for len(b) >= 32 {
		w0 := binary.LittleEndian.Uint64(b)
		w1 := binary.LittleEndian.Uint64(b[8:])
		w2 := binary.LittleEndian.Uint64(b[16:])
		w3 := binary.LittleEndian.Uint64(b[24:])
		// A byte below 0x20 borrows into its high bit; one of 0x80 or
		// more has it set already.
		if ((w0-lsb*0x20)|w0|(w1-lsb*0x20)|w1|(w2-lsb*0x20)|w2|(w3-lsb*0x20)|w3)&msb != 0 {
			return false
		}
		b = b[32:]
	}
	for _, c := range b {
		if c < 0x20 || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hasCtl reports whether b holds a control character (a byte below 0x20),
// which JSON strings must escape.
func hasCtl(b []byte) bool {
	for len(b) >= 32 {
		w0 := binary.LittleEndian.Uint64(b)
		w1 := binary.LittleEndian.Uint64(b[8:])
		w2 := binary.LittleEndian.Uint64(b[16:])
		w3 := binary.LittleEndian.Uint64(b[24:])
		if (below20(w0)|below20(w1)|below20(w2)|below20(w3))&msb != 0 {
			return true
		}
		b = b[32:]
	}
	for len(b) >= 8 {
		if below20(binary.LittleEndian.Uint64(b))&msb != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// below20 has a high bit set (under msb) if and only if some byte of w is
// below 0x20. A borrow only leaves a byte that is below 0x20 itself, so the
// false positives it causes come after a true one; bytes of 0x80 and up are
// masked out by ^w.
func below20(w uint64) uint64 { return (w - lsb*0x20) &^ w }

// special has the high bit set in some byte if a byte of w is a quote, a
// backslash, below 0x20 or above 0x7f (and may flag bytes after one that
// is: callers then look byte by byte).
func special(w uint64) uint64 {
	q := w ^ (lsb * '"')
	e := w ^ (lsb * '\\')
	return ((w-lsb*0x20) & ^w | (q-lsb)&^q | (e-lsb)&^e | w) & msb
}

// stringBytes views s as bytes, for reading only.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// ---- decoding params ----

type basicKind int

const (
	notBasic basicKind = iota
	basicString
	basicInt
	basicUint
	basicFloat
	basicBool
)

func kindOf(t reflect.Type) basicKind {
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return notBasic
	}
	switch t.Kind() {
	case reflect.String:
		return basicString
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return basicInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return basicUint
	case reflect.Float32, reflect.Float64:
		return basicFloat
	case reflect.Bool:
		return basicBool
	}
	return notBasic
}

// basicDecoder decodes params into a P that is a basic value, or an array or
// slice of basic values. Where each value goes, and how wide it is, is
// worked out once, at registration: a call writes the values in place,
// with no reflection (for a slice, one reflect.MakeSlice).
type basicDecoder struct {
	t    reflect.Type
	elem basicKind // kind of the value, or of the elements of a list
	size uintptr   // bytes of the value, or of an element
	list bool
	n    int // elements of an array; -1 for a slice
}

func newBasicDecoder(t reflect.Type) *basicDecoder {
	k, list := basicShape(t)
	if k == notBasic {
		return nil
	}
	d := &basicDecoder{t: t, elem: k, size: t.Size(), list: list, n: -1}
	if list {
		d.size = t.Elem().Size()
		if t.Kind() == reflect.Array {
			d.n = t.Len()
		}
	}
	return d
}

// basicShape says whether values of t take the fast paths of this file: a
// basic value of kind k, or an array or slice of them (list). k is
// notBasic for any other type, and for named types, which may have their
// own JSON methods, and []byte, which encoding/json writes in base64.
func basicShape(t reflect.Type) (k basicKind, list bool) {
	if t.Kind() == reflect.Array || t.Kind() == reflect.Slice {
		t, list = t.Elem(), true
		if t.Kind() == reflect.Uint8 {
			return notBasic, false
		}
	}
	if k = kindOf(t); k == notBasic || t.Name() != t.Kind().String() {
		return notBasic, false
	}
	return k, list
}

// sliceHeader is the layout of a Go slice.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// decode fills dst, which points to a zero value of type d.t, from params,
// a valid JSON array: the elements for a list, the one element for a basic
// value.
func (d *basicDecoder) decode(params []byte, dst unsafe.Pointer) error {
	if d.list && d.n < 0 {
		// A slice: count, make it, then fill it in place.
		n := countElems(params)
		s := reflect.MakeSlice(d.t, n, n)
		base := s.UnsafePointer()
		if err := eachElem(params, func(i int, tok []byte) error {
			return setBasicAt(unsafe.Add(base, uintptr(i)*d.size), d.elem, d.size, tok, i)
		}); err != nil {
			return err
		}
		*(*sliceHeader)(dst) = sliceHeader{base, n, n}
		return nil
	}
	limit := 1 // values the destination holds
	if d.list {
		limit = d.n
	}
	n := 0
	i := skipSpace(params, 1)
	for i < len(params) && params[i] != ']' {
		if d.elem == basicInt && n < limit {
			// The common list: small integers, parsed as they are
			// found rather than found and then parsed.
			if v, end, ok := quickInt(params, i); ok {
				if !storeInt(unsafe.Add(dst, uintptr(n)*d.size), d.size, v) {
					return argError(n, "an integer in range")
				}
				n++
				if i = skipSpace(params, end); i < len(params) && params[i] == ',' {
					i = skipSpace(params, i+1)
				}
				continue
			}
		}
		end := skipValue(params, i)
		if end == i {
			return errParamsShape // not valid JSON after all
		}
		if n < limit {
			if err := setBasicAt(unsafe.Add(dst, uintptr(n)*d.size), d.elem, d.size, params[i:end], n); err != nil {
				return err
			}
		}
		n++
		if i = skipSpace(params, end); i < len(params) && params[i] == ',' {
			i = skipSpace(params, i+1)
		}
	}
	switch {
	case !d.list && n != 1:
		return &Error{Code: CodeInvalidParams, Message: fmt.Sprintf("invalid params: expected 1 argument, got %d", n)}
	case n > limit:
		return &Error{Code: CodeInvalidParams, Message: fmt.Sprintf("invalid params: expected at most %d arguments, got %d", limit, n)}
	}
	return nil
}

// countElems returns the number of elements of the valid JSON array arr.
func countElems(arr []byte) int {
	n := 0
	eachElem(arr, func(int, []byte) error { n++; return nil })
	return n
}

func argError(i int, what string) error {
	return &Error{Code: CodeInvalidParams, Message: fmt.Sprintf("invalid params: argument %d must be %s", i, what)}
}

// setBasicAt decodes one valid JSON value tok into the basic value of kind
// k and size bytes at ptr. null leaves the value as it is, as
// encoding/json does.
func setBasicAt(ptr unsafe.Pointer, k basicKind, size uintptr, tok []byte, i int) error {
	if tok[0] == 'n' {
		return nil
	}
	switch k {
	case basicString:
		if tok[0] != '"' {
			return argError(i, "a string")
		}
		if bytes.IndexByte(tok, '\\') < 0 {
			*(*string)(ptr) = string(tok[1 : len(tok)-1])
			return nil
		}
		var s string
		if json.Unmarshal(tok, &s) != nil {
			return argError(i, "a string")
		}
		*(*string)(ptr) = s
	case basicInt:
		n, ok := parseInt(tok)
		if !ok || !storeInt(ptr, size, n) {
			return argError(i, "an integer in range")
		}
	case basicUint:
		n, err := strconv.ParseUint(string(tok), 10, 64)
		if err != nil || !storeUint(ptr, size, n) {
			return argError(i, "a non-negative integer in range")
		}
	case basicFloat:
		if tok[0] != '-' && (tok[0] < '0' || tok[0] > '9') {
			return argError(i, "a number")
		}
		f, err := strconv.ParseFloat(string(tok), int(size*8))
		if err != nil {
			return argError(i, "a number in range")
		}
		if size == 4 {
			*(*float32)(ptr) = float32(f)
		} else {
			*(*float64)(ptr) = f
		}
	case basicBool:
		switch string(tok) {
		case "true":
			*(*bool)(ptr) = true
		case "false":
			*(*bool)(ptr) = false
		default:
			return argError(i, "a boolean")
		}
	}
	return nil
}

// storeInt stores n in the signed integer of size bytes at ptr; false if it
// does not fit.
func storeInt(ptr unsafe.Pointer, size uintptr, n int64) bool {
	if size < 8 && (n < -1<<(size*8-1) || n >= 1<<(size*8-1)) {
		return false
	}
	storeBits(ptr, size, uint64(n))
	return true
}

// storeUint stores n in the unsigned integer of size bytes at ptr; false if
// it does not fit.
func storeUint(ptr unsafe.Pointer, size uintptr, n uint64) bool {
	if size < 8 && n >= 1<<(size*8) {
		return false
	}
	storeBits(ptr, size, n)
	return true
}

// storeBits stores the low size bytes of v at ptr: an integer that fits,
// signed (two's complement) or not.
func storeBits(ptr unsafe.Pointer, size uintptr, v uint64) {
	switch size {
	case 1:
		*(*uint8)(ptr) = uint8(v)
	case 2:
		*(*uint16)(ptr) = uint16(v)
	case 4:
		*(*uint32)(ptr) = uint32(v)
	default:
		*(*uint64)(ptr) = v
	}
}

// quickInt parses the integer of at most 18 digits at b[i], which must end
// the element (a ',', ']' or white space follows). ok is false for
// anything else, left to the general path: longer numbers, fractions,
// exponents, leading zeros.
func quickInt(b []byte, i int) (n int64, end int, ok bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	n, end = digits(b, i)
	if !jsonDigits(b, i, end) || end >= len(b) {
		return 0, 0, false
	}
	switch b[end] {
	case ',', ']', ' ', '\t', '\n', '\r':
	default:
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, end, true
}

// parseInt parses a JSON integer token as strconv.ParseInt(tok, 10, 64)
// does; numbers too long for digits take strconv's path.
func parseInt(tok []byte) (int64, bool) {
	neg := len(tok) > 0 && tok[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	n, end := digits(tok, i)
	switch {
	case end == len(tok) && end > i:
	case end-i == 18:
		n, err := strconv.ParseInt(string(tok), 10, 64)
		return n, err == nil
	default:
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// appendUint is strconv.AppendUint in base 10, but writes a number below
// 100 (most counts, indexes and small results) without going through
// strconv's buffer and the copy out of it, which were a tenth of encoding
// a batch of small sums.
func appendUint(b []byte, n uint64) []byte {
	switch {
	case n < 10:
		return append(b, byte('0'+n))
	case n < 100:
		return append(b, byte('0'+n/10), byte('0'+n%10))
	}
	return strconv.AppendUint(b, n, 10)
}

// appendInt is appendUint for signed numbers.
func appendInt(b []byte, n int64) []byte {
	if n >= 0 {
		return appendUint(b, uint64(n))
	}
	return strconv.AppendInt(b, n, 10)
}

// digits reads the decimal digits from b[i] on, at most 18 of them (which
// cannot overflow an int64), and returns their value and where they end.
func digits(b []byte, i int) (n int64, end int) {
	for end = i; end < len(b) && end-i < 18 && b[end] >= '0' && b[end] <= '9'; end++ {
		n = n*10 + int64(b[end]-'0')
	}
	return n, end
}

// ---- encoding params and results ----

// appendBasic appends v as JSON if it is a basic value or an array or slice
// of them, and reports whether it did. The values are read in place, with
// the layout basicDecoder writes them in.
func appendBasic(b []byte, v any) ([]byte, bool) {
	// An interface is two words: its type's descriptor, and for a value
	// that is not pointer-shaped (no basic value, array or slice of them
	// is) a pointer to a copy of it.
	words := (*[2]unsafe.Pointer)(unsafe.Pointer(&v))
	if words[0] == nil {
		return b, false
	}
	d := basicLayout(words[0], v)
	if d == nil {
		return b, false
	}
	p := words[1]
	if !d.list {
		return appendBasicAt(b, p, d.elem, d.size)
	}
	n := d.n
	if n < 0 {
		h := (*sliceHeader)(p)
		if h.data == nil {
			return append(b, nullID...), true
		}
		p, n = h.data, h.len
	}
	start := len(b)
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendBasicAt(b, unsafe.Add(p, uintptr(i)*d.size), d.elem, d.size); !ok {
			return b[:start], false
		}
	}
	return append(b, ']'), true
}

// basicTypes caches the basicDecoder of each type appendBasic sees (nil:
// not basic): working it out costs more than encoding a small value. It is
// direct-mapped by the address of the type's descriptor and lock-free: a
// program encodes a few types over and over, and a type that loses its
// place to another is only worked out again.
var basicTypes [256]atomic.Pointer[basicType]

type basicType struct {
	desc unsafe.Pointer // the type's descriptor
	d    *basicDecoder
}

// basicLayout returns the basicDecoder of v's type, whose descriptor is
// desc, or nil if the type is not basic.
func basicLayout(desc unsafe.Pointer, v any) *basicDecoder {
	addr := uintptr(desc)
	slot := &basicTypes[(addr>>5^addr>>13)%uintptr(len(basicTypes))]
	if e := slot.Load(); e != nil && e.desc == desc {
		return e.d
	}
	d := newBasicDecoder(reflect.TypeOf(v))
	slot.Store(&basicType{desc: desc, d: d})
	return d
}

// appendBasicAt appends the basic value of kind k and size bytes at ptr.
func appendBasicAt(b []byte, ptr unsafe.Pointer, k basicKind, size uintptr) ([]byte, bool) {
	switch k {
	case basicString:
		return appendValidString(b, *(*string)(ptr))
	case basicInt:
		var n int64
		switch size {
		case 1:
			n = int64(*(*int8)(ptr))
		case 2:
			n = int64(*(*int16)(ptr))
		case 4:
			n = int64(*(*int32)(ptr))
		default:
			n = *(*int64)(ptr)
		}
		return appendInt(b, n), true
	case basicUint:
		var n uint64
		switch size {
		case 1:
			n = uint64(*(*uint8)(ptr))
		case 2:
			n = uint64(*(*uint16)(ptr))
		case 4:
			n = uint64(*(*uint32)(ptr))
		default:
			n = *(*uint64)(ptr)
		}
		return appendUint(b, n), true
	case basicBool:
		return strconv.AppendBool(b, *(*bool)(ptr)), true
	case basicFloat:
		if size == 4 {
			return appendFloat(b, float64(*(*float32)(ptr)), 32)
		}
		return appendFloat(b, *(*float64)(ptr), 64)
	}
	return b, false
}

// appendFloat formats f as encoding/json does; NaN and infinities are not
// JSON and are left to encoding/json to refuse.
func appendFloat(b []byte, f float64, bits int) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}
