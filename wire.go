package wsrpc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file reads and writes the JSON-RPC envelope. A message is scanned
// once: the scanner validates the JSON (syntax, UTF-8, nesting depth) and, in
// the same pass, slices the members it cares about out of the buffer. Nothing
// is copied or decoded until a handler or a caller asks for its value.

// envelope is one JSON-RPC object, as slices of the message it came from.
// A nil slice means the member was absent.
type envelope struct {
	version []byte
	id      []byte
	method  []byte // the raw string token, quotes included
	params  []byte
	result  []byte
	err     []byte

	methodEscaped bool
	// invalid says why the object is not a valid request or response; the
	// object is still valid JSON.
	invalid string
}

func (e *envelope) reset() { *e = envelope{} }

// isRequest reports whether e is a request or notification.
func (e *envelope) isRequest() bool { return e.method != nil }

// methodName returns the method as a Go string. The common, unescaped case
// returns a string that aliases nothing: callers compare it or copy it.
func (e *envelope) methodName() string {
	raw := e.method[1 : len(e.method)-1]
	if !e.methodEscaped {
		return string(raw)
	}
	var s string
	if json.Unmarshal(e.method, &s) != nil {
		return ""
	}
	return s
}

// validID reports whether id is one the specification allows: a string, a
// number or null.
func validID(id []byte) bool {
	if len(id) == 0 {
		return false
	}
	switch c := id[0]; {
	case c == '"', c == 'n', c == '-', c >= '0' && c <= '9':
		return true
	}
	return false
}

// isVersion2 reports whether v is the JSON string "2.0", however spelled
// ("2\u002e0" is "2.0" too).
func isVersion2(v []byte) bool {
	if string(v) == `"2.0"` {
		return true
	}
	var s string
	return escapedString(v) && json.Unmarshal(v, &s) == nil && s == "2.0"
}

// classify checks the members of a parsed object against the specification
// and sets e.invalid when the object is neither a request nor a response.
func (e *envelope) classify() {
	if e.invalid != "" {
		return
	}
	switch {
	case !isVersion2(e.version):
		e.invalid = `"jsonrpc" must be "2.0"`
	case e.id != nil && !validID(e.id):
		e.invalid = `"id" must be a string, a number or null`
	case e.method != nil:
		switch {
		case e.method[0] != '"':
			e.invalid = `"method" must be a string`
		case e.result != nil || e.err != nil:
			e.invalid = `a request has no "result" or "error"`
		case e.params != nil && e.params[0] != '[' && e.params[0] != '{' && e.params[0] != 'n':
			e.invalid = `"params" must be an array or an object`
		}
	case e.result != nil && e.err != nil:
		e.invalid = `a response has "result" or "error", not both`
	case e.result == nil && e.err == nil:
		e.invalid = `no "method", "result" or "error"`
	case e.id == nil:
		e.invalid = `a response has an "id"`
	case e.err != nil && e.err[0] != '{':
		e.invalid = `"error" must be an object`
	}
}

// version2 is the value of "jsonrpc", quoted.
const version2 = `"2.0"`

// knownKey returns the member name of the envelope that b starts with,
// quoted, or "". Matched as bytes, it needs no scanning: it has nothing to
// escape, and its closing quote ends it.
func knownKey(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	// Each comparison is with a constant, which the compiler turns into a
	// few word loads instead of a call to memequal.
	switch b[1] {
	case 'j':
		if len(b) >= 9 && string(b[:9]) == `"jsonrpc"` {
			return `"jsonrpc"`
		}
	case 'i':
		if string(b[:4]) == `"id"` {
			return `"id"`
		}
	case 'm':
		if len(b) >= 8 && string(b[:8]) == `"method"` {
			return `"method"`
		}
	case 'p':
		if len(b) >= 8 && string(b[:8]) == `"params"` {
			return `"params"`
		}
	case 'r':
		if len(b) >= 8 && string(b[:8]) == `"result"` {
			return `"result"`
		}
	case 'e':
		if len(b) >= 7 && string(b[:7]) == `"error"` {
			return `"error"`
		}
	}
	return ""
}

// parseObject scans the object at b[i] into e and returns the index after
// it. A syntax error is returned as errSyntax; a structural problem (a
// duplicate or case-variant member) is recorded in e.invalid.
func parseObject(b []byte, i int, e *envelope) (int, error) {
	return parseObjectAt(b, i, 0, e)
}

// parseObjectAt is parseObject for an object nested depth levels deep.
func parseObjectAt(b []byte, i, depth int, e *envelope) (int, error) {
	if end := parseCommon(b, i, depth, e); end > 0 {
		return end, nil
	}
	return parseMembers(b, i, depth, e)
}

// commonHead is how nearly every JSON-RPC implementation starts an object
// it writes.
const (
	commonHead = `{"jsonrpc":"2.0","id":`
	commonVer  = len(`{"jsonrpc":`) // where "2.0" starts in commonHead
)

// parseCommon parses the object at b[i] if it has the shape nearly every
// implementation writes: no white space, "jsonrpc" first, an integer id,
// then "method" (a plain string) and "params" (an array or an object) or
// only "method", or "result". Such an object is valid, and parseMembers
// would make the same envelope of it, a member at a time. It returns the
// index after the object, or 0, having changed nothing, for anything
// else: parseMembers parses that.
func parseCommon(b []byte, i, depth int, e *envelope) int {
	if len(b)-i < len(commonHead)+4 || !versionKey.starts(b[i:]) || !idKey.starts(b[i+commonVer:]) {
		return 0
	}
	j := i + len(commonHead)
	k, ok := plainUint(b, j)
	if !ok || k >= len(b) || b[k] != ',' {
		return 0
	}
	id := b[j:k]
	k++
	var method, params, result []byte
	switch {
	case methodKey.starts(b[k:]):
		ms := k + len(`"method":`)
		me := ms + 1
		for me < len(b) && plainName[b[me]] {
			me++ // method names are short: a byte at a time
		}
		if me >= len(b) || b[me] != '"' {
			return 0 // escapes, or not ASCII: parseMembers sorts it out
		}
		method, k = b[ms:me+1], me+1
		if paramsKey.starts(b[k:]) {
			ps := k + len(`,"params":`)
			if ps >= len(b) || b[ps] != '[' && b[ps] != '{' {
				return 0
			}
			pe, err := scanValue(b, ps, depth+1)
			if err != nil {
				return 0
			}
			params, k = b[ps:pe], pe
		}
	case resultKey.starts(b[k:]):
		rs := k + len(`"result":`)
		// A small count or id is the commonest result.
		re, ok := plainUint(b, rs)
		if !ok || re < len(b) && (b[re] == '.' || b[re] == 'e' || b[re] == 'E') {
			var err error
			if re, err = scanValue(b, rs, depth+1); err != nil {
				return 0
			}
		}
		result, k = b[rs:re], re
	default:
		return 0
	}
	if k >= len(b) || b[k] != '}' {
		return 0
	}
	e.version = b[i+commonVer : i+commonVer+len(version2)]
	e.id, e.method, e.params, e.result = id, method, params, result
	return k + 1
}

// plainName marks the bytes that a JSON string holds as they are: not a
// quote, a backslash, a control character or part of a UTF-8 sequence.
var plainName = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainUint returns the end of the digits at b[i], and whether they are a
// JSON integer.
func plainUint(b []byte, i int) (end int, ok bool) {
	end = i
	for end < len(b) && b[end] >= '0' && b[end] <= '9' {
		end++
	}
	return end, jsonDigits(b, i, end)
}

// jsonDigits reports whether the digits b[i:end] make a JSON integer: one
// digit at least, and no leading zero.
func jsonDigits(b []byte, i, end int) bool { return end > i && (end-i == 1 || b[i] != '0') }

// A wireKey is a constant of 8 to 16 bytes that parseCommon looks for,
// held as its first and last eight bytes: two word loads to compare, where
// a string comparison calls memequal.
type wireKey struct {
	n          int
	head, tail uint64
}

func newKey(s string) wireKey {
	return wireKey{len(s), binary.LittleEndian.Uint64([]byte(s)), binary.LittleEndian.Uint64([]byte(s[len(s)-8:]))}
}

var (
	// commonHead, in two keys.
	versionKey = newKey(commonHead[:commonVer])
	idKey      = newKey(commonHead[commonVer:])
	methodKey  = newKey(`"method":"`)
	paramsKey  = newKey(`,"params":`)
	resultKey  = newKey(`"result":`)
)

// starts reports whether b starts with k.
func (k wireKey) starts(b []byte) bool {
	return len(b) >= k.n && binary.LittleEndian.Uint64(b) == k.head &&
		binary.LittleEndian.Uint64(b[k.n-8:]) == k.tail
}

// parseMembers is parseObjectAt for any object, a member at a time.
func parseMembers(b []byte, i, depth int, e *envelope) (int, error) {
	i++ // '{'
	i = skipSpace(b, i)
	if i < len(b) && b[i] == '}' {
		e.classify()
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, errSyntax
		}
		kstart := i
		kend, escaped := i+len(knownKey(b[i:])), false
		var err error
		if kend == i {
			if kend, escaped, err = scanString(b, i); err != nil {
				return 0, err
			}
		}
		key := b[kstart+1 : kend-1]
		if escaped {
			var s string
			if json.Unmarshal(b[kstart:kend], &s) != nil {
				return 0, errSyntax
			}
			key = []byte(s)
		}
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return 0, errSyntax
		}
		i = skipSpace(b, i+1)
		vstart := i
		if len(b)-i >= len(version2) && string(b[i:i+len(version2)]) == version2 {
			i += len(version2) // the value of every "jsonrpc"
		} else if i, err = scanValue(b, i, depth+1); err != nil {
			return 0, err
		}
		val := b[vstart:i]
		var slot *[]byte
		switch string(key) {
		case "jsonrpc":
			slot = &e.version
		case "id":
			slot = &e.id
		case "method":
			slot = &e.method
			e.methodEscaped = escapedString(val)
		case "params":
			slot = &e.params
		case "result":
			slot = &e.result
		case "error":
			slot = &e.err
		default:
			if isCaseVariant(key) && e.invalid == "" {
				e.invalid = "member names are case-sensitive: " + strconv.Quote(string(key))
			}
		}
		if slot != nil {
			if *slot != nil && e.invalid == "" {
				e.invalid = "duplicate member " + strconv.Quote(string(key))
			}
			*slot = val
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, errSyntax
		}
		if b[i] == '}' {
			e.classify()
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, errSyntax
		}
		i = skipSpace(b, i+1)
	}
}

// parseBatch parses the batch at b[start] (b[start] == '[') in one pass:
// each of its first max elements is parsed into the envelope next returns
// (a zero one) and passed to each (an element that is not an object gets
// e.invalid set); the rest are only validated. It returns the number of
// elements, or errSyntax if b is not one valid JSON value.
func parseBatch(b []byte, start, max int, next func() *envelope, each func(e *envelope)) (n int, err error) {
	i := skipSpace(b, start+1)
	if i < len(b) && b[i] == ']' {
		i++
	} else {
		for {
			if i >= len(b) {
				return n, errSyntax
			}
			var e *envelope
			if n < max {
				e = next()
			}
			var end int
			switch {
			case n >= max:
				end, err = scanValue(b, i, 1)
			case b[i] == '{':
				end, err = parseObjectAt(b, i, 1, e)
			default:
				end, err = scanValue(b, i, 1)
				e.invalid = "not an object"
			}
			if err != nil {
				return n, err
			}
			if n < max {
				each(e)
			}
			n++
			i = skipSpace(b, end)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == ']' {
				i++
				break
			}
			return n, errSyntax
		}
	}
	if skipSpace(b, i) != len(b) {
		return n, errSyntax
	}
	return n, nil
}

// batchError is the error for a batch of n items when it cannot be served
// at all: a parse error, an empty batch or one over the limit; nil if it
// can be.
func batchError(n int, err error, limit int) *Error {
	switch {
	case err != nil:
		return errParse
	case n == 0:
		return errorf(CodeInvalidRequest, "invalid request: empty batch")
	case n > limit:
		return errorf(CodeInvalidRequest, "invalid request: batch of "+strconv.Itoa(n)+" items exceeds the limit of "+strconv.Itoa(limit))
	}
	return nil
}

var memberNames = [...]string{"jsonrpc", "id", "method", "params", "result", "error"}

func isCaseVariant(key []byte) bool {
	for _, n := range memberNames {
		if len(key) == len(n) && strings.EqualFold(string(key), n) {
			return true
		}
	}
	return false
}

func escapedString(tok []byte) bool {
	if len(tok) == 0 || tok[0] != '"' {
		return false
	}
	return bytes.IndexByte(tok[1:len(tok)-1], '\\') >= 0
}

// parseUintID parses an id we issued: a non-negative decimal integer. A
// string, a fraction or a leading zero is not one of ours.
func parseUintID(id []byte) (uint64, bool) {
	if len(id) == 0 || len(id) > 20 || (id[0] == '0' && len(id) > 1) {
		return 0, false
	}
	var n uint64
	for _, c := range id {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// ---- encoding ----

const (
	jsonrpcPrefix = `{"jsonrpc":"2.0"`
	nullID        = "null"
)

func appendRequestHead(b []byte, id uint64, method string) []byte {
	b = append(b, jsonrpcPrefix+`,"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"method":`...)
	return appendString(b, method)
}

func appendNotificationHead(b []byte, method string) []byte {
	b = append(b, jsonrpcPrefix+`,"method":`...)
	return appendString(b, method)
}

// appendParams appends `,"params":<v>}` (or just `}` for nil params).
func appendParams(b []byte, params any, c Codec) ([]byte, error) {
	if params == nil {
		return append(b, '}'), nil
	}
	b = append(b, `,"params":`...)
	start := len(b)
	b, err := appendValue(b, params, c)
	if err != nil {
		return b, err
	}
	if p := b[start]; p != '[' && p != '{' {
		return b, errors.New("wsrpc: params must encode to a JSON array or object")
	}
	return append(b, '}'), nil
}

func appendResult(b, id []byte, result []byte) []byte {
	b = append(b, jsonrpcPrefix+`,"id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	return append(b, '}')
}

func appendErrorResponse(b, id []byte, e *Error) []byte {
	if id == nil {
		id = []byte(nullID)
	}
	b = append(b, jsonrpcPrefix+`,"id":`...)
	b = append(b, id...)
	b = append(b, `,"error":`...)
	b = appendErrorObject(b, e)
	return append(b, '}')
}

// appendErrorObject appends e as a JSON-RPC error object; Data that is not
// valid JSON is left out.
func appendErrorObject(b []byte, e *Error) []byte {
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, e.Code, 10)
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	if len(e.Data) > 0 && validJSON(e.Data) {
		b = append(b, `,"data":`...)
		b = append(b, e.Data...)
	}
	return append(b, '}')
}

// appendValue appends v as JSON. Common types are written directly; the rest
// go through the codec (encoding/json by default).
func appendValue(b []byte, v any, c Codec) ([]byte, error) {
	if c == nil {
		switch v := v.(type) {
		case json.RawMessage:
			if len(v) == 0 {
				return append(b, nullID...), nil
			}
			if !validJSON(v) {
				return b, errors.New("wsrpc: invalid json.RawMessage")
			}
			return append(growBuf(b, len(v)), v...), nil
		case string:
			if out, ok := appendValidString(b, v); ok {
				return out, nil
			}
		case int:
			return appendInt(b, int64(v)), nil
		case int64:
			return appendInt(b, v), nil
		case uint64:
			return appendUint(b, v), nil
		case bool:
			return strconv.AppendBool(b, v), nil
		case []int:
			b = append(b, '[')
			for i, n := range v {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendInt(b, int64(n))
			}
			return append(b, ']'), nil
		case nil:
			return append(b, nullID...), nil
		}
		if out, ok := appendBasic(b, v); ok {
			return out, nil
		}
		out, err := json.Marshal(v)
		if err != nil {
			return b, err
		}
		return append(b, out...), nil
	}
	out, err := c.Marshal(v)
	if err != nil {
		return b, err
	}
	if !validJSON(out) {
		return b, errors.New("wsrpc: codec produced invalid JSON")
	}
	return append(b, out...), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 in s becomes
// U+FFFD, as encoding/json writes it.
func appendString(b []byte, s string) []byte {
	if out, ok := appendValidString(b, s); ok {
		return out
	}
	out, _ := appendValidString(b, strings.ToValidUTF8(s, "\uFFFD"))
	return out
}

// appendValidString appends s as a JSON string, or reports false (b as it
// was) if s is not valid UTF-8. A long string is checked and copied a chunk
// at a time, into a buffer grown once.
func appendValidString(b []byte, s string) ([]byte, bool) {
	start := len(b)
	b = append(b, '"')
	sb := stringBytes(s)
	i := 0
	if len(s) >= longRun {
		b = growBuf(b, len(s)+1)
		for i < len(s) {
			end := chunkEnd(sb, i)
			c := sb[i:end]
			if bytes.IndexByte(c, '"') >= 0 || bytes.IndexByte(c, '\\') >= 0 || !plainText(c) {
				break // escapes to write, or invalid UTF-8 to find: below
			}
			b = append(b, c...)
			i = end
		}
	}
	plain := i // s[plain:i] goes out as it is
	for i = plainRun(sb, i); i < len(s); i = plainRun(sb, i) {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return b[:start], false
			}
			i += size
			continue
		}
		b = append(b, s[plain:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		plain = i
	}
	b = append(b, s[plain:]...)
	return append(b, '"'), true
}

// decodeValue decodes JSON data into v (a pointer). Common targets are
// decoded directly; the rest go through the codec.
func decodeValue(data []byte, v any, c Codec) error {
	if c == nil {
		switch v := v.(type) {
		case *json.RawMessage:
			*v = append((*v)[:0], data...)
			return nil
		case *int:
			if n, ok := parseInt(data); ok && int64(int(n)) == n {
				*v = int(n)
				return nil
			}
		case *string:
			if len(data) >= 2 && data[0] == '"' && !escapedString(data) {
				*v = string(data[1 : len(data)-1])
				return nil
			}
		}
		return json.Unmarshal(data, v)
	}
	return c.Unmarshal(data, v)
}
